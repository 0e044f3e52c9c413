"""The lab BMC itself: readiness, its state file, a power-off that lands later, stop by PID."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from stonewall.clock import Deadline
from stonewall.lab.bmc_files import BmcBehaviour
from stonewall.power.ipmi import IpmiClient
from stonewall.power.protocol import PowerState

from .support import BmcFactory, process_exists


def test_it_publishes_pid_port_and_power_once_ready_and_stops_by_pid(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory()
    state = bmc.state()
    assert (state.pid, state.port, state.power) == (bmc.pid, bmc.port, PowerState.ON)
    pid = bmc.pid
    bmc.stop()
    assert not process_exists(pid)


def test_a_lagging_power_off_lands_later_without_further_packets(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(off_lag=0.5))
    IpmiClient(bmc.settings(), bmc.password).power_off(Deadline.after(5))
    assert bmc.state().power is PowerState.ON
    deadline = Deadline.after(3)
    while bmc.state().power is PowerState.ON and not deadline.expired():
        time.sleep(0.05)
    state = bmc.state()
    assert state.power is PowerState.OFF and state.off_commands == 1


def test_two_bmcs_are_independent(bmc_factory: BmcFactory) -> None:
    first, second = bmc_factory(), bmc_factory(initial_power=PowerState.OFF)
    assert first.port != second.port
    IpmiClient(first.settings(), first.password).power_off(Deadline.after(5))
    assert first.state().power is PowerState.OFF
    assert IpmiClient(second.settings(), second.password).power_state(
        Deadline.after(5)) is PowerState.OFF
    assert second.state().off_commands == 0


def test_an_unreadable_password_file_exits_2_with_a_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stonewall.lab.bmc", "--port", "0", "--user", "admin",
         "--password-file", str(tmp_path / "absent"), "--state-file", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "absent" in done.stderr
    assert not (tmp_path / "s").exists()
