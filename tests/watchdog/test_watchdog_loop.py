"""The self-fencing loop against real stand-in supervisor processes.

The ownership check is the injected adapter (scripted here: these tests are about what the
loop does with its answers, and about the watchdog really firing); the watchdog is a real
stand-in process that SIGKILLs the node's process group. Bounds are measured on
CLOCK_MONOTONIC, which the stand-in's record shares with this process.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from stonewall.clock import Deadline
from stonewall.config.model import WatchdogSettings
from stonewall.watchdog.errors import (
    GuestsStillRunning,
    KeyNotRegistered,
    OwnershipUnverified,
    SelfFencingInProgress,
)
from stonewall.watchdog.loop import CheckOutcome, CheckResult, LoopState, OwnershipWatchdog
from stonewall.watchdog.open_device import open_watchdog
from stonewall.lab.watchdog_supervisor import StandinSupervisor
from stonewall.watchdog.systemd import SystemdNotifier
from stonewall.config.timing import t_safe, timing_table

SLACK = 0.25  # thread and process wake-ups on a busy test machine; margin (0.5 s) covers it


def fast_settings(device: str) -> WatchdogSettings:
    """The timing rule holds: 0.1 + 0.2 < 0.6 < 1.0, and 0.3 < grace 0.6 <= 0.6."""
    return WatchdogSettings(device=device, allow_standin=True, interval=0.1, io_deadline=0.2,
                            check_deadline=0.6, timeout=1.0, grace=0.6, margin=0.5)


class CheckerKilled(BaseException):
    """Not an Exception: it ends the checker thread, as a fatal error in it would."""


class Storage:
    """What the SAN answers to the node's ownership check, switched by the test."""

    def __init__(self) -> None:
        self.mode = "owned"
        self.switched_at: float | None = None
        self.calls_after_switch = 0
        self.release = threading.Event()  # frees a hung check at teardown

    def switch(self, mode: str) -> None:
        self.switched_at = time.monotonic()
        self.mode = mode

    def check(self, deadline: Deadline) -> CheckResult:
        if self.switched_at is not None:
            self.calls_after_switch += 1
        if self.mode == "owned":
            return CheckResult(CheckOutcome.OWNED)
        if self.mode == "fenced":
            return CheckResult(CheckOutcome.FENCED, "arbiter0: key 0x5357 not registered")
        if self.mode == "unreachable":
            return CheckResult(CheckOutcome.UNREACHABLE, "arbiter0: connection refused")
        if self.mode == "hang":  # an I/O in D state: ignores its deadline
            self.release.wait(30)
            return CheckResult(CheckOutcome.UNREACHABLE, "released at teardown")
        if self.mode == "raise":
            raise RuntimeError("bug in the check adapter")
        raise CheckerKilled()


@dataclass
class Guests:
    running: bool = True
    stopped: threading.Event = field(default_factory=threading.Event)
    reasons: list[str] = field(default_factory=list)

    def stop_all(self, reason: str) -> None:
        self.reasons.append(reason)
        self.running = False
        self.stopped.set()

    def are_running(self) -> bool:
        return self.running


@dataclass
class Rig:
    loop: OwnershipWatchdog
    storage: Storage
    guests: Guests
    supervisor: StandinSupervisor
    settings: WatchdogSettings


@pytest.fixture
def rig(standin: StandinSupervisor) -> Iterator[Rig]:
    settings = fast_settings(standin.device_name)
    storage, guests = Storage(), Guests()
    loop = OwnershipWatchdog(device=open_watchdog(settings), settings=settings,
                             check=storage.check, on_fenced=guests.stop_all,
                             guests_running=guests.are_running)
    yield Rig(loop, storage, guests, standin, settings)
    storage.release.set()
    loop.abandon(Deadline.after(2))


def assert_reset_within_documented_bound(rig: Rig, node) -> float:
    """The stand-in fired, the node's group died, and the reset came within
    check_deadline + timeout of the last good check (T_safe minus the margin)."""
    assert rig.loop.wait_self_fencing(Deadline.after(5))
    last_good = rig.loop.status().last_check_monotonic
    fired = rig.supervisor.wait_fired(Deadline.after(5))
    assert fired is not None and fired.killed
    assert node.was_reset(within=2)
    measured = fired.monotonic - last_good
    bound = rig.settings.check_deadline + rig.settings.timeout
    assert measured <= bound + SLACK <= t_safe(rig.settings)
    return measured


def test_a_healthy_node_keeps_petting_and_stops_cleanly_without_guests(rig, node):
    rig.loop.start()
    time.sleep(2.5)  # two and a half watchdog timeouts

    status = rig.loop.status()
    assert status.state is LoopState.PETTING and status.checker_alive
    assert 0 <= status.last_check_age < 0.3 and status.margin_left > 0.3
    assert status.timeout == 1.0 and status.device == rig.supervisor.device_name
    report = json.loads(json.dumps(status.to_dict()))  # what `watchdog status` would print
    assert report["state"] == "petting" and report["last_result"] == "owned"
    assert rig.supervisor.fired() is None and node.alive()

    rig.guests.running = False
    rig.loop.stop(Deadline.after(2))
    assert rig.supervisor.wait_fired(Deadline.after(1.5)) is None
    assert node.alive() and rig.loop.status().state is LoopState.STOPPED
    assert [e["event"] for e in rig.supervisor.events()] == ["armed", "disarmed"]
    assert rig.guests.reasons == []


