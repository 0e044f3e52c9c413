"""Pacemaker's own fencer drives fence_stonewall in a one-node cluster: it starts the device,
unfences the node through it, fences a registered node that is not a member, and fails a
fence when the device cannot act. Every outcome is read back on the target by an initiator
of our own."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.config.keys import format_key
from stonewall.eventlog import read_events
from stonewall.lab.tgtd import Tgtd

from .conftest import OneNodeLab, one_node_lab
from .support import read_keys_now

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(array: Tgtd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneNodeLab]:
    with one_node_lab(array, tmp_path_factory.mktemp("one-node"), host_list="node1 node2",
                      provides_unfencing=True) as started:
        started.node.wait_started("swdev", Deadline.after(30))
        started.node.wait_started("dummy", Deadline.after(30))  # runs only once unfenced
        yield started


def test_pacemaker_unfences_the_node_through_the_agent_before_starting_resources(lab: OneNodeLab) -> None:
    config = lab.stonewall.config("node1")
    node1 = config.node("node1").key
    keys = read_keys_now(config, Deadline.after(10))
    assert len(keys) == 6  # 3 LUNs x 2 portals
    assert all(node1 in found for found in keys.values()), keys
    history = lab.node.stonith_admin("--history", "node1")
    assert "unfencing of node1 successful" in history.stdout, history.output
    unfenced = [e for e in read_events(config.paths.event_log) if e["action"] == "on"]
    assert unfenced and unfenced[0]["actor"] == "node1" and unfenced[0]["outcome"] == "unfenced"
    assert unfenced[0]["details"]["target_from"] == "port"  # what Pacemaker 2.1 sends


def test_the_fencer_knows_the_device_its_targets_and_can_query_it(lab: OneNodeLab) -> None:
    registered = lab.node.stonith_admin("--list-registered")
    assert registered.returncode == 0 and "swdev" in registered.stdout.split()
    for_node2 = lab.node.stonith_admin("--list", "node2")
    assert "swdev" in for_node2.stdout.split(), for_node2.output
    for_node3 = lab.node.stonith_admin("--list", "node3")  # not in pcmk_host_list
    assert "swdev" not in for_node3.stdout.split()
    targets = lab.node.stonith_admin("--list-targets", "swdev")  # runs the agent's list
    assert targets.returncode == 0 and {"node1", "node2", "node3"} <= set(targets.stdout.split())
    query = lab.node.stonith_admin("--query", "swdev")  # the agent's monitor
    assert query.returncode == 0, query.output


def test_fencing_a_registered_non_member_removes_its_key_from_every_lun_and_path(
        lab: OneNodeLab) -> None:
    config = lab.stonewall.config("node1")
    node1, node2 = config.node("node1").key, config.node("node2").key
    lab.stonewall.start_holder("node2", join=True)
    try:
        before = read_keys_now(config, Deadline.after(10))
        assert all(node2 in found for found in before.values()), before
        started = time.monotonic()
        fenced = lab.node.fence("node2", timeout=30)
        took = time.monotonic() - started
    finally:
        lab.stonewall.holders.pop("node2").stop()
    assert fenced.returncode == 0, fenced.output + lab.node.pacemaker_log()[-3000:]
    after = read_keys_now(config, Deadline.after(10))
    assert all(node2 not in found for found in after.values()), after
    assert all(node1 in found for found in after.values()), after
    assert took < 10
    record = [e for e in read_events(config.paths.event_log) if e["action"] == "off"][-1]
    assert (record["actor"], record["target"], record["outcome"]) == ("node1", "node2", "fenced")
    # The record of fencing.topology, the same for the agent as for DRBD's fence-peer.
    [storage] = record["details"]["levels"]
    assert (storage["level"], storage["verified"]) == ("storage", True)
    checks = storage["verification"]["checks"]
    assert [c["lun"] for c in checks] == ["arbiter0", "arbiter1", "data0"]  # arbiter first
    assert all(c["verdict"] is True and c["paths_up"] == 2 for c in checks)
    assert format_key(node2) in record["details"]["message"]
    history = lab.node.stonith_admin("--history", "node2")
    assert "turning off of node2 successful" in history.stdout, history.output


def test_a_device_that_cannot_act_makes_the_fence_fail(lab: OneNodeLab, tmp_path: Path) -> None:
    config = lab.stonewall.config("node1")
    node3 = config.node("node3").key
    lab.stonewall.start_holder("node3", join=True)
    try:
        registered = lab.node.stonith_admin(
            "--register", "brokendev", "--agent", "fence_stonewall",
            "-o", f"config={tmp_path / 'no-such-config.yaml'}", "-o", "pcmk_host_list=node3")
        assert registered.returncode == 0, registered.output
        try:
            fenced = lab.node.fence("node3", timeout=20)
        finally:
            lab.node.stonith_admin("--deregister", "brokendev")
        assert fenced.returncode != 0, fenced.output
        assert "Couldn't fence node3" in fenced.stderr
        assert "fence_stonewall: off: configuration" in lab.node.pacemaker_log()
        after = read_keys_now(config, Deadline.after(10))
        assert all(node3 in found for found in after.values())  # nothing was done to node3
    finally:
        lab.stonewall.holders.pop("node3").stop()


def test_unfencing_runs_only_on_the_target_itself(lab: OneNodeLab) -> None:
    own = lab.node.unfence("node1", timeout=20)
    assert own.returncode == 0, own.output
    other = lab.node.unfence("node2", timeout=20)  # on_target="1": node2 would have to run it
    assert other.returncode != 0


def test_the_installed_agent_answers_metadata_as_user_hacluster(lab: OneNodeLab) -> None:
    # pacemaker-controld asks for metadata as hacluster (reference/pacemaker.md B.2).
    result = lab.node.run(["runuser", "-u", "hacluster", "--", "/usr/sbin/fence_stonewall",
                           "-o", "metadata"], timeout=30)
    assert result.returncode == 0, result.output
    assert 'name="fence_stonewall"' in result.stdout and result.stderr == ""
    assert "Metadata action for fence_stonewall returned error" not in lab.node.pacemaker_log()
