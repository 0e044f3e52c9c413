"""Takeover after a fence: node-b's holder fences node-a (a real PREEMPT on tgtd), then node-b
starts node-a's guests on its own libvirt (test driver), in order, each once, honouring
`immediate` vs `safe`. Only the clock is simulated, so the T_safe wait costs no real time; the
SAN, the holders and libvirt are real."""
from __future__ import annotations

import pytest

from stonewall.clock import Deadline
from stonewall.storage.scsi.types import ReservationType
from stonewall.vm.control import StartOutcome, destroy_guests_for_lost_ownership, start_guest
from stonewall.vm.peer_guests import Because
from stonewall.vm.takeover import (
    FenceEvidence, Skipped, TakeoverReport, take_over, take_over_fenced_peer)
from stonewall.config.timing import t_safe

from ..sim_clock import SimClock
from ..lab_fixtures import observer  # noqa: F401 - pytest finds fixtures by name
from .vm_lab import Holding, Hosts, holdings, hosts, lab, soon  # noqa: F401

A_GUESTS_IN_ORDER = ["web1", "db1", "bad1", "app1"]  # home node-a, by `order`
START = 1000.0


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def fenced_a(lab, hosts: Hosts) -> list[str]:
    """node-a ran web1 and db1 (registered on their LUNs; app1 was stopped and its LUN free)
    until node-b's holder fenced it. Returns the guests node-a ran."""
    for guest in ("web1", "db1"):
        report = start_guest(guest, hosts.nodes["node-a"], lab.config("node-a"),
                             lab.client("node-a"), hosts.conns["node-a"], soon())
        assert report.outcome is StartOutcome.STARTED, report.reasons
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    return ["web1", "db1"]


def takeover(lab, hosts: Hosts, clock: SimClock, fence: FenceEvidence,
             seconds: float = 120) -> TakeoverReport:
    config = lab.config("node-b")
    return take_over(config.node("node-a"), config, lab.client("node-b"), hosts.conns["node-b"],
                     clock, fence, t_safe(config.watchdog), node=hosts.nodes["node-b"],
                     deadline=Deadline.after(seconds, clock))


def test_after_a_storage_fence_guests_start_once_in_order_safe_ones_after_t_safe(
        lab, hosts, observer, clock, fenced_a):
    safe_after = t_safe(lab.config("node-b").watchdog)
    fence = FenceEvidence(power_verified=False, storage_verified_at=clock.monotonic())
    report = takeover(lab, hosts, clock, fence)

    by_guest = {g.guest: g for g in report.guests}
    assert [g.guest for g in report.guests] == A_GUESTS_IN_ORDER  # own1 (node-b's) untouched
    # node-a's key was on the LUNs of the guests it ran; the others are taken as its home's
    assert {g.guest: g.taken.because for g in report.guests} == {
        "web1": Because.REGISTERED, "db1": Because.REGISTERED, "bad1": Because.HOME,
        "app1": Because.HOME}
    assert by_guest["web1"].start.outcome is StartOutcome.STARTED and by_guest["web1"].at == START
    assert by_guest["db1"].start.outcome is StartOutcome.STARTED
    assert by_guest["db1"].at == START + safe_after and by_guest["db1"].waited == safe_after
    assert by_guest["bad1"].start.outcome is StartOutcome.UNMAPPABLE
    assert by_guest["app1"].start.outcome is StartOutcome.STARTED
    assert by_guest["app1"].at == START + safe_after and by_guest["app1"].waited == 0
    assert clock.slept == [safe_after]  # one T_safe wait, on the simulated clock
    assert not report.all_running  # bad1

    # The fence left node-b registered on node-a's guest LUNs (its control path preempted
    # there); the start registered its data paths too. app1's free LUN was claimed afresh.
    assert by_guest["web1"].start.taken == () and by_guest["db1"].start.taken == ()
    assert by_guest["app1"].start.taken == ("app1-disk",)
    held = holdings(lab, observer())
    for lun in ("web1-disk", "db1-disk", "app1-disk"):
        assert held[lun] == Holding(("node-b",) * 4,
                                    ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS), lun
    assert held["own1-disk"] == Holding((), None)
    assert hosts.running("node-b") == {"web1", "db1", "app1"}

    # node-a's copies live on in its memory until it destroys them (its watchdog service).
    assert hosts.running("node-a") == set(fenced_a)
    assert destroy_guests_for_lost_ownership(hosts.conns["node-a"], fenced_a,
                                             Deadline.after(5)).all_off
    for guest in ("web1", "db1", "app1"):
        assert hosts.hosts_running(guest) == ["node-b"], guest

    again = takeover(lab, hosts, clock, fence)  # a second takeover starts nothing twice
    assert {g.guest: g.start.outcome for g in again.guests} == {
        "web1": StartOutcome.ALREADY_RUNNING, "db1": StartOutcome.ALREADY_RUNNING,
        "bad1": StartOutcome.UNMAPPABLE, "app1": StartOutcome.ALREADY_RUNNING}
    assert clock.slept == [safe_after]
    for guest in ("web1", "db1", "app1"):
        assert hosts.hosts_running(guest) == ["node-b"], guest