def test_key_gone_stops_guests_at_once_and_the_watchdog_resets_the_node(rig, node):
    rig.loop.start()
    time.sleep(0.5)
    rig.storage.switch("fenced")  # the peer's PREEMPT

    assert rig.guests.stopped.wait(2)
    guest_stop_after = time.monotonic() - rig.storage.switched_at
    fired = rig.supervisor.wait_fired(Deadline.after(5))
    preempt_to_reset = fired.monotonic - rig.storage.switched_at
    measured = assert_reset_within_documented_bound(rig, node)

    detect, reset = (row.bound for row in timing_table(rig.settings)[:2])
    assert guest_stop_after <= detect + SLACK
    assert preempt_to_reset <= reset + SLACK
    assert rig.guests.reasons == ["key gone (arbiter0: key 0x5357 not registered)"]
    assert rig.storage.calls_after_switch == 1  # no further checks, never a re-register
    with pytest.raises(SelfFencingInProgress):
        rig.loop.stop(Deadline.after(1))
    print(f"\nkey gone: guests stopped after {guest_stop_after:.3f}s, reset "
          f"{preempt_to_reset:.3f}s after the preemption, {measured:.3f}s after the last good "
          f"check (bound {rig.settings.check_deadline + rig.settings.timeout:g}s)")


@pytest.mark.parametrize("failure,reason", [
    ("unreachable", "ownership unverified"),
    ("hang", "the checker is hung or dead"),
    ("raise", "check raised RuntimeError"),
])
def test_without_fresh_proof_the_node_self_fences_within_the_bound(rig, node, failure, reason):
    rig.loop.start()
    time.sleep(0.5)
    rig.storage.switch(failure)

    measured = assert_reset_within_documented_bound(rig, node)

    assert len(rig.guests.reasons) == 1 and reason in rig.guests.reasons[0]
    assert rig.loop.status().state is LoopState.SELF_FENCING
    print(f"\n{failure}: reset {measured:.3f}s after the last good check")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_checker_thread_stops_the_petting(rig, node):
    rig.loop.start()
    time.sleep(0.5)
    rig.storage.switch("die")

    measured = assert_reset_within_documented_bound(rig, node)

    assert not rig.loop.status().checker_alive
    assert "the checker is hung or dead" in rig.guests.reasons[0]
    print(f"\ndead checker: reset {measured:.3f}s after the last good check")


def test_a_clean_stop_is_refused_while_guests_run_and_petting_goes_on(rig, node):
    rig.loop.start()
    with pytest.raises(GuestsStillRunning):
        rig.loop.stop(Deadline.after(1))
    time.sleep(2.0)  # twice the watchdog timeout after the refusal

    assert rig.loop.status().state is LoopState.PETTING
    assert rig.supervisor.fired() is None and node.alive()
    assert rig.guests.reasons == []


def test_a_guest_query_that_fails_counts_as_guests_running(rig):
    def cannot_tell() -> bool:
        raise ConnectionError("libvirt is down")

    rig.loop.guests_running = cannot_tell
    rig.loop.start()
    with pytest.raises(GuestsStillRunning):
        rig.loop.stop(Deadline.after(1))
    assert rig.loop.status().state is LoopState.PETTING


@pytest.mark.parametrize("first,refusal", [
    ("fenced", KeyNotRegistered),
    ("unreachable", OwnershipUnverified),
    ("hang", OwnershipUnverified),
])
def test_it_never_arms_without_a_good_first_check(rig, node, first, refusal):
    rig.storage.switch(first)
    started = time.monotonic()
    with pytest.raises(refusal):
        rig.loop.start()

    assert time.monotonic() - started < rig.settings.io_deadline + SLACK
    assert rig.supervisor.events() == []  # never armed: no reboot loop for a fenced node
    assert rig.loop.status().state is LoopState.STOPPED
    # The guests here ran unprotected: they are stopped.
    assert len(rig.guests.reasons) == 1 and "start refused" in rig.guests.reasons[0]


def test_systemd_hears_ready_liveness_and_the_self_fencing(standin, node, short_dir):
    path = f"{short_dir}/notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        settings = fast_settings(standin.device_name)
        storage, guests = Storage(), Guests()
        loop = OwnershipWatchdog(device=open_watchdog(settings), settings=settings,
                                 check=storage.check, on_fenced=guests.stop_all,
                                 guests_running=guests.are_running,
                                 notifier=SystemdNotifier({"NOTIFY_SOCKET": path}))
        try:
            loop.start()
            time.sleep(0.6)
            storage.switch("fenced")
            assert loop.wait_self_fencing(Deadline.after(2))
            time.sleep(0.6)  # the petter keeps telling systemd it lives
        finally:
            loop.abandon(Deadline.after(2))
        systemd.setblocking(False)
        messages = []
        while True:
            try:
                messages.append(systemd.recv(4096).decode())
            except BlockingIOError:
                break

    assert messages[0] == "READY=1"
    assert f"STATUS=petting {standin.device_name}" in messages
    fencing = next(i for i, m in enumerate(messages) if m.startswith("STATUS=SELF-FENCING: key"))
    assert messages[:fencing].count("WATCHDOG=1") >= 2
    assert messages[fencing:].count("WATCHDOG=1") >= 2
