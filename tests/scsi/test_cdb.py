"""CDBs and parameter lists against SPC-4 / SBC-3 byte layouts."""
import pytest

from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.types import PrInAction, PrOutAction, ReservationType


def test_pr_in_read_keys_layout():
    # SPC-4 6.15.1: opcode 5Eh, SA in byte 1 bits 4-0, allocation length bytes 7-8.
    assert cdb.pr_in(PrInAction.READ_KEYS, 0x1234) == bytes(
        [0x5E, 0x00, 0, 0, 0, 0, 0, 0x12, 0x34, 0])


@pytest.mark.parametrize("action,code", [
    (PrInAction.READ_KEYS, 0), (PrInAction.READ_RESERVATION, 1),
    (PrInAction.REPORT_CAPABILITIES, 2), (PrInAction.READ_FULL_STATUS, 3)])
def test_pr_in_service_actions(action, code):
    assert cdb.pr_in(action, 8)[1] == code


def test_pr_in_rejects_allocation_length_outside_16_bits():
    with pytest.raises(ValueError):
        cdb.pr_in(PrInAction.READ_KEYS, 0x10000)
    with pytest.raises(ValueError):
        cdb.pr_in(PrInAction.READ_KEYS, 0)


def test_pr_out_preempt_layout():
    # SPC-4 6.16.1: SA byte 1, scope (high nibble, LU_SCOPE 0) and type byte 2,
    # parameter list length bytes 5-8.
    assert cdb.pr_out(PrOutAction.PREEMPT, ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY,
                      24) == bytes([0x5F, 0x04, 0x05, 0, 0, 0, 0, 0, 24, 0])


@pytest.mark.parametrize("action,code", [
    (PrOutAction.REGISTER, 0), (PrOutAction.RESERVE, 1), (PrOutAction.RELEASE, 2),
    (PrOutAction.CLEAR, 3), (PrOutAction.PREEMPT, 4), (PrOutAction.PREEMPT_AND_ABORT, 5),
    (PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY, 6)])
def test_pr_out_service_actions(action, code):
    assert cdb.pr_out(action)[1] == code
    assert cdb.pr_out(action)[2] == 0  # no type for actions that ignore it


@pytest.mark.parametrize("rtype,value", [
    (ReservationType.WRITE_EXCLUSIVE, 1), (ReservationType.EXCLUSIVE_ACCESS, 3),
    (ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, 5),
    (ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, 6),
    (ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS, 7),
    (ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS, 8)])
def test_reservation_types_in_byte_2(rtype, value):
    assert cdb.pr_out(PrOutAction.RESERVE, rtype)[2] == value


def test_parameter_list_keys_big_endian_and_flags():
    data = cdb.pr_out_parameters(0x0102030405060708, 0x1112131415161718, all_tg_pt=True,
                                 aptpl=True)
    assert len(data) == 24
    assert data[0:8] == bytes(range(1, 9))
    assert data[8:16] == bytes(range(0x11, 0x19))
    assert data[16:20] == bytes(4)  # obsolete
    assert data[20] == 0x05  # ALL_TG_PT bit 2, APTPL bit 0; SPEC_I_PT (bit 3) never set
    assert data[21:24] == bytes(3)


def test_parameter_list_without_flags():
    assert cdb.pr_out_parameters(1, 2)[20] == 0


def test_key_larger_than_8_bytes_rejected():
    with pytest.raises(ValueError):
        cdb.pr_out_parameters(2**64, 0)
    with pytest.raises(ValueError):
        cdb.pr_out_parameters(0, -1)


def test_read_write_10_layout():
    # SBC-3 5.8/5.29: LBA bytes 2-5, transfer length bytes 7-8.
    assert cdb.write_10(0x01020304, 0x0506) == bytes([0x2A, 0, 1, 2, 3, 4, 0, 5, 6, 0])
    assert cdb.read_10(7, 1) == bytes([0x28, 0, 0, 0, 0, 7, 0, 0, 1, 0])


def test_test_unit_ready_and_inquiry():
    assert cdb.test_unit_ready() == bytes(6)
    assert cdb.inquiry(96) == bytes([0x12, 0, 0, 0, 96, 0])
