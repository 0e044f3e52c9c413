"""fence_stonewall run as Pacemaker runs it (stdin lines, a process of its own) against real
holders and tgtd, without a cluster: status, scoping to some LUNs, the self-fence guard, and
a hung array."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.eventlog import read_events
from stonewall.lab.cluster import LabCluster
from stonewall.lab.tgtd import Tgtd

from ..lab_fixtures import Lab
from .support import LUNS, NODES, read_keys_now, run_agent, stdin_lines


@pytest.fixture
def nodes(tgtd: Tgtd, tmp_path: Path) -> Iterator[Lab]:
    """node1 and node3 joined through their holders; the agent acts as node1."""
    started = Lab(LabCluster(tmp_path / "lab", tgtd, nodes=NODES, luns=LUNS))
    try:
        started.start_holder("node1", join=True)
        started.start_holder("node3", join=True)
        yield started
    finally:
        started.stop()


def agent(nodes: Lab, **parameters: str):
    """The agent on node1 (its config), parameters as key=value lines."""
    return run_agent(stdin_lines(config=str(nodes.configs["node1"]), **parameters))


def test_status_and_a_device_scoped_to_one_lun(nodes: Lab) -> None:
    config = nodes.config("node1")
    node3 = config.node("node3").key
    assert agent(nodes, action="status", port="node3").returncode == 0
    assert agent(nodes, action="status", port="node2").returncode == 2  # never joined

    fenced = agent(nodes, action="off", port="node3", luns="arbiter0")
    assert fenced.returncode == 0, fenced.stderr
    keys = read_keys_now(config, Deadline.after(10))
    for (lun, _path), found in keys.items():
        assert (node3 in found) is (lun != "arbiter0"), (lun, found)

    everywhere = agent(nodes, action="status", port="node3")
    assert everywhere.returncode == 0  # still writes to arbiter1 and data0
    assert "on (key registered on arbiter1, data0)" in everywhere.stderr
    assert agent(nodes, action="status", port="node3", luns="arbiter0").returncode == 2
    [record] = [e for e in read_events(config.paths.event_log) if e["action"] == "off"]
    assert record["details"]["luns"] == ["arbiter0"]


def test_off_of_this_node_is_refused_and_changes_nothing(nodes: Lab) -> None:
    config = nodes.config("node1")
    before = read_keys_now(config, Deadline.after(10))
    refused = agent(nodes, action="off", port="node1")
    assert refused.returncode == 1
    assert "node1 is this node; a node never fences its own key" in refused.stderr
    assert read_keys_now(config, Deadline.after(10)) == before
    [record] = read_events(config.paths.event_log)
    assert (record["actor"], record["target"], record["outcome"]) == ("node1", "node1", "refused")


def test_unfencing_another_node_is_refused(nodes: Lab) -> None:
    refused = agent(nodes, action="on", port="node2")
    assert refused.returncode == 1 and "runs on node2 itself, not on node1" in refused.stderr
    config = nodes.config("node1")
    keys = read_keys_now(config, Deadline.after(10))
    assert all(config.node("node2").key not in found for found in keys.values())


def test_a_hung_array_makes_monitor_and_status_fail_within_their_timeout(
        nodes: Lab, tgtd: Tgtd) -> None:
    assert agent(nodes, action="monitor").returncode == 0
    tgtd.freeze()
    try:
        for action in ("monitor", "status"):
            started = time.monotonic()
            result = agent(nodes, action=action, port="node3", timeout="2")
            assert result.returncode == 1, (action, result.stderr)
            assert time.monotonic() - started < 6
    finally:
        tgtd.thaw()
    assert agent(nodes, action="monitor").returncode == 0


def test_verbose_adds_one_line_with_the_evidence_after_the_decision(nodes: Lab) -> None:
    plain = agent(nodes, action="status", port="node3")
    verbose = agent(nodes, action="status", port="node3", verbose="1")
    assert len(plain.stderr.splitlines()) == 1
    decision, evidence = verbose.stderr.splitlines()
    assert decision == plain.stderr.strip()
    assert evidence.startswith("fence_stonewall: status: evidence: {")
    checks = json.loads(evidence.split("evidence: ", 1)[1])["checks"]
    assert sorted(check["lun"] for check in checks) == ["arbiter0", "arbiter1", "data0"]
