"""Two Pacemaker nodes, each in its own namespaces, both on the SAN: cut the cluster link and
Pacemaker fences through fence_stonewall. The target says who won."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import ClusterConfig
from stonewall.eventlog import read_events
from stonewall.lab.cluster import LabCluster
from stonewall.lab.netns import entered, ip
from stonewall.lab.pacemaker import NODE_NAMES, TwoNodeLab
from stonewall.lab.pacemaker_config import CibSeed, FenceDevice
from stonewall.storage.paths import PathSet, close_paths
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.errors import ReservationConflict
from stonewall.storage.scsi.iscsi import IscsiSession
from stonewall.storage.scsi.retry import RetryReport, run_with_retries
from stonewall.storage.scsi.status import raise_for_status

from .conftest import add_lab_luns, skip_without_pacemaker
from ..lab_fixtures import Lab
from .support import LUNS, data_nexus, holder_service, keys_on_paths, observer_paths

pytestmark = pytest.mark.slow

NODE_CONFIG = "/run/stonewall/cluster.yaml"  # each node's own file, at one path on every node
FENCED_WITHIN = 60.0  # cut -> membership lost (token 3 s + consensus) -> fence -> verified


@dataclass
class Pair:
    lab: TwoNodeLab
    stonewall: Lab
    observer: PathSet  # sessions of a separate initiator, logged in from the SAN namespace

    @property
    def config(self) -> ClusterConfig:
        return self.stonewall.config("node1")

    def keys(self) -> dict[tuple[str, str], tuple[int, ...]]:
        return keys_on_paths(self.observer, Deadline.after(10))

    def fenced(self, winner: str, loser: str) -> bool:
        """`winner`'s fencer reports `loser` fenced: the cluster asks for a reboot (the
        default stonith-action), which fenced runs as the agent's off."""
        history = self.lab.nodes[winner].stonith_admin("--history", loser, "--verbose",
                                                     timeout=20)
        return any(f"{action} of {loser} successful" in history.stdout
                   for action in ("reboot", "turning off"))


@contextmanager
def pair_of_nodes(workdir: Path, delay_base: str | None) -> Iterator[Pair]:
    """node1 and node2 started, unfenced, with device swdev on both; namespaces gone after."""
    skip_without_pacemaker()
    lab = TwoNodeLab(workdir)
    observer: PathSet = {}
    try:
        lab.start_network()
        add_lab_luns(lab.tgtd)
        nodes = Lab(LabCluster(workdir / "lab", lab.tgtd, nodes=list(NODE_NAMES), luns=LUNS,
                               cluster="swpair"))
        params = {"pcmk_host_list": "node1 node2", "config": NODE_CONFIG}
        if delay_base:
            params["pcmk_delay_base"] = delay_base
        seed = CibSeed("swpair", devices=[FenceDevice("swdev", params)])
        services = {node: [holder_service(nodes, node, NODE_CONFIG)] for node in NODE_NAMES}
        binds = {node: [(str(nodes.cluster.node_dir(node)), "/run/stonewall")]
                 for node in NODE_NAMES}
        deadline = Deadline.after(90)
        lab.start_nodes({node: seed for node in NODE_NAMES}, deadline, services=services,
                        binds=binds)
        for node in lab.nodes.values():
            node.wait_started("dummy", deadline)  # placed only after unfencing
        with entered(lab.san):
            observer = observer_paths(nodes.config("node1"), Deadline.after(10))
        yield Pair(lab, nodes, observer)
    finally:
        close_paths(observer)
        lab.stop()
    left = [name for name in ip("netns", "list").split() if name.startswith(f"sw{lab.tag}")]
    assert left == [], f"namespaces left behind: {left}"


def _wait(condition, seconds: float, what: str) -> None:
    deadline = Deadline.after(seconds)
    while not condition():
        assert not deadline.expired(), f"{what}: not within {seconds:g} s"
        deadline.clock.sleep(0.5)


def _write(session: IscsiSession, report: RetryReport) -> None:
    """One block written through `session` as a node's data path does it: a UNIT ATTENTION
    is consumed and the command re-issued; raises what the target finally answered."""
    def write(deadline: Deadline) -> None:
        result = session.execute(cdb.write_10(0, 1), deadline, data_out=b"\xab" * 512)
        raise_for_status(result, "WRITE(10)")

    run_with_retries(write, Deadline.after(10), SYSTEM_CLOCK, report=report)


def test_node1_fences_node2_through_the_agent_and_node2_can_no_longer_write(tmp_path: Path) -> None:
    # Fencing node1 waits 10 s (pcmk_delay_base), so node1 fences first: the usual way to
    # keep a preferred node in a two-node cluster.
    with pair_of_nodes(tmp_path, delay_base="node1:10s") as pair:
        config = pair.config
        node1, node2 = config.node("node1").key, config.node("node2").key
        keys = pair.keys()
        assert len(keys) == 6 and all({node1, node2} <= set(found) for found in keys.values())
        with entered(pair.lab.node_namespaces["node2"]):  # node2's own data path
            writer = data_nexus(config, "node2", "data0", Deadline.after(10))
        try:
            _write(writer, RetryReport())  # registered: the write goes through

            pair.lab.cut_cluster_link()
            _wait(lambda: pair.fenced("node1", "node2"), FENCED_WITHIN, "node1 fences node2")

            keys = pair.keys()
            assert all(node2 not in found for found in keys.values()), keys
            assert all(node1 in found for found in keys.values()), keys
            seen = RetryReport()
            with pytest.raises(ReservationConflict):
                _write(writer, seen)
            # SPC-4 5.14.11.2.4: the preempted nexus is told first (2A/03), then refused.
            assert [(s.asc, s.ascq) for s in seen.unit_attentions] == [(0x2A, 0x03)]
        finally:
            writer.close()
        fences = [e for e in read_events(pair.stonewall.config("node1").paths.event_log)
                  if e["action"] == "off"]
        assert [(e["actor"], e["target"], e["outcome"]) for e in fences] == [
            ("node1", "node2", "fenced")]


def test_with_two_node_quorum_both_fence_and_exactly_one_wins(tmp_path: Path) -> None:
    with pair_of_nodes(tmp_path, delay_base=None) as pair:
        config = pair.config
        keys_of = {name: config.node(name).key for name in NODE_NAMES}
        pair.lab.cut_cluster_link()
        _wait(lambda: pair.fenced("node1", "node2") or pair.fenced("node2", "node1"),
              FENCED_WITHIN, "one node fences the other")
        winner = "node1" if pair.fenced("node1", "node2") else "node2"
        loser = "node2" if winner == "node1" else "node1"
        for node in NODE_NAMES:  # two_node: each half keeps quorum, so each one fences
            view = pair.lab.nodes[node].view()
            assert view is not None and view.quorate and view.online == (node,), view
        # The loser tried too, and its holder found its own key gone on the arbiter.
        attempts = pair.stonewall.config(loser).paths.event_log
        _wait(lambda: any(e["action"] == "off" for e in read_events(attempts)), FENCED_WITHIN,
              f"{loser} tries to fence {winner}")
        tried = [e for e in read_events(attempts) if e["action"] == "off"][0]
        assert (tried["actor"], tried["target"], tried["outcome"]) == (loser, winner, "not-fenced")
        assert "lost the race" in tried["details"]["message"]
        keys = pair.keys()
        assert all(keys_of[winner] in found for found in keys.values()), keys
        assert all(keys_of[loser] not in found for found in keys.values()), keys
        assert not pair.fenced(loser, winner)
