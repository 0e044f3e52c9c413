"""A short soak on the real lab at 64 LUNs x 2 paths (tgtd, kernel and watchdog stand-ins,
BMCs, libvirt test hypervisors): a handful of fence/rejoin/status/guest cycles, judged by the
same checks as the hour-long soak (`./run soak`)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stonewall.lab.soak import run_soak

CYCLES = 6
KINDS = {"fence", "verify-fenced", "self-fence", "rejoin", "verify-joined", "status on node-a",
         "status on node-b", "guest-stop", "guest-start"}


@pytest.fixture(autouse=True)
def needs_tgtd() -> None:
    if shutil.which("tgtd") is None and not Path("/usr/sbin/tgtd").exists():
        pytest.skip("tgtd is not installed (Debian package tgt)")


def test_a_short_soak_answers_in_time_leaks_no_descriptor_and_keeps_the_one_rule(tmp_path):
    report = run_soak(tmp_path / "lab", duration=50, luns=64, seed=3,
                      report_dir=tmp_path / "report", max_cycles=CYCLES)
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report.failure is None, report.failure
    assert data["cycles"] == CYCLES, "the 50 s ran out before the cycles"
    assert data["deadlines"]["ok"], data["deadlines"]
    assert {row["kind"] for row in data["operations"]} == KINDS
    assert all(row["late"] == row["wrong"] == 0 for row in data["operations"])
    assert sum(row["count"] for row in data["operations"]) == CYCLES * 8
    assert sum(layout for layout in data["layout"].values()) == 64
    for process in data["processes"]:
        assert process["descriptors"]["ok"], process
        assert process["memory"]["ok"], process
    names = {process["name"] for process in data["processes"]}
    assert {"tgtd", "node-a service (holder)", "node-b service (holder) (successive instances)",
            "node-a kernel stand-in (nexus)", "node-a watchdog stand-in", "node-a BMC",
            "node-b BMC"} <= names
    holder = next(p for p in data["processes"] if p["name"] == "node-a service (holder)")
    assert holder["instances"] == 1 and len(holder["samples"]) == CYCLES + 1  # lived throughout
    fencer_log = data["event_logs"]["node-a"]
    assert fencer_log["verdict"]["ok"] and fencer_log["records"] == CYCLES, fencer_log
    assert data["invariants"]["holds"], data["invariants"]["describe"]
    assert data["passed"] and report.passed
    assert "# Soak: PASSED" in (tmp_path / "report" / "report.md").read_text()
