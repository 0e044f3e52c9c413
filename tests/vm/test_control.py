"""Starting and stopping guests with their LUN registrations, against tgtd (each node's holder
is a real process) and libvirt's test driver (one host per node, driven in this process).
What the SAN holds is read by a third initiator, never taken from the code under test."""
from __future__ import annotations

from typing import Any


from stonewall.clock import Deadline
from stonewall.holder.client import HolderClient
from stonewall.storage.reports import ClaimOutcome
from stonewall.storage.view import LunView
from stonewall.storage.scsi.types import ReservationType
from stonewall.vm.control import (
    Eviction, StartOutcome, StopResult, destroy_guests_for_lost_ownership, start_guest,
    stop_guest)
from stonewall.vm.libvirt_conn import DomainState
from stonewall.vm.placement import LunState

from ..lab_fixtures import observer  # noqa: F401 - pytest finds fixtures by name
from .conftest import NodeFile, OpenHost, domain_xml
from .vm_lab import Holding, Hosts, holdings, hosts, lab, soon  # noqa: F401

WE_AR = ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS


def start(lab, hosts: Hosts, node: str, guest: str, holder: Any = None):
    return start_guest(guest, hosts.nodes[node], lab.config(node), holder or lab.client(node),
                       hosts.conns[node], soon())


def stop(lab, hosts: Hosts, node: str, guest: str, destroy: bool = False):
    return stop_guest(guest, hosts.nodes[node], lab.config(node), lab.client(node),
                      hosts.conns[node], soon(), destroy=destroy)


def test_start_on_the_owner_claims_its_lun_on_every_path(lab, hosts, observer):
    report = start(lab, hosts, "node-b", "web1")
    assert report.outcome is StartOutcome.STARTED, report.reasons
    assert report.taken == ("web1-disk",)
    assert hosts.running("node-b") == {"web1"}
    # node-b's two data paths and two control paths, under an all-registrants reservation
    assert holdings(lab, observer())["web1-disk"] == Holding(("node-b",) * 4, WE_AR)
    assert set(lab.write_on_every_path("node-b", "web1-disk").values()) == {"written"}
    again = start(lab, hosts, "node-b", "web1")
    assert again.outcome is StartOutcome.ALREADY_RUNNING and again.taken == ()


def test_start_on_the_non_owner_is_refused_by_may_run_and_takes_nothing(lab, hosts, observer):
    assert start(lab, hosts, "node-b", "web1").outcome is StartOutcome.STARTED
    before = holdings(lab, observer())
    refused = start(lab, hosts, "node-a", "web1")
    assert refused.outcome is StartOutcome.REFUSED and refused.taken == ()
    assert [c.state for c in refused.placement.checks] == [LunState.REGISTERED_BY_OTHER]
    assert ("LUN web1-disk is registered by node-b: the guest runs, or may run, there"
            in refused.reasons)
    assert hosts.running("node-a") == set()
    assert hosts.hosts_running("web1") == ["node-b"]
    assert holdings(lab, observer()) == before


def test_a_bypass_of_our_tools_is_refused_by_the_san(lab, hosts):
    """A QEMU on node-a that writes web1's LUN through node-a's own map (what `virsh start`
    behind stonewall's back would do): refused while node-b runs web1, since node-a is not
    registered there; the LUN is free again once node-b stopped and unregistered."""
    assert set(lab.write_on_every_path("node-a", "web1-disk").values()) == {"written"}
    assert start(lab, hosts, "node-b", "web1").outcome is StartOutcome.STARTED
    assert set(lab.write_on_every_path("node-a", "web1-disk").values()) == {
        "ReservationConflict"}
    assert stop(lab, hosts, "node-b", "web1").result is StopResult.STOPPED
    assert set(lab.write_on_every_path("node-a", "web1-disk").values()) == {"written"}


def test_stop_releases_and_then_the_other_node_may_start_it(lab, hosts, observer):
    assert start(lab, hosts, "node-a", "db1").outcome is StartOutcome.STARTED
    report = stop(lab, hosts, "node-a", "db1")
    assert report.result is StopResult.STOPPED
    assert [(r.lun, r.ok) for r in report.released] == [("db1-disk", True)]
    assert hosts.running("node-a") == set()
    # the last registrant gone, the all-registrants reservation goes with it (SPC-4)
    assert holdings(lab, observer())["db1-disk"] == Holding((), None)
    assert start(lab, hosts, "node-b", "db1").outcome is StartOutcome.STARTED
    assert holdings(lab, observer())["db1-disk"] == Holding(("node-b",) * 4, WE_AR)


def test_stop_with_destroy_kills_it_and_releases(lab, hosts, observer):
    assert start(lab, hosts, "node-b", "own1").outcome is StartOutcome.STARTED
    report = stop(lab, hosts, "node-b", "own1", destroy=True)
    assert report.result is StopResult.STOPPED and not report.release_failures
    assert hosts.conns["node-b"].state("own1") is DomainState.SHUT_OFF
    assert holdings(lab, observer())["own1-disk"] == Holding((), None)


