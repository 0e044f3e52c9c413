"""A two-node lab for starting, stopping and taking over guests: the shared lab cluster
(tests/lab_fixtures.py: tgtd, one holder process per node) with guest LUNs and guests, plus one
libvirt test-driver host per node on which every guest is defined (shut off), as an operator
keeps definitions on both hosts. Each test-driver host lives in this process (the driver keeps
its state per connection), so the tests drive libvirt in-process."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import Node
from stonewall.lab.cluster import LabLun
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import PathSet
from stonewall.config.keys import describe_key
from stonewall.storage.scsi.types import ReservationType
from stonewall.vm.hook import EXIT_ALLOWED, HookCall, HookDecision, decide
from stonewall.vm.libvirt_conn import DomainState, LibvirtConnection

from ..lab_fixtures import Lab, running_lab
from .conftest import SHUT_OFF_RUNSTATE, NodeFile, OpenHost, block_disk, domain_xml

LUNS = [LabLun("arbiter0", 1, "arbiter", 0),
        LabLun("web1-disk", 2, "guest"),
        LabLun("db1-disk", 3, "guest"),
        LabLun("app1-disk", 4, "guest"),
        LabLun("own1-disk", 5, "guest"),
        LabLun("duo1-a", 6, "guest"),
        LabLun("duo1-b", 7, "guest")]

GUESTS = [
    # web1's LUN comes from its domain XML (its multipath map), not from the config.
    {"name": "web1", "home": "node-a", "order": 10, "start_policy": "immediate"},
    {"name": "db1", "luns": ["db1-disk"], "home": "node-a", "order": 20},
    {"name": "bad1", "home": "node-a", "order": 25},  # its only disk is /dev/sdz
    {"name": "app1", "luns": ["app1-disk"], "home": "node-a", "order": 30,
     "start_policy": "safe"},
    {"name": "own1", "luns": ["own1-disk"], "home": "node-b", "order": 5},
    {"name": "duo1", "luns": ["duo1-a", "duo1-b"], "home": "node-b", "order": 50},
]

NODES = ("node-a", "node-b")


@pytest.fixture
def lab(tgtd, tmp_path: Path) -> Iterator[Lab]:
    """The lab with guest LUNs and guests; both holders started and joined."""
    with running_lab(tgtd, tmp_path / "lab", {"guests": GUESTS}, LUNS) as started:
        for node in NODES:
            started.start_holder(node)
        yield started


def guest_domains() -> list[str]:
    disks = {
        "web1": [block_disk("/dev/mapper/web1-disk", "vda")],
        "db1": [], "app1": [], "own1": [], "duo1": [],  # their LUNs are in the config
        "bad1": [block_disk("/dev/sdz", "vda")],
    }
    return [domain_xml(name, found, runstate=SHUT_OFF_RUNSTATE) for name, found in disks.items()]


@dataclass
class Hosts:
    """Each node's libvirt (test driver) and its Node entry."""

    conns: dict[str, LibvirtConnection]
    nodes: dict[str, Node]

    def running(self, node: str) -> set[str]:
        return {d.name for d in self.conns[node].list_domains()
                if d.state in (DomainState.RUNNING, DomainState.PAUSED)}

    def hosts_running(self, guest: str) -> list[str]:
        return [node for node in self.conns if guest in self.running(node)]


@pytest.fixture
def hosts(lab: Lab, node_file: NodeFile, open_host: OpenHost, tgtd) -> Hosts:
    config = lab.config("node-a")
    domains = guest_domains()
    return Hosts({node: open_host(node_file(node, domains)) for node in NODES},
                 {node: config.node(node) for node in NODES})


def soon() -> Deadline:
    return Deadline.after(15)


@dataclass(frozen=True)
class Holding:
    """What a third initiator reads on one LUN: the nodes registered (one entry per
    registered nexus) and the reservation type, if any."""

    registered: tuple[str, ...]
    reservation: ReservationType | None


def holdings(lab: Lab, observer_paths: PathSet) -> dict[str, Holding]:
    """Each LUN as the observer reads it; every path must agree."""
    config = lab.config("node-a")
    found = {}
    for lun, view in read_views(observer_paths, soon(), SYSTEM_CLOCK).items():
        seen = {(p.keys, p.reservation) for p in view.paths}
        assert len(view.up_paths) == 2 and len(seen) == 1, (lun, view)
        keys, reservation = seen.pop()
        names = tuple(sorted(describe_key(config, key) for key in keys or ()))
        found[lun] = Holding(names, reservation.type if reservation and reservation.type
                             else None)
    return found


def hook(lab: Lab, node: str, guest: str, xml: str, operation: str,
         sub: str = "begin") -> HookDecision:
    """`node`'s libvirt hook as libvirt runs it for `guest`, with the node's holder."""
    config = lab.config(node)
    client = lab.client(node)
    return decide(HookCall(guest, operation, sub, "-"), xml, load_config=lambda: config,
                  node_name=node, read_views=lambda luns, deadline: client.views(luns, deadline),
                  deadline=soon(), holder=lambda _config: client)


def migrate(lab: Lab, hosts: Hosts, guest: str, source: str, destination: str, *,
            switch_over: bool = True) -> None:
    """A plain `virsh migrate --live` of a running guest, with the hooks libvirt runs (the
    test driver cannot migrate, so the domain moves by a destroy and a start): the
    destination's `migrate begin` registers it beside the source, then `prepare begin`, the
    source's QEMU is gone after the switchover, the destination's runs, and the source's
    `release end` unregisters it. `switch_over=False` stops after `migrate begin`: the
    migration is in flight and both nodes are registered."""
    xml = hosts.conns[destination].xml(guest, inactive=True)
    decision = hook(lab, destination, guest, xml, "migrate")
    assert decision.exit_code == EXIT_ALLOWED, decision.message
    if not switch_over:
        return
    decision = hook(lab, destination, guest, xml, "prepare")
    assert decision.exit_code == EXIT_ALLOWED, decision.message
    hosts.conns[source].destroy(guest, soon())
    hosts.conns[destination].start(guest)
    decision = hook(lab, source, guest, xml, "release", "end")
    assert decision.exit_code == EXIT_ALLOWED and decision.message is None, decision.message
