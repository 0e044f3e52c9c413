"""The nemesis against the two-node data-path lab (slow tier): a fixed set of 20 seeded
schedules, and every saved schedule in regressions/, each judged by the invariant checker."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stonewall.lab.nemesis import LivenessCause, Schedule, draw_schedule, run_schedule

pytestmark = pytest.mark.slow

CI_SEEDS = range(20)
REGRESSIONS = sorted((Path(__file__).parent / "regressions").glob("*.json"))


@pytest.fixture(autouse=True)
def needs_tgtd() -> None:
    if shutil.which("tgtd") is None and not Path("/usr/sbin/tgtd").exists():
        pytest.skip("tgtd is not installed (Debian package tgt)")


def judge(schedule: Schedule, tmp_path: Path) -> None:
    result = run_schedule(schedule, tmp_path / "lab", log=print)
    print("\n".join(result.timeline))
    assert result.violations == [], result.violations
    assert result.false_claims == [], result.false_claims
    # A proven fence is followed by the takeover; other liveness failures name their cause.
    assert result.liveness is not LivenessCause.NOT_STARTED, result.liveness_detail


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_a_seeded_schedule_keeps_the_one_rule_and_claims_nothing_false(seed, tmp_path):
    judge(draw_schedule(seed), tmp_path)


@pytest.mark.parametrize("saved", REGRESSIONS, ids=lambda path: path.stem)
def test_a_saved_schedule_replays_clean(saved, tmp_path):
    judge(Schedule.from_json(json.loads(saved.read_text())["schedule"]), tmp_path)
