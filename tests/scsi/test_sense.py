"""Sense decoding (fixed and descriptor) and the status -> exception mapping."""
import pytest

from stonewall.storage.scsi import errors
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.sense import SenseFormatError, SenseKey, decode_sense, encode_fixed_sense
from stonewall.storage.scsi.status import raise_for_status


def test_fixed_sense_as_tgtd_sent_it():
    # The bytes tgtd returned to a preempted nexus (UNIT ATTENTION 2A/03).
    raw = bytes.fromhex("700006000000000a000000002a0300000000")
    sense = decode_sense(raw)
    assert sense.key is SenseKey.UNIT_ATTENTION
    assert (sense.asc, sense.ascq) == (0x2A, 0x03)
    assert sense.name == "RESERVATIONS PREEMPTED"
    assert not sense.descriptor_format


def test_descriptor_sense():
    sense = decode_sense(bytes([0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0]))
    assert sense.key is SenseKey.ILLEGAL_REQUEST and (sense.asc, sense.ascq) == (0x24, 0)
    assert sense.descriptor_format and sense.name == "INVALID FIELD IN CDB"


@pytest.mark.parametrize("asc,ascq,name", [
    (0x2A, 0x04, "RESERVATIONS RELEASED"), (0x2A, 0x05, "REGISTRATIONS PREEMPTED"),
    (0x29, 0x07, "I_T NEXUS LOSS OCCURRED"), (0x29, 0x42, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"),
    (0x20, 0x00, "INVALID COMMAND OPERATION CODE"), (0x26, 0x00, "INVALID FIELD IN PARAMETER LIST")])
def test_names_of_codes_we_act_on(asc, ascq, name):
    assert decode_sense(encode_fixed_sense(SenseKey.UNIT_ATTENTION, asc, ascq)).name == name


def test_garbage_sense_rejected():
    with pytest.raises(SenseFormatError):
        decode_sense(bytes([0x10, 0, 0, 0]))
    with pytest.raises(SenseFormatError):
        decode_sense(b"\x70")


def check(key, asc, ascq):
    return CommandResult(0x02, b"", encode_fixed_sense(key, asc, ascq))


@pytest.mark.parametrize("result,exception", [
    (CommandResult(0x18), errors.ReservationConflict),
    (CommandResult(0x08), errors.TargetBusy),
    (CommandResult(0x28), errors.TargetBusy),
    (check(SenseKey.UNIT_ATTENTION, 0x2A, 0x03), errors.UnitAttention),
    (check(SenseKey.ILLEGAL_REQUEST, 0x24, 0x00), errors.UnsupportedServiceAction),
    (check(SenseKey.ILLEGAL_REQUEST, 0x20, 0x00), errors.UnsupportedServiceAction),
    (check(SenseKey.ILLEGAL_REQUEST, 0x26, 0x00), errors.IllegalRequest),
    (check(SenseKey.NOT_READY, 0x04, 0x00), errors.NotReady),
    (check(SenseKey.MEDIUM_ERROR, 0x11, 0x00), errors.CheckCondition),
    (CommandResult(0x02, b"", b"\x01"), errors.CheckCondition),
])
def test_status_maps_to_one_exception_type(result, exception):
    with pytest.raises(exception) as caught:
        raise_for_status(result, "test")
    assert type(caught.value) is exception


def test_illegal_request_26_is_not_mistaken_for_unsupported():
    with pytest.raises(errors.IllegalRequest) as caught:
        raise_for_status(check(SenseKey.ILLEGAL_REQUEST, 0x26, 0), "x")
    assert not isinstance(caught.value, errors.UnsupportedServiceAction)


def test_good_passes():
    raise_for_status(CommandResult(0x00, b"data"), "x")
