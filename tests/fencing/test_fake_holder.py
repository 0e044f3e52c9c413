"""Something that is not node-b's holder answers at node-b's `<runtime_dir>/holder.sock` while
node-a's key is registered on every LUN and path. DRBD's fence-peer on node-b (the real
handler process, run as drbdadm runs it) must not call node-a fenced on its word: every
variant exits 1 (I/O stays frozen), logs why, and node-a's key is still on the target.

Each refused answer differs from the control (a complete answer with evidence, served by
root, which the handler believes: a client cannot see past root) in one thing."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.storage.ownership import read_views

from .drbd_calls import RESOURCES, drbd9_env, run_handler_string

FENCED_BY_STORAGE = 4
FROZEN = 1
NOBODY = 65534
FAKE = Path(__file__).with_name("fake_holder.py")
R0 = RESOURCES["r0"]  # arbiter0, arbiter1, data0


def complete_answer(lab) -> dict[str, Any]:
    """What node-b's holder would answer after fencing node-a on r0's LUNs."""
    key_b = lab.config("node-b").node("node-b").key
    return {"ok": True, "node": "node-b", "key": f"0x{key_b:016x}", "result": {
        "victim": "node-a", "luns": list(R0),
        "preempt": {"luns": [{"lun": lun, "action": "preempt", "path": "127.0.0.1:3260",
                              "ok": True, "detail": ""} for lun in R0],
                    "lost_race": False, "lost_detail": ""},
        "verification": {"luns": list(R0), "checks": [
            {"lun": lun, "verdict": True, "paths_up": 2, "paths_down": []} for lun in R0]}}}


def without_checks(answer: dict[str, Any]) -> None:
    answer["result"]["verification"]["checks"] = []


def without_data0(answer: dict[str, Any]) -> None:
    checks = answer["result"]["verification"]["checks"]
    answer["result"]["verification"]["checks"] = [c for c in checks if c["lun"] != "data0"]


def no_path_answered(answer: dict[str, Any]) -> None:
    check = answer["result"]["verification"]["checks"][0]
    check.update(paths_up=0, paths_down=["127.0.0.1:3260", "127.0.0.1:3261"])


def of_another_node(answer: dict[str, Any], lab) -> None:
    answer["node"] = "node-a"
    answer["key"] = f"0x{lab.config('node-b').node('node-a').key:016x}"


def with_another_key(answer: dict[str, Any]) -> None:
    answer["key"] = "0x00000000000000ff"


class FakeHolder:
    """fake_holder.py started at `path`; stopped by PID."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def serve(self, path: str, reply: Any, uid: int | None = None) -> None:
        line = reply if isinstance(reply, str) else json.dumps(reply)
        process = subprocess.Popen([sys.executable, str(FAKE), path, line]
                                   + ([str(uid)] if uid is not None else []),
                                   stdout=subprocess.PIPE)
        self.processes.append(process)
        assert process.stdout is not None and process.stdout.readline() == b"READY\n"

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture
def fake() -> Iterator[FakeHolder]:
    started = FakeHolder()
    yield started
    started.stop()


@pytest.fixture
def node_a_registered(lab, observer) -> Callable[[], set[str]]:
    """node-a's holder joined (its key on every path); returns a reader of the r0 LUNs on
    which some path still shows node-a's key."""
    lab.start_holder("node-a")
    key_a = lab.config("node-a").node("node-a").key

    def holding() -> set[str]:
        views = read_views(observer(), Deadline.after(10), SYSTEM_CLOCK)
        return {lun for lun in R0 if any(key_a in (p.keys or ()) for p in views[lun].up_paths)}

    assert holding() == set(R0)
    return holding


def socket_of(lab, node: str) -> str:
    runtime = Path(lab.config(node).paths.runtime_dir)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(runtime / "holder.sock")


def fence_peer(lab, programs) -> Any:
    return run_handler_string(f"{programs['fence-peer']} --config {lab.configs['node-b']}",
                              drbd9_env("node-b", "node-a", "r0"))


def test_the_bare_fenced_true_answer_is_not_a_fence(lab, programs, fake, node_a_registered):
    # The answer of issue 14: a boolean and no evidence, from no named node.
    fake.serve(socket_of(lab, "node-b"),
               '{"ok": true, "result": {"fenced": true, "verification": {"checks": []}}}')
    run = fence_peer(lab, programs)
    assert run.exit_code == FROZEN, run.stderr
    assert "NOT fenced" in run.stderr and "holder untrusted" in run.stderr
    assert "names no node" in run.stderr
    assert node_a_registered() == set(R0)


@pytest.mark.parametrize("change, why", [
    (without_checks, "arbiter0: no verification check in the answer"),
    (without_data0, "data0: no verification check in the answer"),
    (no_path_answered, "arbiter0: no path answered"),
    (of_another_node, "the holder serves node-a, not node-b"),
    (with_another_key, "the holder serves node-b with key 0x00000000000000ff"),
], ids=["empty-checks", "missing-lun", "no-path-answered", "wrong-node", "wrong-key"])
def test_an_answer_short_of_evidence_or_for_another_node_is_not_a_fence(
        lab, programs, fake, node_a_registered, change, why):
    answer = complete_answer(lab)
    change(*((answer, lab) if change is of_another_node else (answer,)))
    fake.serve(socket_of(lab, "node-b"), answer)
    run = fence_peer(lab, programs)
    assert run.exit_code == FROZEN, run.stderr
    assert "NOT fenced" in run.stderr and why in run.stderr, run.stderr
    assert node_a_registered() == set(R0)


def test_a_complete_answer_from_a_peer_that_is_not_root_is_not_a_fence(
        lab, programs, fake, node_a_registered):
    fake.serve(socket_of(lab, "node-b"), complete_answer(lab), uid=NOBODY)
    run = fence_peer(lab, programs)
    assert run.exit_code == FROZEN, run.stderr
    assert f"as uid {NOBODY}, neither root nor the service's user (uid 0" in run.stderr
    assert node_a_registered() == set(R0)


def test_the_control_a_complete_answer_from_root_is_believed(lab, programs, fake):
    # What a client can check ends at root: the refusals above each differ from this answer
    # in one thing, so each proves its own check.
    fake.serve(socket_of(lab, "node-b"), complete_answer(lab))
    run = fence_peer(lab, programs)
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
