"""Exit statuses (and what sg3_utils hides behind exit 0) become exception types: from the
recorded runs, and from the real sg_persist / sg_turs / mpathpersist binaries."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.storage.scsi import cdb, sg
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import (
    CommandTimeout, DeviceError, IllegalRequest, NotReady, ReservationConflict, ScsiError,
    TargetBusy, TransportError, TruncatedResponse, UnitAttention, UnsupportedServiceAction)
from stonewall.storage.scsi.sense import SenseKey
from stonewall.storage.scsi.sg import (
    MpathPersistDevice, SgPersistDevice, SgRunner, mpathpersist_error, sg3_utils_error)
from stonewall.storage.scsi.types import PrOutAction, ReservationType

from .sg_lab import PR_OUTCOMES, ScriptedNexus, check_condition, load_runs, run_of

KEY = 0x5354570000000001
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


def soon(seconds: float = 10) -> Deadline:
    return Deadline.after(seconds)


def error_of(name: str, command: str, target: str = "") -> ScsiError | None:
    run = run_of(name, command, target)
    return sg3_utils_error(run.exit, run.stderr, "test")


# -- the recorded runs --------------------------------------------------------------------
@pytest.mark.parametrize(("command", "expected"), [
    ("sg_persist -n --in --read-full-status /dev/sdx", UnsupportedServiceAction),
    ("sg_persist -n --out --preempt-abort --param-rk=0x5354570000000002 "
     "--param-sark=0x5354570000000001 --prout-type=5 /dev/sdx", UnsupportedServiceAction),
    ("sg_persist -n --out --reserve --param-rk=0x5354570000000003 --prout-type=5 /dev/sdx",
     ReservationConflict),
    ("sg_persist --in -k -r /dev/sdx", DeviceError),  # exit 31: our command line is wrong
    ("sg_persist -n --in --read-keys /dev/null", DeviceError),  # 75 = 50 + ENOTTY
    ("sg_persist -n --in --read-keys /nonexistent/dev", DeviceError),  # 52 = 50 + ENOENT
])
def test_reference_failures(command, expected):
    error = error_of("reference-session.txt", command)
    assert type(error) is expected
    assert str(error).startswith("test: exit ")


def test_reference_successes_are_none():
    successes = [run for run in load_runs("reference-session.txt") if run.exit == 0]
    assert len(successes) == 17
    assert all(sg3_utils_error(0, run.stderr, "test") is None for run in successes)


@pytest.mark.parametrize(("target", "expected", "sense"), [
    ("UNIT ATTENTION 2A/03", UnitAttention, (0x2A, 0x03)),
    ("ILLEGAL REQUEST 20/00", UnsupportedServiceAction, (0x20, 0x00)),
    ("NOT READY 04/00", NotReady, (0x04, 0x00)),
])
def test_captured_check_conditions_carry_their_sense(target, expected, sense):
    error = error_of("captured-scripted.txt", "sg_persist -vv -n --in --read-keys /dev/sdx",
                     target)
    assert type(error) is expected
    assert error.sense is not None and (error.sense.asc, error.sense.ascq) == sense


def test_invalid_field_in_parameter_list_is_not_taken_for_an_unsupported_action():
    command = "sg_persist {}-n --out --register-ignore --param-sark=0x1 /dev/sdx"
    # -vv dumps the sense: 26/00 is a plain ILLEGAL REQUEST...
    assert type(error_of("captured-scripted.txt", command.format("-vv "), "26/00")) \
        is IllegalRequest
    # ...without it sg_persist prints 24/00's words for it, and only the hint is left.
    assert type(error_of("captured-scripted.txt", command.format(""), "26/00")) \
        is UnsupportedServiceAction


@pytest.mark.parametrize(("command", "target", "expected"), [
    ("sg_persist -vv -n --in --read-keys /dev/sdx", "BUSY", TargetBusy),
    ("sg_persist -vv -n --in --read-keys /dev/sdx", "TASK SET FULL", TargetBusy),
    ("sg_persist -vv -n --in --read-keys /dev/sdx", "DID_TRANSPORT_FAILFAST", TransportError),
    ("sg_persist -vv -n --out --register-ignore --param-sark=0x1 /dev/sdx",
     "DID_TRANSPORT_FAILFAST", TransportError),
    ("sg_persist -vv -n --in --read-keys /dev/sdx", "DID_TIME_OUT", CommandTimeout),
    ("sg_turs /dev/sdx", "DID_TIME_OUT", CommandTimeout),
])
def test_captured_status_and_transport_failures(command, target, expected):
    assert type(error_of("captured-scripted.txt", command, target)) is expected


@pytest.mark.parametrize(("status", "expected"), [
    (56, DeviceError),     # ENXIO: no driver behind the node
    (63, DeviceError),     # EACCES
    (55, TransportError),  # EIO: may have struck after the command left
    (50, TransportError),  # an errno of 47 or more
    (97, TransportError), (99, TransportError), (33, CommandTimeout), (15, DeviceError),
    (42, ScsiError),
])
def test_sg3_utils_statuses_without_sense(status, expected):
    assert type(sg3_utils_error(status, "", "test")) is expected


@pytest.mark.parametrize(("status", "expected"), [
    (0, type(None)), (1, DeviceError), (2, NotReady), (5, IllegalRequest), (6, UnitAttention),
    (7, UnsupportedServiceAction), (11, ReservationConflict), (12, DeviceError),
    (13, DeviceError), (15, TransportError),
])
def test_mpathpersist_statuses(status, expected):
    assert type(mpathpersist_error(status, "", "test")) is expected


# -- the real binaries --------------------------------------------------------------------
def test_missing_device():
    with pytest.raises(DeviceError, match="No such file or directory"):
        SgPersistDevice("/nonexistent/dev", SgRunner()).read_keys(soon())


def test_dev_null_is_no_scsi_device():
    with pytest.raises(DeviceError, match="Inappropriate ioctl"):
        SgPersistDevice("/dev/null", SgRunner()).read_keys(soon())
    with pytest.raises(DeviceError):
        sg.test_unit_ready("/dev/null", soon(), SgRunner())


def test_missing_binaries_name_their_package(tmp_path: Path):
    runner = SgRunner({"PATH": str(tmp_path)})
    with pytest.raises(DeviceError, match="sg_persist not found.*sg3-utils"):
        SgPersistDevice("/dev/sdb", runner).read_keys(soon())
    with pytest.raises(DeviceError, match="sg_turs not found.*sg3-utils"):
        sg.test_unit_ready("/dev/sdb", soon(), runner)
    with pytest.raises(DeviceError, match="mpathpersist not found.*multipath-tools"):
        MpathPersistDevice("/dev/mapper/mpatha", runner).read_keys(soon())


def test_mpathpersist_without_a_multipath_map():
    # Here: no device-mapper in the kernel (exit 1); on a dm host /dev/null is no map
    # (exit 13, DMMP error). Either way the device is unusable, not "no keys".
    with pytest.raises(DeviceError):
        MpathPersistDevice("/dev/null", SgRunner()).read_keys(soon())


def test_bad_input_is_refused_before_any_run():
    with pytest.raises(ValueError, match="absolute"):
        SgPersistDevice("sdb", SgRunner())
    device = SgPersistDevice("/nonexistent/dev", SgRunner())
    with pytest.raises(ValueError, match="8 bytes"):
        device.register(0, 2**64, soon(), ignore_existing=True)
    with pytest.raises(ValueError):
        device.preempt(KEY, -1, WE_RO, soon())


def test_an_expired_deadline_runs_nothing(scripted_nexus: ScriptedNexus):
    device = SgPersistDevice(scripted_nexus.sg_path, SgRunner(scripted_nexus.environment))
    with pytest.raises(CommandTimeout, match="no time left"):
        device.read_keys(Deadline.after(0))
    assert scripted_nexus.target.cdbs == []


def test_deadline_kills_a_hung_sg_persist(scripted_nexus: ScriptedNexus):
    scripted_nexus.target.delay = 20  # the array hangs
    device = SgPersistDevice(scripted_nexus.sg_path, SgRunner(scripted_nexus.environment))
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="did not finish within"):
        device.reserve(KEY, WE_RO, soon(0.5))
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(("answer", "expected"), PR_OUTCOMES)
def test_real_sg_persist_outcomes(scripted_nexus: ScriptedNexus, answer, expected):
    scripted_nexus.target.answer = answer
    device = SgPersistDevice(scripted_nexus.sg_path, SgRunner(scripted_nexus.environment))
    with pytest.raises(expected) as caught:
        device.preempt(KEY, KEY + 1, WE_RO, soon())
    assert type(caught.value) is expected
    assert scripted_nexus.target.cdbs == [cdb.pr_out(PrOutAction.PREEMPT, WE_RO)]


def test_a_transport_failure_is_not_an_empty_key_list(scripted_nexus: ScriptedNexus):
    scripted_nexus.target.answer = TransportError("connection lost")
    device = SgPersistDevice(scripted_nexus.sg_path, SgRunner(scripted_nexus.environment))
    with pytest.raises(TransportError, match="DID_TRANSPORT_FAILFAST"):
        device.read_keys(soon())  # sg_persist itself exits 0 and prints "NO ... keys"


def test_a_short_answer_is_not_an_empty_key_list(scripted_nexus: ScriptedNexus):
    scripted_nexus.target.answer = CommandResult(0x00, b"")
    device = SgPersistDevice(scripted_nexus.sg_path, SgRunner(scripted_nexus.environment))
    with pytest.raises(TruncatedResponse, match="0 bytes came back"):
        device.read_keys(soon())
    with pytest.raises(TruncatedResponse):
        device.read_reservation(soon())  # printed as "there is NO reservation held"


def test_unit_attention_sense_reaches_the_caller(scripted_nexus: ScriptedNexus):
    scripted_nexus.target.answer = check_condition(SenseKey.UNIT_ATTENTION, 0x2A, 0x05)
    runner = SgRunner(scripted_nexus.environment)
    with pytest.raises(UnitAttention) as caught:
        sg.test_unit_ready(scripted_nexus.block_path, soon(), runner)
    assert caught.value.sense is not None
    assert caught.value.sense.is_(SenseKey.UNIT_ATTENTION, 0x2A, 0x05)
