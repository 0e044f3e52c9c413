"""fence-peer, run as DRBD runs it, against two node holders on tgtd: the peer is fenced by
storage only when the target shows its key gone, and every doubt keeps I/O frozen (exit 1).
The target's truth is read by a third initiator (the observer)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.eventlog import read_events
from stonewall.storage.ownership import read_views

from .drbd_calls import (
    RESOURCES, HandlerRun, drbd9_env, drbd84_env, kernel_only_env, run_handler_string)

FENCED_BY_STORAGE = 4  # DRBD's P_OUTDATED: "peer was fenced"
FROZEN = 1  # not 3..7: "fence-peer helper broken", I/O stays frozen


def key_of(lab, node: str) -> int:
    return lab.config("node-a").node(node).key


def luns_holding(observer_paths, key: int) -> set[str]:
    """The LUNs on which some path still shows `key`."""
    views = read_views(observer_paths, Deadline.after(10), SYSTEM_CLOCK)
    return {lun for lun, view in views.items()
            if any(key in (path.keys or ()) for path in view.up_paths)}


def fence(lab, programs, me: str, env: dict[str, str], extra: str = "") -> HandlerRun:
    command = f"{programs['fence-peer']} --config {lab.configs[me]} {extra}".strip()
    return run_handler_string(command, env)


def test_peer_fenced_by_storage_exits_4_and_its_key_is_gone_on_the_target(
        lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
    assert "node-a fenced-by-storage" in run.stderr and "exit 4 (PEER_OUTDATED)" in run.stderr
    # Only r0's LUNs: the guest LUN is not part of the resource and keeps node-a's key.
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}
    records = read_events(lab.config("node-b").paths.event_log)
    assert [(r["source"], r["actor"], r["target"], r["outcome"]) for r in records] == [
        ("drbd fence-peer", "node-b", "node-a", "fenced")]
    assert records[0]["details"]["exit"] == FENCED_BY_STORAGE
    storage = records[0]["details"]["levels"][0]
    assert storage["level"] == "storage" and storage["verified"] is True
    # Arbiter LUNs first; tgtd answers PREEMPT AND ABORT with ILLEGAL REQUEST, so PREEMPT.
    assert [(item["lun"], item["action"]) for item in storage["preempt"]["luns"]] == [
        ("arbiter0", "preempt"), ("arbiter1", "preempt"), ("data0", "preempt")]


def test_a_second_call_for_a_fenced_peer_verifies_and_returns_at_once(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    env = drbd9_env("node-b", "node-a", "r0")
    assert fence(lab, programs, "node-b", env).exit_code == FENCED_BY_STORAGE
    again = fence(lab, programs, "node-b", env)
    assert again.exit_code == FENCED_BY_STORAGE, again.stderr
    last = read_events(lab.config("node-b").paths.event_log)[-1]
    actions = {item["action"] for item in last["details"]["levels"][0]["preempt"]["luns"]}
    assert actions == {"already absent"}
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}


def test_drbd_84_environment_finds_the_peer_by_address(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = fence(lab, programs, "node-a", drbd84_env("node-b", "r1"), "--node node-a")
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
    assert luns_holding(observer(), key_of(lab, "node-b")) == {"arbiter1"}  # r1 has only arbiter0


def test_as_drbds_usermode_helper_with_only_the_kernel_environment(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = fence(lab, programs, "node-b", kernel_only_env("node-b", "node-a"),
                "--node node-b fence-peer r2")
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"arbiter0", "web1-disk"}


def test_the_stonewall_drbd_subcommand_is_the_same_handler(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    command = (f"{sys.executable} -m stonewall --config {lab.configs['node-b']} "
               "drbd fence-peer")
    run = run_handler_string(command, drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}


def test_one_path_down_still_fences(lab, observer, programs, tgtd):
    lab.start_holder("node-a")
    tgtd.remove_portal(tgtd.portals[1])
    lab.start_holder("node-b")  # logs in through the first portal only
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
    record = read_events(lab.config("node-b").paths.event_log)[-1]
    checks = record["details"]["levels"][0]["verification"]["checks"]
    assert {check["lun"]: len(check["paths_down"]) for check in checks} == {
        "arbiter0": 1, "arbiter1": 1, "data0": 1}
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}


def test_no_holder_keeps_io_frozen_and_touches_nothing(lab, observer, programs):
    lab.start_holder("node-a")  # node-b's holder is not running
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FROZEN
    assert "holder unavailable" in run.stderr and "NOT fenced" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == {
        "arbiter0", "arbiter1", "data0", "web1-disk"}
    assert read_events(lab.config("node-b").paths.event_log)[-1]["outcome"] == "failed"


def test_fence_race_has_exactly_one_winner_and_the_loser_stays_away(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    runs: dict[str, HandlerRun] = {}

    def race(me: str, peer: str) -> None:
        runs[me] = fence(lab, programs, me, drbd9_env(me, peer, "r0"))

    threads = [threading.Thread(target=race, args=pair)
               for pair in (("node-a", "node-b"), ("node-b", "node-a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = {me: run.exit_code for me, run in runs.items()}
    assert sorted(codes.values()) == [FROZEN, FENCED_BY_STORAGE], runs
    winner = next(me for me, code in codes.items() if code == FENCED_BY_STORAGE)
    loser = "node-a" if winner == "node-b" else "node-b"
    assert "lost-race" in runs[loser].stderr
    r0 = set(RESOURCES["r0"])
    assert not luns_holding(observer(), key_of(lab, loser)) & r0
    assert luns_holding(observer(), key_of(lab, winner)) >= r0
    # The loser, asked again, never touches the winner's key.
    again = fence(lab, programs, loser, drbd9_env(loser, winner, "r0"))
    assert again.exit_code == FROZEN
    assert luns_holding(observer(), key_of(lab, winner)) >= r0


def test_concurrent_calls_for_several_resources_of_the_same_peer(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    runs: dict[str, HandlerRun] = {}

    def call(resource: str) -> None:
        runs[resource] = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", resource))

    threads = [threading.Thread(target=call, args=(name,)) for name in RESOURCES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {name: run.exit_code for name, run in runs.items()} == {
        name: FENCED_BY_STORAGE for name in RESOURCES}, runs
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}
    records = read_events(lab.config("node-b").paths.event_log)
    assert sorted(r["details"]["resource"] for r in records) == sorted(RESOURCES)
    # Serialised: exactly one call preempted each LUN; the others found the key absent.
    preempted = [item["lun"] for r in records
                 for item in r["details"]["levels"][0]["preempt"]["luns"]
                 if item["action"] in ("preempt", "preempt-and-abort")]
    assert sorted(preempted) == sorted({"arbiter0", "arbiter1", "data0"})


def test_the_fence_path_imports_neither_pyghmi_nor_libvirt():
    code = ("import sys\n"
            "from stonewall.handlers import drbd_handlers\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyghmi', 'libvirt')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=True)
    assert json.loads(done.stdout.replace("'", '"')) == []
