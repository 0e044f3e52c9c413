"""PR IN responses parsed from SPC-4 layouts, including tgtd's real REPORT CAPABILITIES."""
import struct

import pytest

from stonewall.storage.scsi.responses import (
    ResponseFormatError, needed_length, parse_read_full_status, parse_read_keys,
    parse_read_reservation, parse_report_capabilities)
from stonewall.storage.scsi.types import ReservationType


def keys_answer(generation, keys, stated=None):
    body = b"".join(struct.pack(">Q", k) for k in keys)
    return struct.pack(">II", generation, len(body) if stated is None else stated) + body


def test_read_keys():
    answer = keys_answer(6, [0x5354570000000002] * 3)
    parsed = parse_read_keys(answer)
    assert parsed.generation == 6
    assert parsed.keys == (0x5354570000000002,) * 3


def test_read_keys_empty():
    assert parse_read_keys(keys_answer(0, [])).keys == ()


def test_truncated_read_keys_is_an_error_not_a_shorter_list():
    full = keys_answer(1, list(range(1, 10)))
    assert needed_length(full[:24]) == len(full)
    with pytest.raises(ResponseFormatError, match="truncated"):
        parse_read_keys(full[:24])


def test_read_keys_with_odd_length_rejected():
    with pytest.raises(ResponseFormatError):
        parse_read_keys(struct.pack(">II", 0, 7) + bytes(7))


def test_read_reservation_held():
    answer = struct.pack(">IIQ4xBB2x", 3, 16, 0x5354570000000001, 0, 0x05)
    parsed = parse_read_reservation(answer)
    assert parsed.holder == 0x5354570000000001
    assert parsed.type is ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
    assert parsed.scope == 0


def test_read_reservation_none():
    parsed = parse_read_reservation(struct.pack(">II", 8, 0))
    assert (parsed.generation, parsed.holder, parsed.type) == (8, None, None)


def test_report_capabilities_as_tgtd_answered():
    # Measured on tgtd 1.0.85 (reference/scsi-pr.md): 00 08 00 80 ea 01 00 00.
    caps = parse_report_capabilities(bytes.fromhex("00080080ea010000"))
    assert not caps.atp_c and not caps.sip_c and not caps.ptpl_c and not caps.crh
    assert caps.tmv
    assert caps.types == frozenset(ReservationType)


def test_report_capabilities_bits():
    caps = parse_report_capabilities(bytes([0, 8, 0x9D, 0x81, 0x20, 0x00, 0, 0]))
    assert caps.rlr_c and caps.crh and caps.sip_c and caps.atp_c and caps.ptpl_c
    assert caps.ptpl_a and caps.tmv
    assert caps.types == {ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY}


def test_type_mask_ignored_when_not_valid():
    assert parse_report_capabilities(bytes([0, 8, 0, 0, 0xEA, 1, 0, 0])).types == frozenset()


def test_read_full_status_descriptors():
    tid = b"iqn.x,i,0x1\0\0\0\0\0"  # 16 bytes, iSCSI TransportID body
    d1 = struct.pack(">Q4xBBHxxHI", 0xA, 0x01, 0x05, 0, 1, len(tid)) + tid
    d2 = struct.pack(">Q4xBBHxxHI", 0xB, 0x02, 0x00, 0, 2, 0)
    body = d1 + d2
    status = parse_read_full_status(struct.pack(">II", 9, len(body)) + body)
    assert status.generation == 9
    first, second = status.registrants
    assert (first.key, first.holder, first.type, first.relative_target_port) == (
        0xA, True, ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, 1)
    assert first.transport_id == tid
    assert (second.key, second.holder, second.all_tg_pt, second.type) == (0xB, False, True, None)


def test_short_header_rejected():
    with pytest.raises(ResponseFormatError):
        parse_read_keys(b"\0\0\0")
