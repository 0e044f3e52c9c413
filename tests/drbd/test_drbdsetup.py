"""`drbdsetup status --json` as a process with a deadline: the real drbdsetup where this
machine has no DRBD module, a missing program, and a stand-in replaying a real document."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.storage.drbd.drbdsetup import DrbdStatusUnavailable, drbd_status
from stonewall.storage.drbd.status import ConnectionState, Role

from ..drbdsetup_standin import install, split_brain_status

REAL = shutil.which("drbdsetup") or "/usr/sbin/drbdsetup"


@pytest.mark.skipif(not os.path.exists(REAL) or os.path.exists("/proc/drbd"),
                    reason="needs drbd-utils on a machine without the DRBD module loaded")
def test_without_the_kernel_module_the_real_drbdsetup_is_unavailable():
    with pytest.raises(DrbdStatusUnavailable, match="exited 20: Failed to modprobe drbd"):
        drbd_status(Deadline.after(10), program=REAL)


def test_a_missing_program_is_unavailable(tmp_path: Path):
    with pytest.raises(DrbdStatusUnavailable, match="is not installed"):
        drbd_status(Deadline.after(10), program=str(tmp_path / "drbdsetup"))


def test_no_time_left_runs_nothing(tmp_path: Path):
    with pytest.raises(DrbdStatusUnavailable, match="no time left"):
        drbd_status(Deadline.after(0), program=str(tmp_path / "drbdsetup"))


def test_the_resource_asked_for_is_parsed(tmp_path: Path):
    program = install(tmp_path, split_brain_status("r0", my_id=1, peer_id=0))
    (status,) = drbd_status(Deadline.after(10), "r0", program=str(program))
    assert (status.name, status.node_id, status.role) == ("r0", 1, Role.PRIMARY)
    assert status.connection(0).connection_state is ConnectionState.STANDALONE
    assert drbd_status(Deadline.after(10), "r9", program=str(program)) == ()


def test_output_that_is_not_drbds_json_is_unavailable(tmp_path: Path):
    program = install(tmp_path, [{"name": "r0", "role": "Leader"}])
    with pytest.raises(DrbdStatusUnavailable, match="'Leader'"):
        drbd_status(Deadline.after(10), program=str(program))
