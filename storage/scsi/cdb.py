"""Command descriptor blocks and PR OUT parameter lists, byte for byte as SPC-4 and SBC-3
lay them out. Pure functions: bytes in, bytes out."""
from __future__ import annotations

import struct

from stonewall.storage.scsi.types import PrInAction, PrOutAction, ReservationType

PERSISTENT_RESERVE_IN = 0x5E
PERSISTENT_RESERVE_OUT = 0x5F
TEST_UNIT_READY = 0x00
INQUIRY = 0x12
READ_10 = 0x28
WRITE_10 = 0x2A
READ_CAPACITY_10 = 0x25

PR_OUT_BASIC_PARAMETER_LENGTH = 24  # SPC-4 6.16.3: without SPEC_I_PT TransportIDs
MAX_KEY = 2**64 - 1


def _check_key(name: str, key: int) -> None:
    if not 0 <= key <= MAX_KEY:
        raise ValueError(f"{name} {key!r} does not fit in 8 bytes")


def pr_in(action: PrInAction, allocation_length: int) -> bytes:
    """PERSISTENT RESERVE IN (10 bytes): service action in byte 1, allocation length 7-8."""
    if not 0 < allocation_length <= 0xFFFF:
        raise ValueError(f"allocation length {allocation_length} outside 1..65535")
    return struct.pack(">BB5xHB", PERSISTENT_RESERVE_IN, int(action) & 0x1F,
                       allocation_length, 0)


def pr_out(action: PrOutAction, rtype: ReservationType | None = None,
           parameter_length: int = PR_OUT_BASIC_PARAMETER_LENGTH) -> bytes:
    """PERSISTENT RESERVE OUT (10 bytes): SA in byte 1, scope (LU_SCOPE=0) and type in byte 2,
    parameter list length in bytes 5-8."""
    scope_type = int(rtype) & 0x0F if rtype is not None else 0
    return struct.pack(">BBB2xIB", PERSISTENT_RESERVE_OUT, int(action) & 0x1F, scope_type,
                       parameter_length, 0)


def pr_out_parameters(key: int = 0, service_action_key: int = 0, *, all_tg_pt: bool = False,
                      aptpl: bool = False) -> bytes:
    """The basic 24-byte PR OUT parameter list: RESERVATION KEY (0-7), SERVICE ACTION
    RESERVATION KEY (8-15), obsolete (16-19), flags byte 20 (bit 2 ALL_TG_PT, bit 0 APTPL),
    reserved (21), obsolete (22-23)."""
    _check_key("reservation key", key)
    _check_key("service action reservation key", service_action_key)
    flags = (0x04 if all_tg_pt else 0) | (0x01 if aptpl else 0)
    return struct.pack(">QQ4xB3x", key, service_action_key, flags)


def test_unit_ready() -> bytes:
    return bytes(6)


def inquiry(allocation_length: int = 96) -> bytes:
    return struct.pack(">BBBHB", INQUIRY, 0, 0, allocation_length, 0)


def read_10(lba: int, blocks: int) -> bytes:
    """READ(10): LBA in bytes 2-5, transfer length in blocks in bytes 7-8."""
    return struct.pack(">BBIBHB", READ_10, 0, lba, 0, blocks, 0)


def write_10(lba: int, blocks: int) -> bytes:
    """WRITE(10): LBA in bytes 2-5, transfer length in blocks in bytes 7-8."""
    return struct.pack(">BBIBHB", WRITE_10, 0, lba, 0, blocks, 0)


def read_capacity_10() -> bytes:
    return struct.pack(">B9x", READ_CAPACITY_10)
