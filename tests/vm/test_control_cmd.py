"""`stonewall vm start/stop/takeover` as an operator runs them: the real command in its own
process against the lab's holders on tgtd. Each run opens its libvirt test-driver node file
afresh (a new host with the guests shut off), so these tests check what the SAN keeps between
commands and the documented exit statuses."""
from __future__ import annotations

import subprocess
import sys

from .conftest import NodeFile
from .vm_lab import Holding, guest_domains, holdings, lab, soon  # noqa: F401

from ..lab_fixtures import observer  # noqa: F401 - pytest finds fixtures by name


def stonewall(lab, node: str, uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stonewall", "--config", str(lab.configs[node]), "vm",
               *args, "--node", node, "--uri", uri]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def node_uris(node_file: NodeFile, tgtd) -> dict[str, str]:
    return {node: node_file(node, guest_domains()) for node in ("node-a", "node-b")}


def test_start_refuse_and_stop_exit_statuses(lab, node_file, tgtd, observer):
    uri = node_uris(node_file, tgtd)
    started = stonewall(lab, "node-b", uri["node-b"], "start", "web1")
    assert started.returncode == 0, started.stderr
    assert started.stdout == "web1: started on node-b (claimed web1-disk)\n"

    refused = stonewall(lab, "node-a", uri["node-a"], "start", "web1")
    assert refused.returncode == 1
    assert "LUN web1-disk is registered by node-b: the guest runs, or may run" in refused.stderr

    # A fresh test-driver host: web1 is off there, and node-b's registration is given back.
    stopped = stonewall(lab, "node-b", uri["node-b"], "stop", "web1")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith("web1: was not running on node-b (released web1-disk)")
    assert holdings(lab, observer())["web1-disk"] == Holding((), None)

    assert stonewall(lab, "node-a", uri["node-a"], "start", "ghost").returncode == 2
    unmappable = stonewall(lab, "node-a", uri["node-a"], "start", "bad1")
    assert unmappable.returncode == 1 and "/dev/sdz" in unmappable.stderr


def test_start_without_the_holder_cannot_tell(lab, node_file, tgtd, observer):
    lab.holders["node-a"].stop()
    result = stonewall(lab, "node-a", node_uris(node_file, tgtd)["node-a"], "start", "web1")
    assert result.returncode == 3 and "holder" in result.stderr
    assert holdings(lab, observer())["web1-disk"] == Holding((), None)


def test_takeover_refuses_a_peer_that_is_not_proven_fenced(lab, node_file, tgtd, observer):
    uri = node_uris(node_file, tgtd)["node-b"]
    nothing = stonewall(lab, "node-b", uri, "takeover", "node-a")
    assert nothing.returncode == 3 and "node-a is not proven fenced" in nothing.stderr
    held = holdings(lab, observer())
    assert [lun for lun, holding in held.items() if holding.reservation] == ["arbiter0"]
    assert stonewall(lab, "node-b", uri, "takeover", "node-c").returncode == 2
    assert stonewall(lab, "node-b", uri, "takeover", "node-b").returncode == 2


def test_takeover_after_a_fence_starts_the_peers_guests_in_order(lab, node_file, tgtd,
                                                                 observer):
    uri = node_uris(node_file, tgtd)["node-b"]
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    result = stonewall(lab, "node-b", uri, "takeover", "node-a", "--power-off-verified")
    assert result.returncode == 1  # bad1 cannot start
    assert result.stdout.splitlines() == [
        "takeover of node-a: node-a's key was on arbiter0 when this node preempted it",
        "web1 (its home is node-a): started", "db1 (its home is node-a): started",
        "app1 (its home is node-a): started"]
    assert result.stderr.startswith("bad1 (its home is node-a): a disk maps to no configured "
                                    "LUN (disk vda (/dev/sdz)")
    held = holdings(lab, observer())
    assert {held[lun].registered for lun in ("web1-disk", "db1-disk", "app1-disk")} == {
        ("node-b",) * 4}


def test_takeover_starts_a_guest_the_peer_ran_away_from_its_home_and_says_why(
        lab, node_file, tgtd, observer):
    # node-a ran own1 (home node-b: migrated there), so node-a was registered on own1-disk.
    assert lab.client("node-a").claim("own1-disk", soon()).ok
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    uri = node_uris(node_file, tgtd)["node-b"]
    result = stonewall(lab, "node-b", uri, "takeover", "node-a", "--power-off-verified")
    lines = result.stdout.splitlines()
    assert lines[0] == ("takeover of node-a: node-a's key was on arbiter0, own1-disk when this "
                        "node preempted it")
    assert lines[1] == "own1 (node-a was registered on own1-disk at the fence): started"
    assert holdings(lab, observer())["own1-disk"].registered == ("node-b",) * 4
    assert "duo1" not in result.stdout + result.stderr  # home node-b, not node-a's


def test_takeover_of_a_powered_off_peer_preempts_the_key_it_still_holds(lab, node_file, tgtd,
                                                                       observer):
    # Storage after power: a power-only fence that could not reach the SAN left node-a's key
    # registered; the takeover the operator asks for preempts it, then starts the guests.
    uri = node_uris(node_file, tgtd)["node-b"]
    node_a = lab.config("node-b").node("node-a").key
    assert any(node_a in (path.keys or ()) for view in _views(observer) for path in view.paths)
    result = stonewall(lab, "node-b", uri, "takeover", "node-a", "--power-off-verified")
    assert "stonewall: node-a's key preempted and verified gone on every LUN" in result.stdout
    assert "web1 (its home is node-a): started" in result.stdout.splitlines()
    assert not any(node_a in (path.keys or ()) for view in _views(observer)
                   for path in view.paths)


def test_takeover_says_what_is_left_when_the_key_cannot_be_preempted(lab, node_file, tgtd):
    lab.holders["node-b"].stop()
    uri = node_uris(node_file, tgtd)["node-b"]
    result = stonewall(lab, "node-b", uri, "takeover", "node-a", "--power-off-verified")
    assert result.returncode != 0
    assert "node-a is off, but its key is not verified gone everywhere (holder unavailable" \
        in result.stderr
    assert "left to do: `stonewall vm takeover node-a --power-off-verified`" in result.stderr


def _views(observer):  # type: ignore[no-untyped-def]
    from stonewall.clock import SYSTEM_CLOCK, Deadline
    from stonewall.storage.ownership import read_views

    return read_views(observer(), Deadline.after(10), SYSTEM_CLOCK).values()
