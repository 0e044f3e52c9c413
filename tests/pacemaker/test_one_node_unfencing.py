"""Unfencing asked for by hand (`stonith_admin --unfence`, no `provides=unfencing`), and the
rule that a node fenced in this boot is never unfenced again until it reboots."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.eventlog import read_events
from stonewall.lab.tgtd import Tgtd

from .conftest import OneNodeLab, one_node_lab
from .support import read_keys_now

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(array: Tgtd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OneNodeLab]:
    with one_node_lab(array, tmp_path_factory.mktemp("unfencing"),
                      host_list="node1 node2 node3", provides_unfencing=False) as started:
        started.node.wait_started("swdev", Deadline.after(30))
        yield started


def test_unfence_registers_the_local_node_and_a_fenced_boot_refuses_it_after(lab: OneNodeLab) -> None:
    config = lab.stonewall.config("node1")
    node1, node3 = config.node("node1").key, config.node("node3").key
    # Without provides=unfencing nothing unfences node1 (measured on 2.1.5; reference B.2),
    # and the device still starts: monitor does not need this node's registration.
    assert all(node1 not in keys for keys in read_keys_now(config, Deadline.after(10)).values())

    unfenced = lab.node.unfence("node1", timeout=20)
    assert unfenced.returncode == 0, unfenced.output
    assert all(node1 in keys for keys in read_keys_now(config, Deadline.after(10)).values())

    # node3 (registered, not a member) wins a fence race against node1 ...
    lab.stonewall.start_holder("node3", join=True)
    try:
        assert lab.stonewall.client("node3").preempt("node1", None, Deadline.after(10)).fenced is True
        # ... so node1's own attempt to fence node3 finds its key gone and fails,
        lost = lab.node.fence("node3", timeout=20)
        assert lost.returncode != 0, lost.output
        keys = read_keys_now(config, Deadline.after(10))
        assert all(node3 in found and node1 not in found for found in keys.values()), keys
        # and in this boot node1 may not register again: `on` is refused.
        refused = lab.node.unfence("node1", timeout=20)
        assert refused.returncode != 0, refused.output
        keys = read_keys_now(config, Deadline.after(10))
        assert all(node1 not in found for found in keys.values()), keys
    finally:
        lab.stonewall.holders.pop("node3").stop()
    records = [(e["action"], e["target"], e["outcome"]) for e in read_events(config.paths.event_log)]
    assert records[0] == ("on", "node1", "unfenced")
    assert ("off", "node3", "not-fenced") in records
    assert records[-1] == ("on", "node1", "refused")
    last = read_events(config.paths.event_log)[-1]
    assert "FencedBoot" in last["details"]["message"]
    assert "lost the race" in [e for e in read_events(config.paths.event_log)
                               if e["action"] == "off"][0]["details"]["message"]
