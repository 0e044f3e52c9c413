"""`stonewall status` against tgtd: table, JSON, verdicts, exit codes; it only reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import yaml

from stonewall.clock import Deadline
from stonewall.lab.cluster import LabCluster, LabLun
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.iscsi import IscsiSession


def status(config, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    """`stonewall status ARGS`; `env`: the node's kernel devices, for --direct reads of its
    data paths."""
    return subprocess.run([sys.executable, "-m", "stonewall", "--config", str(config),
                           "status", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def generations(tgtd_portal, lun_numbers):
    """PRgeneration of each LUN, read by an outside initiator."""
    found = {}
    for lun in lun_numbers:
        session = IscsiSession(tgtd_portal, ARRAY_IQN, lun, "iqn.2026-11.lab.stonewall:gen")
        session.connect(Deadline.after(5))
        try:
            found[lun] = CommandPrDevice(session).read_keys(Deadline.after(5)).generation
        finally:
            session.close()
    return found


def test_status_table_and_json_after_join(lab):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    table = status(lab.configs["node-a"], "--direct", env=lab.cluster.environment("node-a"))
    assert table.returncode == 0, table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["LUN", "ROLE", "GEN", "REGISTERED"]
    arbiter = next(line for line in lines if line.startswith("arbiter0"))
    assert "node-ax2 node-bx2" in arbiter and "node-a we-ro" in arbiter
    assert arbiter.rstrip().endswith("ok")
    report = json.loads(status(lab.configs["node-b"], "--json").stdout)  # via the holder
    luns = {lun["name"]: lun for lun in report["luns"]}
    assert [lun["name"] for lun in report["luns"]][:2] == ["arbiter0", "arbiter1"]
    assert luns["arbiter0"]["reservation"]["node"] == "node-a"
    assert {r["node"]: r["registrations"] for r in luns["data0"]["registered"]} == {
        "node-a": 2, "node-b": 2}
    guest = luns.pop("web1-disk")  # a guest LUN: registered only where its guest runs
    assert guest["reservation"] is None and guest["verdict"] == "free: no node registered"
    assert (guest["paths_up"], guest["paths_down"]) == (4, 0)  # 2 data + 2 control paths
    assert all(lun["paths_up"] == 2 and lun["paths_down"] == 0 for lun in luns.values())
    assert lab.client("node-a").claim("web1-disk", Deadline.after(10)).ok is True
    claimed = json.loads(status(lab.configs["node-b"], "--json").stdout)["luns"]
    guest = next(lun for lun in claimed if lun["name"] == "web1-disk")
    assert guest["verdict"] == "owned by node-a"
    assert guest["reservation"] == {"key": "0x0000000000000000", "node": "all registrants",
                                    "type": "we-ar"}
    assert guest["registered"] == [{"key": guest["registered"][0]["key"], "node": "node-a",
                                    "registrations": 4}]


def test_status_only_reads(lab, tgtd):
    lab.start_holder("node-a")
    before = generations(tgtd.portals[0], [1, 2, 3, 4])
    for args in (["--direct"], ["--json"], ["--direct", "--paths"]):
        status(lab.configs["node-a"], *args)
    assert generations(tgtd.portals[0], [1, 2, 3, 4]) == before


def test_fenced_node_and_down_path_need_attention(lab, tgtd):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    assert lab.client("node-b").preempt("node-a", None, Deadline.after(10)).fenced
    tgtd.remove_portal(tgtd.portals[1])
    result = status(lab.configs["node-b"], "--direct", "--paths", "--json")
    assert result.returncode == 1
    luns = {lun["name"]: lun for lun in json.loads(result.stdout)["luns"]}
    assert luns["arbiter0"]["verdict"] == "fenced: node-a"
    assert luns["arbiter0"]["paths_down"] == 1
    assert luns["arbiter0"]["reservation"]["node"] == "node-b"
    down = [p for p in luns["arbiter0"]["paths"] if not p["up"]]
    assert down[0]["path"] == tgtd.portals[1] and "login failed" in down[0]["error"]


def test_foreign_key_and_unreachable(lab, tgtd, sessions):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    stranger = CommandPrDevice(sessions("iqn.2026-11.example:stranger", lun=3))
    stranger.register(0, 0xDEADBEEF, Deadline.after(5), ignore_existing=True)
    result = json.loads(status(lab.configs["node-a"], "--direct", "--json").stdout)
    data0 = next(lun for lun in result["luns"] if lun["name"] == "data0")
    assert data0["verdict"] == "foreign key 0x00000000deadbeef"
    assert {"key": "0x00000000deadbeef", "node": "foreign 0x00000000deadbeef",
            "registrations": 1} in data0["registered"]
    lab.stop()
    tgtd.stop()
    unreachable = status(lab.configs["node-a"], "--direct", "--timeout", "2")
    assert unreachable.returncode == 2
    assert unreachable.stdout.count("unreachable") == 4


def test_keys_that_differ_between_paths_are_a_split(tmp_path, tgtd):
    # A LUN whose two configured portals lead to different arrays (a mis-zoned path).
    with Tgtd(tmp_path / "other", portal_count=1) as other:
        other.add_lun(other.add_target(ARRAY_IQN), 1)
        lab = LabCluster(tmp_path / "lab", tgtd, luns=[LabLun("data0", 1)])
        config = lab.write_config("node-a")
        document = lab.document("node-a")
        document["luns"][0]["iscsi"]["portals"] = [tgtd.portals[0], other.portals[0]]
        config.write_text(yaml.safe_dump(document))
        session = IscsiSession(tgtd.portals[0], ARRAY_IQN, 1, lab.initiator("node-a"))
        session.connect(Deadline.after(5))
        try:
            CommandPrDevice(session).register(0, 0x77, Deadline.after(5), ignore_existing=True)
            result = json.loads(status(config, "--direct", "--json").stdout)
        finally:
            session.close()
        assert result["luns"][0]["verdict"] == "split: keys differ between paths"


def test_hundred_luns(tmp_path, tgtd):
    for lun in range(5, 101):
        tgtd.add_lun(1, lun, size_mb=1)
    lab = LabCluster(tmp_path / "lab", tgtd,
                     luns=[LabLun(f"lun{n:03d}", n) for n in range(1, 101)])
    result = status(lab.write_config("node-a"), "--direct", "--json")
    report = json.loads(result.stdout)
    assert len(report["luns"]) == 100
    assert all(lun["paths_up"] == 2 for lun in report["luns"])
    assert {lun["verdict"] for lun in report["luns"]} == {"no registrations"}
    assert result.returncode == 1


def test_a_hung_path_is_reported_down_without_stalling_the_others(tmp_path, tgtd):
    # data0's second path leads to an array that hangs (SIGSTOP after login would freeze
    # the login too, so freeze it before status runs: logins and PR IN both hang there).
    with Tgtd(tmp_path / "hung", portal_count=1) as hung:
        hung.add_lun(hung.add_target(ARRAY_IQN), 1)
        lab = LabCluster(tmp_path / "lab", tgtd, luns=[LabLun("arbiter0", 1, "arbiter", 0),
                                                       LabLun("data0", 2)])
        config = lab.write_config("node-a")
        document = lab.document("node-a")
        document["luns"][1]["iscsi"]["portals"] = [tgtd.portals[0], hung.portals[0]]
        config.write_text(yaml.safe_dump(document))
        hung.freeze()
        try:
            started = time.monotonic()
            result = status(config, "--direct", "--json", "--timeout", "2")
            took = time.monotonic() - started
        finally:
            hung.thaw()
    report = json.loads(result.stdout)
    luns = {lun["name"]: lun for lun in report["luns"]}
    assert luns["arbiter0"]["paths_up"] == 2, luns  # the healthy LUN is read in full
    assert luns["data0"]["paths_up"] == 1 and luns["data0"]["paths_down"] == 1
    down = [p for p in luns["data0"]["paths"] if not p["up"]]
    assert down[0]["path"] == hung.portals[0]
    assert took < 2 + 3  # the deadline plus process start, not a hang
    assert result.returncode == 1


def test_status_through_the_holder_loads_neither_other_commands_nor_the_session_stack(lab):
    """`status` builds its own parser only, and with a holder answering it imports none of
    the iSCSI/sg stack (that is the --direct fallback's): what a status run costs is its
    own work, measured in benchmarks/."""
    lab.start_holder("node-a")
    probe = ("import runpy, sys\n"
             "sys.argv = ['stonewall', '--config', sys.argv[1], 'status']\n"
             "try:\n"
             "    runpy.run_module('stonewall', run_name='__main__')\n"
             "except SystemExit as done:\n"
             "    loaded = [m for m in ('stonewall.handlers.vm_cmd', 'stonewall.storage.paths',\n"
             "              'stonewall.storage.scsi.iscsi', 'stonewall.storage.drbd.drbdsetup')\n"
             "              if m in sys.modules]\n"
             "    print('exit', done.code, 'loaded', loaded)\n")
    run = subprocess.run([sys.executable, "-c", probe, str(lab.configs["node-a"])],
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.strip().endswith("loaded []"), run.stdout + run.stderr
    assert "arbiter0" in run.stdout
