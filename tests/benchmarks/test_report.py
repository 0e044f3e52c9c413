"""Derived figures and tables of the benchmark, from timings given here."""
from __future__ import annotations

import pytest

from stonewall.benchmarks.cases import CaseResult
from stonewall.benchmarks.measure import Stats
from stonewall.benchmarks.report import growth_slopes, markdown, ratios, targets


def row(case: str, tool: str, luns: int, *seconds: float) -> CaseResult:
    return CaseResult(case, tool, luns, 2, Stats(seconds))


def test_slope_is_the_least_squares_cost_per_lun_path() -> None:
    # 20 ms + 0.25 ms per LUN·path, exactly; fence_scsi 30 ms per LUN·path.
    results = [row("fence", "holder client", n, 0.020 + 0.00025 * 2 * n) for n in (8, 64, 512)]
    results += [row("fence", "fence_scsi -o off", n, 0.030 * 2 * n) for n in (8, 64)]
    slopes = {s.tool: s for s in growth_slopes(results)}
    assert slopes["holder client"].ms_per_lun_path == pytest.approx(0.25)
    assert slopes["holder client"].intercept_ms == pytest.approx(20.0)
    assert slopes["fence_scsi -o off"].ms_per_lun_path == pytest.approx(30.0)
    assert slopes["holder client"].sizes == (16, 128, 1024)


def test_ratio_pairs_fence_scsi_with_each_tool_of_the_same_case_and_size() -> None:
    results = [row("fence", "fence_scsi -o off", 64, 3.0, 4.0, 5.0),
               row("fence", "holder client", 64, 0.05, 0.1, 0.2),
               row("fence", "holder client", 8, 0.01),
               row("status", "stonewall status", 64, 1.0)]
    found = ratios(results)
    assert [(r["stonewall"], r["luns"], r["ratio"]) for r in found] == [
        ("holder client", 64, pytest.approx(40.0))]


def test_targets_report_met_and_missed() -> None:
    results = [row("fence", "holder client", 64, 0.04), row("fence", "holder client", 512, 0.3),
               row("fence", "fence_scsi -o off", 64, 1.0),
               row("status", "stonewall status", 256, 0.3),
               row("status", "fence_scsi -o status", 256, 0.9),
               row("status", "stonewall status", 8, 0.12),
               row("status", "fence_scsi -o status", 8, 0.1)]
    verdicts = {t["target"]: t["met"] for t in targets(results)}
    assert verdicts["fence 64x2 median, holder client (s)"] is True  # under 50 ms
    assert verdicts["fence 512x2 median, holder client (s)"] is False  # over 200 ms
    assert verdicts["status 256x2 median, stonewall status (s)"] is False  # over 0.25 s
    assert verdicts["fence_scsi / holder client at 64x2"] is False  # 25x < 30x
    assert verdicts["fence_scsi status / stonewall status at 256x2"] is True
    assert verdicts["fence_scsi status / stonewall status at 8x2"] is False  # slower


def test_other_baselines_are_neither_references_nor_measured_against_targets() -> None:
    results = [row("fence", "fence_scsi -o off", 64, 1.0),
               row("fence", "fence_scsi -o off, one device per path", 64, 2.0),
               row("fence", "holder client", 64, 0.02)]
    assert [(r["stonewall"], r["ratio"]) for r in ratios(results)] == [
        ("holder client", pytest.approx(50.0))]
    assert not [t for t in targets(results) if "per path" in str(t["target"])]


def test_a_failed_case_is_a_row_that_says_why_and_has_no_time() -> None:
    failed = CaseResult("fence", "drbd fence-peer", 64, 2, None, "exit 1, expected 4: boom")
    doc = {"machine": {"cores": 2, "cpu": "x", "kernel": "k", "python": "3", "packages": {},
                       "commit": "abc", "tree_modified": False, "date_utc": "now"},
           "results": [failed.as_dict()], "ratios": [], "slopes": [], "targets": []}
    table = markdown(doc)
    assert "| fence | drbd fence-peer | 64 × 2 | – | – | – | 0 | FAILED: exit 1, expected 4" \
        in table
