"""`stonewall status` shows DRBD's own view of the configured resources on this node beside
the SAN's: one `drbd:` line (and `"drbd"` in the JSON). drbdsetup is a stand-in replaying a
real status document (no DRBD 9 module here); the holders and the target are real."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..drbdsetup_standin import install, path_with, split_brain_status


def status(lab, node: str, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stonewall", "--config",
                           str(lab.configs[node]), "status", *args],
                          env={**os.environ, "PATH": path}, capture_output=True, text=True,
                          timeout=60)


def test_a_standalone_resource_is_shown_and_needs_attention(lab, tmp_path: Path):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    install(tmp_path / "bin", split_brain_status("r0", my_id=1, peer_id=0))
    table = status(lab, "node-b", path_with(tmp_path / "bin"))
    assert table.returncode == 1, table.stdout + table.stderr  # the LUNs alone are fine
    drbd = next(line for line in table.stdout.splitlines() if line.startswith("drbd: "))
    assert drbd == ("drbd: r0: Primary, disk UpToDate; node-a StandAlone, peer disk DUnknown"
                    " | r1: not up here | r2: not up here")
    report = json.loads(status(lab, "node-b", path_with(tmp_path / "bin"), "--json").stdout)
    assert report["drbd"]["attention"] is True
    assert report["drbd"]["resources"][0]["attention"] == ["r0: peer node id 0 StandAlone"]
    assert {lun["name"]: lun["verdict"] for lun in report["luns"]} == {
        "arbiter0": "ok", "arbiter1": "ok", "data0": "ok", "web1-disk": "owned by node-a"}


def test_without_drbd_here_the_line_says_so_and_the_luns_decide(lab, tmp_path: Path):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    table = status(lab, "node-b", str(tmp_path / "no-drbd-here"))
    assert table.returncode == 0, table.stdout + table.stderr
    assert "drbd: cannot read DRBD's status here: drbdsetup is not installed" in table.stdout
