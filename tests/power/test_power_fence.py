"""Power fencing decisions against a real lab BMC process: only a status read that says OFF
is success, and every failure comes back within the deadline with its reason."""
from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import IpmiSettings, Secret
from stonewall.lab.bmc_files import BmcBehaviour
from stonewall.lab.ports import free_port
from stonewall.power.fence import (
    PowerFailure, power_off_verified, power_on_verified, power_status)
from stonewall.power.ipmi import IpmiClient
from stonewall.power.protocol import Operation, PowerState

from .support import BmcFactory, leftover_workers, process_exists

SLACK = 0.75  # wall-clock allowance past a deadline (kill and reap); a correctness bound
POLL = 0.1


def fence(client: IpmiClient, seconds: float):
    return power_off_verified(client, Deadline.after(seconds), SYSTEM_CLOCK, POLL)


def test_a_running_node_is_powered_off_and_verified(bmc) -> None:
    result = fence(IpmiClient(bmc.settings(), bmc.password), 10)
    assert result.verified and result.reason is None
    assert [a.operation for a in result.attempts] == [Operation.OFF, Operation.STATUS]
    assert result.attempts[-1].state is PowerState.OFF
    assert bmc.state().power is PowerState.OFF


def test_a_node_already_off_is_verified_without_a_power_change(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(initial_power=PowerState.OFF)
    changed_at = bmc.state().power_changed_at
    result = fence(IpmiClient(bmc.settings(), bmc.password), 10)
    assert result.verified
    assert bmc.state().power_changed_at == changed_at


def test_a_bmc_that_refuses_off_when_already_off_still_fences(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(initial_power=PowerState.OFF,
                      behaviour=BmcBehaviour(control_error=0xD5))
    result = fence(IpmiClient(bmc.settings(), bmc.password), 10)
    assert result.verified and not result.command_accepted
    assert result.attempts[0].failure is PowerFailure.BMC_ERROR


def test_a_slow_power_supply_is_polled_until_it_reports_off(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(off_lag=1.2))
    result = fence(IpmiClient(bmc.settings(), bmc.password), 10)
    assert result.verified
    statuses = [a.state for a in result.attempts if a.operation is Operation.STATUS]
    assert statuses[0] is PowerState.ON and statuses[-1] is PowerState.OFF
    assert result.elapsed >= 1.2


def test_a_node_that_never_reports_off_is_not_fenced(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(off_lag=600))
    result = fence(IpmiClient(bmc.settings(), bmc.password), 2.0)
    assert not result.verified
    assert result.reason is PowerFailure.NOT_REACHED
    assert result.command_accepted
    assert result.elapsed <= 2.0 + SLACK
    assert "never reported off" in result.summary()


def test_unknown_status_is_not_off_even_when_the_power_is_off(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(status_error=0xC0))
    result = fence(IpmiClient(bmc.settings(), bmc.password), 1.5)
    assert bmc.state().power is PowerState.OFF  # the command worked ...
    assert not result.verified  # ... but nothing proved it
    assert result.reason is PowerFailure.NOT_REACHED
    reads = [a.state for a in result.attempts
             if a.operation is Operation.STATUS and a.failure is None]
    assert reads and set(reads) == {PowerState.UNKNOWN}


def test_wrong_password_fails_at_once_with_reason_auth(bmc) -> None:
    began = time.monotonic()
    result = fence(IpmiClient(bmc.settings(), "wrong"), 10)
    assert not result.verified and result.reason is PowerFailure.AUTH
    assert len(result.attempts) == 1
    assert time.monotonic() - began < 2.0
    assert bmc.state().power is PowerState.ON


def test_an_absent_bmc_is_unreachable_within_the_deadline() -> None:
    settings = IpmiSettings(address="127.0.0.1", port=free_port(kind=socket.SOCK_DGRAM),
                            username="admin", password=Secret(file="/nonexistent"))
    began = time.monotonic()
    result = fence(IpmiClient(settings, "password"), 1.5)
    assert time.monotonic() - began <= 1.5 + SLACK
    assert not result.verified and result.reason is PowerFailure.UNREACHABLE
    assert leftover_workers() == []


def test_a_mute_bmc_is_unreachable_within_the_deadline(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(mute=True))
    began = time.monotonic()
    result = fence(IpmiClient(bmc.settings(), bmc.password), 1.5)
    assert time.monotonic() - began <= 1.5 + SLACK
    assert result.reason is PowerFailure.UNREACHABLE
    assert leftover_workers() == []


def test_a_bmc_too_slow_for_the_deadline_times_out(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(delay=0.4))
    began = time.monotonic()
    result = fence(IpmiClient(bmc.settings(), bmc.password), 1.2)
    assert time.monotonic() - began <= 1.2 + SLACK
    assert not result.verified and result.reason is PowerFailure.TIMEOUT


def test_power_off_kills_the_nodes_process_group(bmc_factory: BmcFactory,
                                                  lab_node: subprocess.Popen[bytes]) -> None:
    bmc = bmc_factory(kill_pgid=lab_node.pid)
    began = time.time()
    result = fence(IpmiClient(bmc.settings(), bmc.password), 10)
    assert result.verified
    lab_node.wait(timeout=5)
    assert not process_exists(lab_node.pid)
    state = bmc.state()
    assert state.killed_pgid == lab_node.pid and state.kill_error is None
    assert began <= state.killed_at <= time.time()


def test_power_on_is_verified_by_a_status_read(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(initial_power=PowerState.OFF)
    result = power_on_verified(IpmiClient(bmc.settings(), bmc.password), Deadline.after(10),
                               SYSTEM_CLOCK, POLL)
    assert result.verified and result.attempts[-1].state is PowerState.ON
    assert bmc.state().power is PowerState.ON


def test_status_is_one_recorded_read(bmc) -> None:
    attempt = power_status(IpmiClient(bmc.settings(), bmc.password), Deadline.after(5),
                           SYSTEM_CLOCK)
    assert attempt.state is PowerState.ON and attempt.failure is None


def test_an_expired_deadline_makes_no_call(bmc) -> None:
    result = fence(IpmiClient(bmc.settings(), bmc.password), 0)
    assert not result.verified and result.reason is PowerFailure.TIMEOUT
    assert result.attempts == ()
    assert bmc.state().off_commands == 0


@pytest.mark.parametrize("interval", [0, -1])
def test_a_poll_interval_must_be_positive(bmc, interval: float) -> None:
    with pytest.raises(ValueError):
        power_off_verified(IpmiClient(bmc.settings(), bmc.password), Deadline.after(5),
                           SYSTEM_CLOCK, interval)


def test_a_bmc_that_comes_back_before_the_deadline_is_used(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(mute=True))
    unmute = threading.Timer(1.0, bmc.set_mute, args=(False,))
    unmute.start()
    try:
        result = fence(IpmiClient(bmc.settings(), bmc.password), 8)
    finally:
        unmute.cancel()
    assert result.verified
    assert bmc.state().power is PowerState.OFF
