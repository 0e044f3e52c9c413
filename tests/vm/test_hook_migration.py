"""The hook's migration steps (vm/hook_migration.py) against the lab's real holders and tgtd:
a plain incoming migration registers the destination beside a live, registered source, and
admits exactly one `prepare begin`; a permit of `vm migrate` admits without registering; a
source that was fenced, or no source at all, is not a migration; `release end` unregisters."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.holder.handoffs import Direction
from stonewall.lab.tgtd import Tgtd
from stonewall.vm.hook import EXIT_ALLOWED, EXIT_REFUSED, HookCall, decide

from ..lab_fixtures import Lab, running_lab

GUESTS = [{"name": "web1", "luns": ["web1-disk"], "home": "node-a"}]
XML = "<domain type='qemu'><name>web1</name></domain>"


@pytest.fixture
def lab(tgtd: Tgtd, tmp_path: Path) -> Iterator[Lab]:
    with running_lab(tgtd, tmp_path / "lab", {"guests": GUESTS},
                     guest_runs={"web1-disk": "node-a"}) as started:
        for node in ("node-a", "node-b"):
            started.start_holder(node)
        yield started


def hook(lab: Lab, node: str, operation: str, sub: str = "begin") -> tuple[int, str | None]:
    config = lab.config(node)
    client = lab.client(node)
    decision = decide(HookCall("web1", operation, sub, "-"), XML,
                      load_config=lambda: config, node_name=node,
                      read_views=lambda luns, deadline: client.views(luns, deadline),
                      deadline=Deadline.after(10), holder=lambda _config: client)
    return decision.exit_code, decision.message


def registered(lab: Lab) -> set[str]:
    view = lab.client("node-a").views(["web1-disk"], Deadline.after(10))["web1-disk"]
    names = {n.key: n.name for n in lab.config("node-a").nodes}
    return {names[key] for path in view.up_paths for key in (path.keys or ())}


def test_a_plain_migration_registers_the_destination_and_admits_one_prepare(lab: Lab) -> None:
    assert hook(lab, "node-b", "migrate") == (EXIT_ALLOWED, None)
    assert registered(lab) == {"node-a", "node-b"}
    assert hook(lab, "node-b", "prepare") == (EXIT_ALLOWED, None)
    # The record admitted its one prepare: another start is judged, and refused.
    code, message = hook(lab, "node-b", "prepare")
    assert code == EXIT_REFUSED and "registered by node-a" in message
    # The source's `release end` after the switchover leaves node-b the only registrant.
    assert hook(lab, "node-a", "release", "end") == (EXIT_ALLOWED, None)
    assert registered(lab) == {"node-b"}


def test_a_failed_plain_migration_is_undone_by_the_destinations_release_end(lab: Lab) -> None:
    assert hook(lab, "node-b", "migrate")[0] == EXIT_ALLOWED
    assert hook(lab, "node-b", "release", "end") == (EXIT_ALLOWED, None)
    assert registered(lab) == {"node-a"}


def test_a_source_that_was_fenced_is_not_a_migration_source(lab: Lab) -> None:
    fence = lab.client("node-b").preempt("node-a", ["arbiter0", "arbiter1"], Deadline.after(10))
    assert fence.fenced
    code, message = hook(lab, "node-b", "migrate")
    assert code == EXIT_REFUSED
    assert "node-a is not registered on arbiter LUN arbiter0: it may have been fenced" in message
    assert registered(lab) == {"node-a"}


def test_a_vm_migrate_permit_admits_without_registering(lab: Lab) -> None:
    lab.client("node-b").open_handoff("web1", "node-a", Direction.INCOMING, ["web1-disk"], 30)
    assert hook(lab, "node-b", "migrate") == (EXIT_ALLOWED, None)
    assert hook(lab, "node-b", "prepare") == (EXIT_ALLOWED, None)
    assert registered(lab) == {"node-a"}  # the LUNs move later, while the guest is paused
    # The source's `release end` leaves the LUNs to `vm migrate` while its note is open.
    lab.client("node-a").open_handoff("web1", "node-b", Direction.OUTGOING, ["web1-disk"], 30)
    assert hook(lab, "node-a", "release", "end") == (EXIT_ALLOWED, None)
    assert registered(lab) == {"node-a"}
    claimed = lab.client("node-b").claim("web1-disk", Deadline.after(10), "node-a")
    assert claimed.ok, claimed
    assert registered(lab) == {"node-a", "node-b"}


def test_the_handoff_claim_needs_a_used_permit(lab: Lab) -> None:
    from stonewall.holder.api import HolderRefused

    with pytest.raises(HolderRefused, match="no incoming migration covers LUN web1-disk"):
        lab.client("node-b").claim("web1-disk", Deadline.after(10), "node-a")
    lab.client("node-b").open_handoff("web1", "node-a", Direction.INCOMING, ["web1-disk"], 30)
    with pytest.raises(HolderRefused, match="was not admitted by this node's hook"):
        lab.client("node-b").claim("web1-disk", Deadline.after(10), "node-a")
    assert registered(lab) == {"node-a"}


def test_no_registered_source_is_judged_as_a_start(lab: Lab) -> None:
    assert lab.client("node-a").release("web1-disk", Deadline.after(10)).ok
    code, message = hook(lab, "node-b", "migrate")
    assert code == EXIT_REFUSED and "not registered" in message
    assert registered(lab) == set()


def test_the_peer_channel_relays_the_migration_operations_only(lab: Lab) -> None:
    """vm/peer.py's command transport through `stonewall holder relay`, as over ssh."""
    import sys

    from stonewall.holder.api import HolderUnavailable
    from stonewall.vm.peer import peer_holder

    relay = [sys.executable, "-m", "stonewall", "--config", str(lab.configs["node-b"]),
             "holder", "relay"]
    peer = peer_holder(lab.config("node-a"), "node-b", command=relay)
    assert peer.state(Deadline.after(20)).node == "node-b"
    permit = peer.open_handoff("web1", "node-a", Direction.INCOMING, ["web1-disk"], 30,
                               Deadline.after(20))
    assert permit.describe() == "migrating (node-a → node-b)"
    with pytest.raises(HolderUnavailable, match="preempt is not relayed for a peer"):
        peer.preempt("node-a", ["arbiter0"], Deadline.after(20))
    with pytest.raises(HolderUnavailable, match="a hook's record is not relayed"):
        peer.open_handoff("db1", "node-a", Direction.INCOMING, ["web1-disk"], 30,
                          Deadline.after(20), by_hook=True)
    assert registered(lab) == {"node-a"}
    with pytest.raises(HolderUnavailable, match="a claim outside a handoff is not relayed"):
        peer.claim("web1-disk", Deadline.after(20))
