"""The node's holder against tgtd: join, fence a peer (arbiter first), verify, refuse what
is unsafe. Each node's holder is a real process; the target is checked by a third initiator."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.holder.api import (
    HolderFencedBoot, HolderRefused, HolderUnavailable, StorageFenceOutcome)
from stonewall.holder.client import HolderClient
from stonewall.storage.ownership import read_views
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.errors import ReservationConflict, UnitAttention
from stonewall.storage.scsi.status import raise_for_status


def soon() -> Deadline:
    return Deadline.after(10)


def keys_on_target(observer_paths):
    return {lun: [p.keys for p in view.paths]
            for lun, view in read_views(observer_paths, soon(), SYSTEM_CLOCK).items()}


def test_join_registers_every_path_and_reserves_shared_luns(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    key_a, key_b = lab.config("node-a").node("node-a").key, lab.config("node-a").node("node-b").key
    views = read_views(observer(), soon(), SYSTEM_CLOCK)
    guest = views.pop("web1-disk")  # guest LUNs: registered only where their guest runs
    assert [path.keys for path in guest.paths] == [(), ()]
    assert guest.reservation().holder is None
    for name, view in views.items():
        assert len(view.up_paths) == 2, name
        for path in view.paths:
            assert sorted(path.keys) == sorted([key_a, key_a, key_b, key_b]), (name, path)
    assert views["arbiter0"].reservation().holder == key_a  # first to join reserved it


def test_fence_peer_removes_its_key_everywhere_and_is_idempotent(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    key_a = lab.config("node-a").node("node-a").key
    outcome = lab.client("node-b").preempt("node-a", None, soon())
    assert outcome.fenced is True
    actions = {f.lun: f.action for f in outcome.preempt.luns}
    assert list(actions)[:2] == ["arbiter0", "arbiter1"]
    # tgtd has no PREEMPT AND ABORT; node-a runs no guest, so web1-disk never carried its key
    assert actions == {"arbiter0": "preempt", "arbiter1": "preempt", "data0": "preempt",
                       "web1-disk": "already absent"}
    for lun, per_path in keys_on_target(observer()).items():
        for keys in per_path:
            assert key_a not in keys, lun
    again = lab.client("node-b").preempt("node-a", None, soon())
    assert again.fenced is True
    assert {f.action for f in again.preempt.luns} == {"already absent"}


def test_fence_race_has_exactly_one_winner(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    config = lab.config("node-a")
    keys = {config.node(n).key: n for n in ("node-a", "node-b")}
    results: dict[str, StorageFenceOutcome] = {}

    def fence(me: str, peer: str) -> None:
        results[me] = lab.client(me).preempt(peer, None, soon())

    threads = [threading.Thread(target=fence, args=pair)
               for pair in (("node-a", "node-b"), ("node-b", "node-a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [me for me, result in results.items() if result.fenced]
    assert len(winners) == 1
    loser = "node-a" if winners == ["node-b"] else "node-b"
    assert results[loser].preempt.lost_race is True
    remaining = {keys[k] for per_path in keys_on_target(observer()).values()
                 for path_keys in per_path for k in path_keys}
    assert remaining == set(winners)


def test_loser_refuses_to_join_again_in_the_same_boot(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    # node-a learns it was fenced when it tries to act with its key.
    result = lab.client("node-a").preempt("node-b", None, soon())
    assert result.fenced is False and result.preempt.lost_race is True
    with pytest.raises(HolderFencedBoot):
        lab.client("node-a").join(soon())
    lab.holders["node-a"].stop()
    with pytest.raises(Exception, match="exited 1"):
        lab.start_holder("node-a", join=True)
    key_a = lab.config("node-a").node("node-a").key
    assert all(key_a not in keys for per_path in keys_on_target(observer()).values()
               for keys in per_path)
    lab.reboot("node-a", "node-a-boot-2")  # the documented unfence path: a new boot
    lab.start_holder("node-a", join=True)
    # READ KEYS lists one entry per registered nexus: node-a's two paths (of the LUNs a join
    # registers: web1-disk follows its guest).
    assert all(keys.count(key_a) == 2 for lun, per_path in keys_on_target(observer()).items()
               if lun != "web1-disk" for keys in per_path)


def test_fenced_nodes_writes_are_refused_by_the_san(lab, sessions):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    writer = sessions("iqn.2026-11.lab.stonewall:node-a-guest")  # node-a's own nexus
    key_a = lab.config("node-a").node("node-a").key
    CommandPrDevice(writer).register(0, key_a, soon(), ignore_existing=True)
    raise_for_status(writer.execute(cdb.write_10(0, 1), soon(), data_out=bytes(512)), "write")
    assert lab.client("node-b").preempt("node-a", ["arbiter0"], soon()).fenced
    with pytest.raises((UnitAttention, ReservationConflict)):
        raise_for_status(writer.execute(cdb.write_10(0, 1), soon(), data_out=bytes(512)), "w")
    with pytest.raises(ReservationConflict):
        raise_for_status(writer.execute(cdb.write_10(0, 1), soon(), data_out=bytes(512)), "w")


def test_holder_keeps_its_registration_across_many_requests(lab):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    client = lab.client("node-b")
    joined = ["arbiter0", "arbiter1", "data0"]
    for _ in range(100):
        assert client.verify("node-b", joined, True, soon()).proven is True
    assert client.preempt("node-a", None, soon()).fenced is True


def test_dropped_connection_reconnects_and_registers_the_lapsed_nexuses_on_proof(lab, tgtd):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    dropped = tgtd.drop_connections(1, lab.cluster.initiator("node-b"))
    assert dropped == 10  # 4 LUNs x 2 control paths, and web1-disk's 2 kernel paths
    client = lab.client("node-b")
    state = client.state(soon())  # the request reconnects first
    assert all(p.up for p in state.paths)
    # tgtd ties registrations to sessions: the new nexuses were not registered. READ KEYS
    # still listed the lapsed entries (no PREEMPT came), so the holder registered them
    # again (tests/ownership/test_lapsed_nexus.py has the proof and its races). The guest
    # LUN was never ours: nothing is registered there.
    assert {p.lun for p in state.paths if p.registered} == {"arbiter0", "arbiter1", "data0"}
    outcome = client.preempt("node-a", None, soon())
    assert outcome.fenced is True, outcome


def test_holder_refuses_malformed_requests(lab):
    lab.start_holder("node-a")
    path = lab.client("node-a").socket_path

    def raw(line: bytes) -> dict:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(path)
            conn.sendall(line)
            return json.loads(conn.makefile("rb").readline())

    for line, fragment in [
            (b"not json\n", "not JSON"),
            (b'{"op": "format-disk", "timeout": 1}\n', "unknown op"),
            (b'{"op": "preempt", "args": {}, "timeout": 1}\n', "missing argument"),
            (b'{"op": "preempt", "args": {"victim": 3}, "timeout": 1}\n', "must be a str"),
            (b'{"op": "state", "timeout": 0}\n', "timeout"),
            (b'{"op": "state", "args": {"x": 1}, "timeout": 1}\n', "unknown argument")]:
        answer = raw(line)
        assert answer["ok"] is False and answer["error"] == "BadRequest"
        assert fragment in answer["message"]
    with pytest.raises(HolderRefused, match="does not fence itself"):
        lab.client("node-a").preempt("node-a", None, soon())
    with pytest.raises(HolderRefused, match="unknown node"):
        lab.client("node-a").preempt("node-z", None, soon())
    with pytest.raises(HolderRefused, match="unknown LUN"):
        lab.client("node-a").preempt("node-b", ["nope"], soon())


def test_the_holder_refuses_a_client_that_is_neither_root_nor_its_user(lab):
    lab.start_holder("node-a")
    path = lab.client("node-a").socket_path
    # Loosen the modes that normally keep other users out: the holder still refuses.
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o666)
    asker = subprocess.run(
        [sys.executable, "-c", "import os, socket, sys\n"
         # chdir first: the pytest directories above are root's alone (0700)
         "os.chdir(os.path.dirname(sys.argv[1])); os.setgid(65534); os.setuid(65534)\n"
         "c = socket.socket(socket.AF_UNIX); c.settimeout(5); c.connect('holder.sock')\n"
         "c.sendall(b'{\"op\": \"state\", \"timeout\": 2}\\n')\n"
         "print(c.makefile().readline())", path], capture_output=True, text=True, timeout=30)
    answer = json.loads(asker.stdout)
    assert answer["ok"] is False and answer["error"] == "Refused", answer
    assert "node" not in answer  # nothing about the node is told
    log = Path(lab.holders["node-a"].log).read_text()
    assert "refused a client" in log and "uid 65534 is neither root nor" in log


def test_no_holder_means_fail_safe(lab):
    with pytest.raises(HolderUnavailable, match="not running"):
        HolderClient(lab.config("node-b")).preempt("node-a", None, soon())


def test_restart_in_the_joined_boot_after_a_silent_preempt_refuses_to_join(lab, observer):
    # node-a never learnt it was fenced (it did nothing with its key); a restart of its
    # holder with --join in the same boot must not bring the key back.
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    lab.holders["node-a"].stop()
    with pytest.raises(Exception, match="exited 1"):
        lab.start_holder("node-a", join=True)
    key_a = lab.config("node-a").node("node-a").key
    assert all(key_a not in keys for per_path in keys_on_target(observer()).values()
               for keys in per_path)
