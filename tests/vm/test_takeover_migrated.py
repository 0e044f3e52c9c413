"""Takeover of guests that moved (issue #16): the takeover decides from what the fencer's
holder recorded at the preempt (which guest LUNs held the peer's key), not from `home` alone.
A guest live-migrated to the fenced peer is started here; one migrated here, or one the peer
was receiving from here, keeps running here once; one on a third node is never started here;
without a record the takeover says it fell back to `home`. Real tgtd, real holder processes,
libvirt test-driver hosts; migrations go through the libvirt hook's plain-migration steps, and
only the clock is simulated."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.config.timing import t_safe
from stonewall.lab.cluster import LabLun
from stonewall.storage.scsi.types import ReservationType
from stonewall.vm.control import StartOutcome, destroy_guests_for_lost_ownership, start_guest
from stonewall.vm.peer_guests import Because
from stonewall.vm.takeover import FenceEvidence, Skipped, TakeoverReport, take_over

from ..lab_fixtures import Lab, observer, running_lab  # noqa: F401 - pytest finds fixtures by name
from ..sim_clock import SimClock
from .conftest import SHUT_OFF_RUNSTATE, NodeFile, OpenHost, domain_xml
from .vm_lab import Holding, Hosts, holdings, hosts, lab, migrate, soon  # noqa: F401


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


def takeover(lab: Lab, hosts: Hosts, clock: SimClock, survivor: str,
             peer: str) -> TakeoverReport:
    """`survivor` takes over `peer` right after a verified storage fence."""
    config = lab.config(survivor)
    fence = FenceEvidence(power_verified=False, storage_verified_at=clock.monotonic())
    return take_over(config.node(peer), config, lab.client(survivor), hosts.conns[survivor],
                     clock, fence, t_safe(config.watchdog), node=hosts.nodes[survivor],
                     deadline=Deadline.after(120, clock))


def start(lab: Lab, hosts: Hosts, guest: str, node: str) -> None:
    report = start_guest(guest, hosts.nodes[node], lab.config(node), lab.client(node),
                         hosts.conns[node], soon())
    assert report.outcome is StartOutcome.STARTED, report.reasons


# -- two nodes -------------------------------------------------------------------------------
def test_a_guest_migrated_to_the_fenced_peer_is_started_back_on_its_home(lab, hosts, observer,
                                                                         clock):
    start(lab, hosts, "own1", "node-b")  # own1's home is node-b
    migrate(lab, hosts, "own1", "node-b", "node-a")
    assert holdings(lab, observer())["own1-disk"].registered == ("node-a",) * 4
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced  # node-a died

    report = takeover(lab, hosts, clock, "node-b", "node-a")
    own1 = next(g for g in report.guests if g.guest == "own1")
    assert own1.taken.because is Because.REGISTERED and own1.taken.held == ("own1-disk",)
    assert own1.start.outcome is StartOutcome.STARTED
    assert own1.describe() == ("own1 (node-a was registered on own1-disk at the fence): "
                               "started after waiting 17.0 s")  # `safe`: T_safe
    assert report.basis == ("node-a's key was on arbiter0, own1-disk when this node preempted "
                            "it")
    assert holdings(lab, observer())["own1-disk"] == Holding(
        ("node-b",) * 4, ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS)
    # node-a's copy dies with its storage (its watchdog service): then it runs once, here.
    assert destroy_guests_for_lost_ownership(hosts.conns["node-a"], ["own1"], soon()).all_off
    assert hosts.hosts_running("own1") == ["node-b"]
    assert [g.guest for g in report.guests if g.taken.because is Because.HOME] == [
        "web1", "db1", "bad1", "app1"]  # node-a's home guests, as before


def test_a_guest_of_the_peer_migrated_here_keeps_running_here_once(lab, hosts, clock):
    start(lab, hosts, "web1", "node-a")  # web1's home is node-a
    migrate(lab, hosts, "web1", "node-a", "node-b")
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced

    report = takeover(lab, hosts, clock, "node-b", "node-a")
    web1 = next(g for g in report.guests if g.guest == "web1")
    assert web1.taken.because is Because.HOME  # node-a was no longer on web1-disk
    assert web1.start.outcome is StartOutcome.ALREADY_RUNNING
    assert hosts.hosts_running("web1") == ["node-b"]


def test_a_guest_the_peer_was_receiving_keeps_running_on_its_source_here(lab, hosts, observer,
                                                                        clock):
    start(lab, hosts, "own1", "node-b")
    migrate(lab, hosts, "own1", "node-b", "node-a", switch_over=False)  # node-a dies mid-copy
    assert set(holdings(lab, observer())["own1-disk"].registered) == {"node-a", "node-b"}
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced

    report = takeover(lab, hosts, clock, "node-b", "node-a")
    own1 = next(g for g in report.guests if g.guest == "own1")
    assert own1.taken.because is Because.REGISTERED  # node-a was registered: migrating in
    assert own1.start.outcome is StartOutcome.ALREADY_RUNNING
    assert hosts.hosts_running("own1") == ["node-b"]
    assert set(holdings(lab, observer())["own1-disk"].registered) == {"node-b"}


def test_an_unreadable_record_falls_back_to_home_and_says_why(lab, hosts, clock):
    start(lab, hosts, "own1", "node-b")
    migrate(lab, hosts, "own1", "node-b", "node-a")
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    records = Path(lab.config("node-b").paths.state_dir) / "fence-records.json"
    records.write_text("{not json")  # damaged after the fence

    report = takeover(lab, hosts, clock, "node-b", "node-a")
    assert report.record is None
    assert report.basis.startswith("node-a's fence record could not be read (Refused: the "
                                   "fence records cannot be read: ")
    assert report.basis.endswith("guests are taken by home alone: a guest migrated to node-a "
                                 "is not found (start it with `stonewall vm start`)")
    assert [g.guest for g in report.guests] == ["web1", "db1", "bad1", "app1"]  # not own1
    assert "own1" not in hosts.running("node-b")


# -- three nodes -----------------------------------------------------------------------------
THREE = ["node-a", "node-b", "node-c"]
LUNS = [LabLun("arbiter0", 1, "arbiter", 0), LabLun("away1-disk", 2, "guest"),
        LabLun("moving1-disk", 3, "guest"), LabLun("back1-disk", 4, "guest"),
        LabLun("home1-disk", 5, "guest")]
GUESTS = [
    {"name": "away1", "luns": ["away1-disk"], "home": "node-a", "order": 10},  # runs on node-c
    {"name": "moving1", "luns": ["moving1-disk"], "home": "node-c", "order": 20},
    {"name": "back1", "luns": ["back1-disk"], "home": "node-b", "order": 30},  # runs on node-a
    {"name": "home1", "luns": ["home1-disk"], "home": "node-a", "order": 40,
     "start_policy": "immediate"},  # stopped
]


@pytest.fixture
def lab3(tgtd, tmp_path: Path) -> Iterator[Lab]:
    with running_lab(tgtd, tmp_path / "lab", {"guests": GUESTS}, LUNS, nodes=THREE) as started:
        for node in THREE:
            started.start_holder(node)
        yield started


@pytest.fixture
def hosts3(lab3: Lab, node_file: NodeFile, open_host: OpenHost) -> Hosts:
    config = lab3.config("node-a")
    domains = [domain_xml(g["name"], [], runstate=SHUT_OFF_RUNSTATE) for g in GUESTS]
    return Hosts({node: open_host(node_file(node, domains)) for node in THREE},
                 {node: config.node(node) for node in THREE})


def placed(lab3: Lab, hosts3: Hosts) -> None:
    """away1 (home node-a) was migrated to node-c; moving1 is migrating from node-c to node-a;
    back1 (home node-b) was migrated to node-a; home1 (home node-a) is stopped."""
    start(lab3, hosts3, "away1", "node-c")
    start(lab3, hosts3, "moving1", "node-c")
    migrate(lab3, hosts3, "moving1", "node-c", "node-a", switch_over=False)
    start(lab3, hosts3, "back1", "node-b")
    migrate(lab3, hosts3, "back1", "node-b", "node-a")


def test_a_guest_on_a_live_third_node_is_never_started_here(lab3, hosts3, clock):
    placed(lab3, hosts3)
    assert lab3.client("node-b").preempt("node-a", None, soon()).fenced

    report = takeover(lab3, hosts3, clock, "node-b", "node-a")
    by_guest = {g.guest: g for g in report.guests}
    assert list(by_guest) == ["away1", "moving1", "back1", "home1"]
    for guest in ("away1", "moving1"):
        assert by_guest[guest].skipped is Skipped.RUNS_ELSEWHERE, guest
        assert by_guest[guest].others == ("node-c",)
        assert hosts3.hosts_running(guest) == ["node-c"], guest
    assert by_guest["moving1"].taken.because is Because.REGISTERED  # node-a was receiving it
    assert by_guest["away1"].describe() == (
        "away1 (its home is node-a): not started: another node is registered on its LUNs: it "
        "runs, or may run, there (node-c)")
    assert by_guest["back1"].start.outcome is StartOutcome.STARTED
    assert by_guest["back1"].taken.because is Because.REGISTERED
    assert by_guest["home1"].start.outcome is StartOutcome.STARTED  # home, and free
    assert report.all_running  # what runs on node-c is not node-a's to take
    assert hosts3.running("node-b") == {"back1", "home1"}


def test_without_a_record_the_takeover_says_it_took_guests_by_home_alone(lab3, hosts3, clock):
    placed(lab3, hosts3)
    assert lab3.client("node-c").preempt("node-a", None, soon()).fenced  # node-c fenced it
    assert lab3.client("node-b").fence_record("node-a", soon()) is None

    report = takeover(lab3, hosts3, clock, "node-b", "node-a")
    assert report.record is None
    assert report.basis == (
        "this node holds no record of fencing node-a in this boot; guests are taken by home "
        "alone: a guest migrated to node-a is not found (start it with `stonewall vm start`)")
    by_guest = {g.guest: g for g in report.guests}
    assert list(by_guest) == ["away1", "home1"]  # back1, migrated to node-a, is missed
    assert by_guest["away1"].skipped is Skipped.RUNS_ELSEWHERE
    assert by_guest["home1"].start.outcome is StartOutcome.STARTED
    assert hosts3.running("node-b") == {"home1"}
