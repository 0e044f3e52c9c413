"""IpmiClient against a real lab BMC process on 127.0.0.1: every call runs in a worker
process that must be gone when the call returns, within its deadline."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.config.model import IpmiSettings, Secret
from stonewall.lab.bmc_files import BmcBehaviour
from stonewall.lab.ports import free_port
from stonewall.power.errors import (
    BmcAuthError, BmcCommandRejected, BmcError, BmcTimeout, BmcUnreachable,
    IpmiSettingsError)
from stonewall.power.ipmi import IpmiClient
from stonewall.power.protocol import PowerState

from .support import BmcFactory, leftover_workers

# Wall-clock allowance past a deadline: killing and reaping the worker. A correctness bound
# ("the call honours its deadline"), not a benchmark.
SLACK = 0.75


def test_status_reads_on_and_a_hard_off_turns_the_node_off(bmc) -> None:
    client = IpmiClient(bmc.settings(), bmc.password)
    assert client.power_state(Deadline.after(5)) is PowerState.ON
    client.power_off(Deadline.after(5))
    assert bmc.state().power is PowerState.OFF
    assert bmc.state().off_commands == 1
    assert client.power_state(Deadline.after(5)) is PowerState.OFF
    assert leftover_workers() == []


def test_power_on_turns_an_off_node_on(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(initial_power=PowerState.OFF)
    client = IpmiClient(bmc.settings(), bmc.password)
    assert client.power_state(Deadline.after(5)) is PowerState.OFF
    client.power_on(Deadline.after(5))
    assert bmc.state().power is PowerState.ON
    assert client.power_state(Deadline.after(5)) is PowerState.ON


def test_wrong_password_is_an_auth_error_and_fast(bmc) -> None:
    client = IpmiClient(bmc.settings(), "not-the-password")
    began = time.monotonic()
    with pytest.raises(BmcAuthError):
        client.power_off(Deadline.after(10))
    assert time.monotonic() - began < 2.0
    assert bmc.state().off_commands == 0


def test_unknown_user_is_an_auth_error(bmc) -> None:
    client = IpmiClient(bmc.settings(username="nobody"), bmc.password)
    with pytest.raises(BmcAuthError):
        client.power_state(Deadline.after(10))


def test_nothing_listening_fails_within_the_deadline() -> None:
    client = IpmiClient(_settings("127.0.0.1", free_port(kind=socket.SOCK_DGRAM)), "password")
    began = time.monotonic()
    with pytest.raises((BmcUnreachable, BmcTimeout)) as caught:
        client.power_state(Deadline.after(1.5))
    assert time.monotonic() - began <= 1.5 + SLACK
    if isinstance(caught.value, BmcTimeout):
        assert not caught.value.answered
    assert leftover_workers() == []


@pytest.mark.slow
def test_nothing_listening_with_a_long_deadline_is_unreachable() -> None:
    # pyghmi gives up on a silent BMC after about 5 s (reference ipmi.md).
    client = IpmiClient(_settings("127.0.0.1", free_port(kind=socket.SOCK_DGRAM)), "password")
    began = time.monotonic()
    with pytest.raises(BmcUnreachable):
        client.power_state(Deadline.after(9))
    assert time.monotonic() - began <= 9 + SLACK


def test_mute_bmc_fails_within_the_deadline_and_leaves_no_worker(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(mute=True))
    client = IpmiClient(bmc.settings(), bmc.password)
    began = time.monotonic()
    with pytest.raises(BmcTimeout) as caught:
        client.power_off(Deadline.after(1.5))
    assert time.monotonic() - began <= 1.5 + SLACK
    assert not caught.value.answered
    assert leftover_workers() == []
    assert bmc.state().power is PowerState.ON


def test_bmc_muted_while_running_fails_the_next_call_within_its_deadline(bmc) -> None:
    client = IpmiClient(bmc.settings(), bmc.password)
    assert client.power_state(Deadline.after(5)) is PowerState.ON
    bmc.set_mute()
    began = time.monotonic()
    with pytest.raises(BmcTimeout):
        client.power_state(Deadline.after(1.0))
    assert time.monotonic() - began <= 1.0 + SLACK
    assert leftover_workers() == []
    bmc.set_mute(False)
    assert client.power_state(Deadline.after(5)) is PowerState.ON


def test_slow_bmc_still_succeeds_within_the_deadline(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(delay=0.2))
    client = IpmiClient(bmc.settings(), bmc.password)
    began = time.monotonic()
    client.power_off(Deadline.after(6))
    # Six delayed packets before the reply: auth capabilities, open session, RAKP1, RAKP3,
    # set privilege, chassis control. The delay really applied.
    assert time.monotonic() - began >= 6 * 0.2
    assert bmc.state().power is PowerState.OFF


def test_slow_bmc_beyond_the_deadline_times_out_after_answering(bmc) -> None:
    bmc.set_delay(0.4)
    client = IpmiClient(bmc.settings(), bmc.password)
    began = time.monotonic()
    with pytest.raises(BmcTimeout) as caught:
        client.power_state(Deadline.after(1.2))
    assert time.monotonic() - began <= 1.2 + SLACK
    assert caught.value.answered and not caught.value.logged_in


def test_user_privilege_reads_status_but_may_not_power_off(bmc) -> None:
    client = IpmiClient(bmc.settings(privilege="user"), bmc.password)
    assert client.power_state(Deadline.after(5)) is PowerState.ON
    with pytest.raises(BmcAuthError):
        client.power_off(Deadline.after(5))
    assert bmc.state().power is PowerState.ON


def test_administrator_is_refused_where_the_user_is_only_operator(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(max_privilege="operator")
    with pytest.raises(BmcAuthError):
        IpmiClient(bmc.settings(privilege="administrator"), bmc.password).power_off(
            Deadline.after(5))
    IpmiClient(bmc.settings(privilege="operator"), bmc.password).power_off(Deadline.after(5))
    assert bmc.state().power is PowerState.OFF


def test_a_pinned_cipher_suite_the_bmc_lacks_is_an_error_not_a_fallback(bmc) -> None:
    # The lab BMC (like pyghmi's) speaks suite 3 only; suite 17 pinned must not fall back.
    client = IpmiClient(bmc.settings(cipher_suite=17), bmc.password)
    with pytest.raises(BmcError) as caught:
        client.power_off(Deadline.after(5))
    assert type(caught.value) is BmcError
    assert bmc.state().off_commands == 0


def test_a_status_error_reads_unknown(bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(status_error=0xC0))
    assert IpmiClient(bmc.settings(), bmc.password).power_state(
        Deadline.after(5)) is PowerState.UNKNOWN


def test_a_command_the_bmc_refuses_carries_its_completion_code(bmc_factory: BmcFactory) -> None:
    # 0xd5 "not supported in present state": some BMCs refuse off when already off.
    bmc = bmc_factory(initial_power=PowerState.OFF, behaviour=BmcBehaviour(control_error=0xD5))
    with pytest.raises(BmcCommandRejected) as caught:
        IpmiClient(bmc.settings(), bmc.password).power_off(Deadline.after(5))
    assert caught.value.completion_code == 0xD5


def test_an_expired_deadline_starts_no_worker(bmc) -> None:
    client = IpmiClient(bmc.settings(), bmc.password)
    with pytest.raises(BmcTimeout):
        client.power_off(Deadline.after(0))
    assert bmc.state().off_commands == 0


def test_the_password_is_in_neither_argv_nor_environment_of_the_worker(
        bmc_factory: BmcFactory) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(mute=True))  # keeps the worker alive a while
    client = IpmiClient(bmc.settings(), bmc.password)
    call = threading.Thread(target=_expect_timeout, args=(client,))
    call.start()
    try:
        seen: list[int] = []
        deadline = Deadline.after(2)
        while not seen and not deadline.expired():
            seen = leftover_workers()
            time.sleep(0.02)
        assert seen, "no worker process was observed"
        for pid in seen:
            assert bmc.password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            assert bmc.password.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        call.join()


def _expect_timeout(client: IpmiClient) -> None:
    with pytest.raises(BmcTimeout):
        client.power_state(Deadline.after(1.0))


@pytest.mark.parametrize("changes, password", [
    ({"privilege": "root"}, "pw"),
    ({"cipher_suite": 0}, "pw"),
    ({"port": 0}, "pw"),
    ({"address": ""}, "pw"),
    ({}, ""),
])
def test_settings_that_cannot_work_are_refused_up_front(changes: dict, password: str) -> None:
    with pytest.raises(IpmiSettingsError):
        IpmiClient(replace(_settings("127.0.0.1", 623), **changes), password)


def _settings(address: str, port: int) -> IpmiSettings:
    return IpmiSettings(address=address, port=port, username="admin",
                        password=Secret(file="/nonexistent"))


def test_the_fence_path_does_not_import_pyghmi() -> None:
    # pyghmi starts a global IO thread and can hang; only the worker process may load it.
    probe = ("import sys, stonewall.power.fence, stonewall.power.ipmi, "
             "stonewall.handlers.power_cmd; print('pyghmi' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30)
    assert done.stdout.strip() == "False", done.stderr


def test_a_missing_interpreter_is_a_clear_bmc_error(bmc) -> None:
    client = IpmiClient(bmc.settings(), bmc.password, python="/nonexistent/python3")
    with pytest.raises(BmcError, match="cannot start the IPMI worker"):
        client.power_off(Deadline.after(5))
    assert bmc.state().off_commands == 0


def test_a_worker_that_dies_without_a_result_is_a_bmc_error_not_a_state(bmc) -> None:
    client = IpmiClient(bmc.settings(), bmc.password, python="/bin/false")
    with pytest.raises(BmcError, match="exited with code 1 and no result"):
        client.power_state(Deadline.after(5))
