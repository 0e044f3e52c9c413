"""Fixtures for the Pacemaker tests: a tgtd per test module (a cluster outlives one test), and
a one-node Pacemaker cluster whose fence_stonewall device acts through node1's holder."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.lab.cluster import LabCluster
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.pacemaker import LabNode, OneNodeCluster, missing_prerequisites
from stonewall.lab.pacemaker_config import CibSeed, FenceDevice
from stonewall.lab.tgtd import Tgtd

from ..lab_fixtures import Lab
from .support import LUNS, NODES

CLUSTER_START_SECONDS = 60.0


def skip_without_pacemaker() -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"the Pacemaker lab needs: {', '.join(missing)} (scripts/setup installs "
                    "pacemaker, corosync, pacemaker-cli-utils)")


def add_lab_luns(array: Tgtd) -> None:
    """Target ARRAY_IQN with one LUN per entry of LUNS."""
    tid = array.add_target(ARRAY_IQN)
    for lun in LUNS:
        array.add_lun(tid, lun.lun)


@pytest.fixture(scope="module")
def array(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgtd]:
    """tgtd on two loopback portals (two paths per LUN) for one test module's cluster."""
    skip_without_pacemaker()
    started = Tgtd(tmp_path_factory.mktemp("tgtd"), portal_count=2).start()
    try:
        add_lab_luns(started)
        yield started
    finally:
        started.stop()


@dataclass
class OneNodeLab:
    stonewall: Lab  # configs, boot ids and holders of node1..node3 (node1 is the member)
    cluster: OneNodeCluster

    @property
    def node(self) -> LabNode:
        return self.cluster.node


@contextmanager
def one_node_lab(array: Tgtd, workdir: Path, *, host_list: str,
                 provides_unfencing: bool) -> Iterator[OneNodeLab]:
    """node1 as a one-node cluster with device `swdev` (fence_stonewall over every LUN),
    node1's holder running on the host, not joined: unfencing is Pacemaker's to do."""
    nodes = Lab(LabCluster(workdir / "lab", array, nodes=NODES, luns=LUNS, cluster="swtest"))
    device = FenceDevice("swdev", {"pcmk_host_list": host_list,
                                   "config": str(nodes.configs["node1"])},
                         provides_unfencing=provides_unfencing)
    cluster = OneNodeCluster(workdir / "pacemaker", CibSeed("swtest", devices=[device]))
    try:
        nodes.start_holder("node1", join=False)
        cluster.start(Deadline.after(CLUSTER_START_SECONDS))
        yield OneNodeLab(nodes, cluster)
    finally:
        cluster.stop()
        nodes.stop()
