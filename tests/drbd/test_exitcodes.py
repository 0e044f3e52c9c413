"""fence-peer exit codes: only a proven fence releases DRBD; a failure keeps I/O frozen."""
from __future__ import annotations

import pytest

from stonewall.storage.drbd.env import DrbdVersion
from stonewall.storage.drbd.exitcodes import (
    AdvisoryExit,
    FencePeerOutcome,
    FencePeerExit,
    HelperStatus,
    advisory_exit_code,
    exit_code_for,
)

# drbd-headers linux/drbd.h, enum drbd_peer_state ("These values are part of the ABI!").
DRBD_PEER_STATE = {"P_INCONSISTENT": 3, "P_OUTDATED": 4, "P_DOWN": 5, "P_PRIMARY": 6,
                   "P_FENCING": 7}
# The codes conn_try_outdate_peer() acts on; everything else is "fence-peer helper broken".
KERNEL_KNOWN = set(DRBD_PEER_STATE.values())


def test_named_codes_are_drbds_abi_values() -> None:
    assert [FencePeerExit.PEER_INCONSISTENT, FencePeerExit.PEER_OUTDATED,
            FencePeerExit.PEER_DOWN, FencePeerExit.PEER_PRIMARY,
            FencePeerExit.PEER_STONITHED] == list(DRBD_PEER_STATE.values())


@pytest.mark.parametrize("version", list(DrbdVersion))
def test_each_outcome_maps_to_the_code_drbd_reads_as_that_outcome(version: DrbdVersion) -> None:
    assert exit_code_for(FencePeerOutcome.PEER_FENCED_BY_STORAGE, version) == 4
    assert exit_code_for(FencePeerOutcome.PEER_POWERED_OFF, version) == 7
    assert exit_code_for(FencePeerOutcome.PEER_ALREADY_OUTDATED, version) == 4
    assert exit_code_for(FencePeerOutcome.PEER_UNREACHABLE_CONSIDERED_DEAD, version) == 5


@pytest.mark.parametrize("version", list(DrbdVersion))
def test_failure_is_a_code_the_kernel_treats_as_broken_so_io_stays_frozen(
        version: DrbdVersion) -> None:
    code = exit_code_for(FencePeerOutcome.FAILED, version)

    assert code not in KERNEL_KNOWN
    assert code != 0  # 0 is also "broken", but reads like success to every human and script
    assert "helper broken" in FencePeerExit(code).kernel_log


@pytest.mark.parametrize("version", list(DrbdVersion))
def test_no_outcome_outdates_ourselves_or_marks_the_peer_inconsistent(
        version: DrbdVersion) -> None:
    codes = {exit_code_for(outcome, version) for outcome in FencePeerOutcome}

    assert FencePeerExit.PEER_PRIMARY not in codes  # 6 would outdate OUR disks
    assert FencePeerExit.PEER_INCONSISTENT not in codes  # 3 claims more than we know


def test_version_may_be_given_as_its_text() -> None:
    assert exit_code_for(FencePeerOutcome.PEER_POWERED_OFF, "8.4") == 7  # type: ignore[arg-type]


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown DRBD version"):
        exit_code_for(FencePeerOutcome.PEER_POWERED_OFF, "10")  # type: ignore[arg-type]


def test_something_else_than_an_outcome_is_refused() -> None:
    with pytest.raises(TypeError, match="FencePeerOutcome"):
        exit_code_for("fenced", DrbdVersion.V9)  # type: ignore[arg-type]


def test_kernel_log_texts_name_what_drbd_did() -> None:
    assert FencePeerExit.PEER_OUTDATED.kernel_log.endswith("(peer was fenced)")
    assert "stonithed" in FencePeerExit.PEER_STONITHED.kernel_log
    assert "disk != UpToDate" in FencePeerExit.PEER_DOWN.kernel_log


def test_advisory_handlers_report_success_and_failure_for_operators() -> None:
    assert advisory_exit_code(True) == AdvisoryExit.DONE == 0
    assert advisory_exit_code(False) == AdvisoryExit.FAILED == 1


@pytest.mark.parametrize("raw, exit_code, signal, errno", [
    (1024, 4, None, None),  # events2 "status:1024" after fence-peer exit 4
    (256, 1, None, None),
    (0, 0, None, None),
    (1, None, 1, None),  # the drbd-utils fixture's "status:1": killed by signal 1
    (9, None, 9, None),
    (4294967294, None, None, 2),  # -ENOENT: the usermode helper does not exist (hwameistor#332)
])
def test_raw_helper_status_decodes_to_exit_signal_or_errno(
        raw: int, exit_code: int | None, signal: int | None, errno: int | None) -> None:
    status = HelperStatus.from_raw(raw)

    assert (status.raw, status.exit_code, status.signal, status.errno) == \
        (raw, exit_code, signal, errno)


@pytest.mark.parametrize("raw", [-1, 1 << 32, 0x7F])
def test_impossible_raw_helper_status_is_refused(raw: int) -> None:
    with pytest.raises(ValueError):
        HelperStatus.from_raw(raw)
