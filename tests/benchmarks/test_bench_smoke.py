"""The benchmark's CI smoke (`./run bench --smoke`: 8 LUNs x 2 paths, two runs of every
case, fence_scsi included) runs the real lab and writes outputs that parse."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SMOKE_TIMEOUT = 600

EXPECTED_ROWS = {("fence", "holder client"), ("fence", "fence_scsi -o off"),
                 ("status", "stonewall status"), ("status", "stonewall status --json"),
                 ("status", "fence_scsi -o status"), ("join", "holder join (socket)"),
                 ("join", "holder run --join (start-up)")}


@pytest.mark.slow
def test_smoke_runs_every_case_and_writes_json_markdown_and_plot(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "stonewall.benchmarks.run", "--smoke",
                          "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=SMOKE_TIMEOUT)
    assert run.returncode == 0, run.stderr[-3000:]

    doc = json.loads((tmp_path / "bench.json").read_text())
    rows = {(row["case"], row["tool"]): row for row in doc["results"]}
    assert EXPECTED_ROWS <= set(rows), sorted(rows)
    for row in doc["results"]:
        if row["error"] and row["error"].startswith("unavailable:"):
            continue  # an entry point not in the tree yet
        assert row["error"] is None, row
        seconds = row["seconds"]
        size = (0, 0) if row["case"] == "power" else (8, 2)
        assert (row["luns"], row["paths"], len(seconds["runs"])) == (*size, 2)
        assert 0 < seconds["min"] <= seconds["median"] <= seconds["max"]
    notes = rows[("join", "holder run --join (start-up)")]["notes"]
    # 8 LUNs x 2 paths on each side: the holder's sessions and the kernel's path devices.
    assert (notes["control_paths"], notes["data_paths"]) == (16, 16)
    assert {r["stonewall"] for r in doc["ratios"]} >= {"holder client"}
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["kernel"]

    table = (tmp_path / "bench.md").read_text()
    assert "| fence | fence_scsi -o off | 8 × 2 |" in table
    assert "fence_scsi / stonewall" in table
    assert run.stdout.strip() == table.strip()  # the table is also printed
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
