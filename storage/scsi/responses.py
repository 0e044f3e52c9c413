"""PERSISTENT RESERVE IN responses as typed values, parsed from SPC-4 byte layouts."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from stonewall.storage.scsi.types import ReservationType


class ResponseFormatError(ValueError):
    """The target's answer does not follow SPC-4's layout."""


HEADER_LENGTH = 8  # PRgeneration (4) + ADDITIONAL LENGTH (4)


@dataclass(frozen=True)
class Keys:
    """READ KEYS: one entry per registered I_T nexus, in the target's order."""

    generation: int
    keys: tuple[int, ...]


@dataclass(frozen=True)
class Reservation:
    """READ RESERVATION: `holder` is None when no reservation is held."""

    generation: int
    holder: int | None
    type: ReservationType | None
    scope: int = 0


@dataclass(frozen=True)
class Capabilities:
    """REPORT CAPABILITIES (SPC-4 6.15.4)."""

    rlr_c: bool  # replace lost reservation capable
    crh: bool  # compatible reservation handling
    sip_c: bool  # specify initiator ports capable
    atp_c: bool  # all target ports capable
    ptpl_c: bool  # persist through power loss capable
    tmv: bool  # type mask valid
    allow_commands: int
    ptpl_a: bool  # persist through power loss active
    types: frozenset[ReservationType]


@dataclass(frozen=True)
class Registrant:
    """One READ FULL STATUS descriptor."""

    key: int
    all_tg_pt: bool
    holder: bool
    scope: int
    type: ReservationType | None
    relative_target_port: int
    transport_id: bytes


@dataclass(frozen=True)
class FullStatus:
    generation: int
    registrants: tuple[Registrant, ...]


def needed_length(data: bytes) -> int:
    """Total bytes the target wanted to return (header + ADDITIONAL LENGTH)."""
    if len(data) < HEADER_LENGTH:
        raise ResponseFormatError(f"PR IN answer of {len(data)} bytes is shorter than its header")
    return HEADER_LENGTH + struct.unpack_from(">I", data, 4)[0]


def _complete(data: bytes) -> bytes:
    """The answer trimmed to its stated length; error if the target sent less."""
    total = needed_length(data)
    if len(data) < total:
        raise ResponseFormatError(
            f"PR IN answer truncated: {len(data)} of {total} bytes (re-read with a larger "
            "allocation length)")
    return data[:total]


def _reservation_type(value: int) -> ReservationType | None:
    try:
        return ReservationType(value)
    except ValueError:
        return None


def parse_read_keys(data: bytes) -> Keys:
    """Parse a complete READ KEYS answer."""
    body = _complete(data)
    generation, length = struct.unpack_from(">II", body, 0)
    if length % 8:
        raise ResponseFormatError(f"READ KEYS additional length {length} is not a multiple of 8")
    keys = struct.unpack_from(f">{length // 8}Q", body, HEADER_LENGTH)
    return Keys(generation, tuple(keys))


def parse_read_reservation(data: bytes) -> Reservation:
    """Parse a complete READ RESERVATION answer."""
    body = _complete(data)
    generation, length = struct.unpack_from(">II", body, 0)
    if length == 0:
        return Reservation(generation, None, None)
    if length < 16:
        raise ResponseFormatError(f"READ RESERVATION additional length {length}, expected 16")
    holder = struct.unpack_from(">Q", body, 8)[0]
    scope_type = body[8 + 13]
    rtype = _reservation_type(scope_type & 0x0F)
    if rtype is None:
        raise ResponseFormatError(f"READ RESERVATION reports unknown type {scope_type & 0x0F}")
    return Reservation(generation, holder, rtype, scope_type >> 4)


def parse_report_capabilities(data: bytes) -> Capabilities:
    """Parse REPORT CAPABILITIES (its LENGTH field is bytes 0-1, normally 8)."""
    if len(data) < 8:
        raise ResponseFormatError(f"REPORT CAPABILITIES answer of {len(data)} bytes, expected 8")
    length = struct.unpack_from(">H", data, 0)[0]
    if length < 8:
        raise ResponseFormatError(f"REPORT CAPABILITIES length field {length}, expected 8")
    flags2, flags3 = data[2], data[3]
    mask = struct.unpack_from(">H", data, 4)[0]
    tmv = bool(flags3 & 0x80)
    # Type mask bits (SPC-4 table 175): byte 4 bit7 WR_EX_AR, bit6 EX_AC_RO, bit5 WR_EX_RO,
    # bit3 EX_AC, bit1 WR_EX; byte 5 bit0 EX_AC_AR.
    bits = {
        ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x8000,
        ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x4000,
        ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x2000,
        ReservationType.EXCLUSIVE_ACCESS: 0x0800,
        ReservationType.WRITE_EXCLUSIVE: 0x0200,
        ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x0001,
    }
    types = frozenset(t for t, bit in bits.items() if tmv and mask & bit)
    return Capabilities(
        rlr_c=bool(flags2 & 0x80),
        crh=bool(flags2 & 0x10),
        sip_c=bool(flags2 & 0x08),
        atp_c=bool(flags2 & 0x04),
        ptpl_c=bool(flags2 & 0x01),
        tmv=tmv,
        allow_commands=(flags3 >> 4) & 0x07,
        ptpl_a=bool(flags3 & 0x01),
        types=types,
    )


def parse_read_full_status(data: bytes) -> FullStatus:
    """Parse a complete READ FULL STATUS answer (SPC-4 6.15.5)."""
    body = _complete(data)
    generation = struct.unpack_from(">I", body, 0)[0]
    offset, registrants = HEADER_LENGTH, []
    while offset < len(body):
        if offset + 24 > len(body):
            raise ResponseFormatError("READ FULL STATUS descriptor runs past the answer")
        key = struct.unpack_from(">Q", body, offset)[0]
        flags, scope_type = body[offset + 12], body[offset + 13]
        rel_port = struct.unpack_from(">H", body, offset + 18)[0]
        tid_length = struct.unpack_from(">I", body, offset + 20)[0]
        tid_end = offset + 24 + tid_length
        if tid_end > len(body):
            raise ResponseFormatError("READ FULL STATUS transport ID runs past the answer")
        holder = bool(flags & 0x01)
        registrants.append(Registrant(
            key=key,
            all_tg_pt=bool(flags & 0x02),
            holder=holder,
            scope=scope_type >> 4,
            type=_reservation_type(scope_type & 0x0F) if holder else None,
            relative_target_port=rel_port,
            transport_id=bytes(body[offset + 24:tid_end]),
        ))
        offset = tid_end
    return FullStatus(generation, tuple(registrants))