def test_stopping_a_guest_that_does_not_run_releases_nothing_it_does_not_hold(lab, hosts,
                                                                               observer):
    assert start(lab, hosts, "node-a", "app1").outcome is StartOutcome.STARTED
    report = stop(lab, hosts, "node-b", "app1")  # node-b never ran it
    assert report.result is StopResult.WAS_NOT_RUNNING
    assert [(r.lun, r.ok) for r in report.released] == [("app1-disk", True)]
    assert holdings(lab, observer())["app1-disk"] == Holding(("node-a",) * 4, WE_AR)


class PeerClaimsFirst:
    """node-b's real holder, except that just before it claims `lun` node-a's holder claims
    that LUN: the peer winning the race between our check and our claim."""

    def __init__(self, mine: HolderClient, peer: HolderClient, lun: str) -> None:
        self.mine, self.peer, self.lun = mine, peer, lun

    def views(self, lun_names: list[str] | None, deadline: Deadline) -> dict[str, LunView]:
        return self.mine.views(lun_names, deadline)

    def claim(self, lun: str, deadline: Deadline) -> ClaimOutcome:
        if lun == self.lun:
            assert self.peer.claim(lun, deadline).ok is True
        return self.mine.claim(lun, deadline)

    def release(self, lun: str, deadline: Deadline) -> ClaimOutcome:
        return self.mine.release(lun, deadline)


def test_losing_the_race_for_the_second_lun_gives_back_the_first(lab, hosts, observer):
    racing = PeerClaimsFirst(lab.client("node-b"), lab.client("node-a"), "duo1-b")
    report = start(lab, hosts, "node-b", "duo1", holder=racing)
    assert report.outcome is StartOutcome.CLAIM_FAILED
    assert "registered by another node (node-a)" in report.reasons[0]
    assert [(r.lun, r.ok) for r in report.released] == [("duo1-a", True)]
    held = holdings(lab, observer())
    assert held["duo1-a"] == Holding((), None)
    assert held["duo1-b"] == Holding(("node-a",) * 4, WE_AR)
    assert hosts.running("node-b") == set()


def test_a_guest_with_an_unmappable_disk_is_reported_and_not_started(lab, hosts, observer):
    before = holdings(lab, observer())
    report = start(lab, hosts, "node-a", "bad1")
    assert report.outcome is StartOutcome.UNMAPPABLE
    assert report.reasons == ("disk vda (/dev/sdz): block device whose name identifies no LUN",)
    assert hosts.running("node-a") == set() and holdings(lab, observer()) == before


def test_without_the_holder_nothing_starts(lab, hosts):
    lab.holders["node-a"].stop()
    report = start(lab, hosts, "node-a", "web1")
    assert report.outcome is StartOutcome.HOLDER_UNAVAILABLE
    assert hosts.running("node-a") == set()


def test_a_guest_not_defined_here_is_reported(lab, hosts):
    assert start(lab, hosts, "node-a", "ghost").outcome is StartOutcome.NOT_DEFINED


# -- lost ownership ---------------------------------------------------------------------------
RUNNING, PAUSED = 1, 3  # virDomainState numbers the test driver loads from a node file


def test_lost_ownership_destroys_running_and_paused_guests_and_never_resumes(
        node_file: NodeFile, open_host: OpenHost):
    conn = open_host(node_file("node-a", [
        domain_xml("web1", [], runstate=RUNNING), domain_xml("db1", [], runstate=PAUSED),
        domain_xml("app1", [], runstate=5)]))
    assert conn.state("db1") is DomainState.PAUSED
    report = destroy_guests_for_lost_ownership(conn, ["web1", "db1", "app1", "gone1"],
                                               Deadline.after(5))
    assert {g.guest: g.outcome for g in report.guests} == {
        "web1": Eviction.DESTROYED, "db1": Eviction.DESTROYED,
        "app1": Eviction.NOT_RUNNING, "gone1": Eviction.NOT_RUNNING}
    assert report.all_off
    assert {d.name: d.state for d in conn.list_domains()} == {
        "web1": DomainState.SHUT_OFF, "db1": DomainState.SHUT_OFF, "app1": DomainState.SHUT_OFF}


def test_lost_ownership_without_libvirt_is_cannot_tell_not_stopped(node_file: NodeFile,
                                                                    open_host: OpenHost):
    conn = open_host(node_file("node-a", [domain_xml("web1", [], runstate=RUNNING)]))
    conn.close()  # the daemon went away
    report = destroy_guests_for_lost_ownership(conn, ["web1"], Deadline.after(5))
    assert [g.outcome for g in report.guests] == [Eviction.CANNOT_TELL]
    assert not report.all_off and report.not_off[0].guest == "web1"