def test_a_verified_power_off_starts_safe_guests_without_waiting(lab, hosts, clock, fenced_a):
    fence = FenceEvidence(power_verified=True, storage_verified_at=clock.monotonic())
    report = takeover(lab, hosts, clock, fence)
    started = [g.guest for g in report.guests if g.running]
    assert started == ["web1", "db1", "app1"]
    assert {g.at for g in report.guests} == {START} and clock.slept == []
    assert hosts.running("node-b") == {"web1", "db1", "app1"}


def test_t_safe_beyond_the_deadline_starts_only_the_immediate_guest(lab, hosts, observer,
                                                                    clock, fenced_a):
    fence = FenceEvidence(power_verified=False, storage_verified_at=clock.monotonic())
    report = takeover(lab, hosts, clock, fence, seconds=5)  # T_safe is 17 s
    outcome = {g.guest: (g.start.outcome if g.start else g.skipped) for g in report.guests}
    assert outcome == {"web1": StartOutcome.STARTED, "db1": Skipped.T_SAFE_AFTER_DEADLINE,
                       "bad1": Skipped.T_SAFE_AFTER_DEADLINE, "app1": Skipped.T_SAFE_AFTER_DEADLINE}
    assert clock.slept == []  # nobody waited in vain
    assert hosts.running("node-b") == {"web1"}
    assert holdings(lab, observer())["app1-disk"] == Holding((), None)


def test_without_proof_of_a_fence_nothing_starts(lab, hosts, observer, clock):
    for guest in ("web1", "db1"):
        assert start_guest(guest, hosts.nodes["node-a"], lab.config("node-a"),
                           lab.client("node-a"), hosts.conns["node-a"],
                           soon()).outcome is StartOutcome.STARTED
    before = holdings(lab, observer())
    report = takeover(lab, hosts, clock, FenceEvidence(False, None))
    assert {g.skipped for g in report.guests} == {Skipped.PEER_NOT_FENCED}
    assert hosts.running("node-b") == set() and holdings(lab, observer()) == before


def test_an_unfenced_peer_keeps_its_guests_even_if_evidence_is_claimed(lab, hosts, clock):
    """Evidence that lies (no PREEMPT happened) still cannot start a second copy: node-a is
    registered on the guest LUNs, so may_run refuses on node-b."""
    for guest in ("web1", "db1"):
        assert start_guest(guest, hosts.nodes["node-a"], lab.config("node-a"),
                           lab.client("node-a"), hosts.conns["node-a"],
                           soon()).outcome is StartOutcome.STARTED
    report = takeover(lab, hosts, clock, FenceEvidence(True, None))
    by_guest = {g.guest: g.start.outcome for g in report.guests}
    assert by_guest["web1"] is StartOutcome.REFUSED and by_guest["db1"] is StartOutcome.REFUSED
    for guest in ("web1", "db1"):
        assert hosts.hosts_running(guest) == ["node-a"]


def test_the_whole_takeover_keeps_to_the_one_deadline_it_was_given(lab, hosts, observer, clock,
                                                                   fenced_a):
    # `vm takeover --timeout 5` gets ONE deadline, 5 s + T_safe from its start. When its first
    # 5 s went into opening libvirt and asking the holder, the T_safe wait no longer fits:
    # the `safe` guests are skipped instead of the command running past its deadline (three
    # fresh deadlines used to let it run 3 x 5 s + T_safe).
    config = lab.config("node-b")
    timeout, safe = 5.0, t_safe(config.watchdog)
    deadline = Deadline.after(timeout + safe, clock)
    clock.sleep(timeout)
    run = take_over_fenced_peer(config.node("node-a"), config, lab.client("node-b"),
                                hosts.conns["node-b"], clock, safe, node=hosts.nodes["node-b"],
                                power_off_verified=False, deadline=deadline)
    assert run.report is not None and run.fence.storage_verified_at == START + timeout
    outcome = {g.guest: (g.start.outcome if g.start else g.skipped) for g in run.report.guests}
    assert outcome == {"web1": StartOutcome.STARTED, "db1": Skipped.T_SAFE_AFTER_DEADLINE,
                       "bad1": Skipped.T_SAFE_AFTER_DEADLINE, "app1": Skipped.T_SAFE_AFTER_DEADLINE}
    assert clock.monotonic() <= deadline.at and clock.slept == [timeout]
    assert hosts.running("node-b") == {"web1"}


def test_a_takeover_with_time_for_t_safe_waits_within_the_same_deadline(lab, hosts, clock,
                                                                        fenced_a):
    config = lab.config("node-b")
    timeout, safe = 5.0, t_safe(config.watchdog)
    deadline = Deadline.after(timeout + safe, clock)
    run = take_over_fenced_peer(config.node("node-a"), config, lab.client("node-b"),
                                hosts.conns["node-b"], clock, safe, node=hosts.nodes["node-b"],
                                power_off_verified=False, deadline=deadline)
    assert run.report is not None and hosts.running("node-b") == {"web1", "db1", "app1"}
    assert clock.slept == [safe] and clock.monotonic() <= deadline.at


def test_a_takeover_of_a_peer_whose_key_is_still_there_starts_nothing(lab, hosts, clock):
    config = lab.config("node-b")
    run = take_over_fenced_peer(config.node("node-a"), config, lab.client("node-b"),
                                hosts.conns["node-b"], clock, t_safe(config.watchdog),
                                node=hosts.nodes["node-b"], power_off_verified=False,
                                deadline=Deadline.after(30, clock))
    assert run.report is None and "not verified gone" in run.problem
    assert hosts.running("node-b") == set()
