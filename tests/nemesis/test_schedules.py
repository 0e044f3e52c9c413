"""The nemesis's pure parts: schedules replay from their seed, and the checker's two
judgements over acknowledged writes catch what they must and nothing else."""
from __future__ import annotations

import json

from stonewall.lab.nemesis import (FaultKind, LivenessCause, RunResult, Schedule, draw_schedule,
                                   render, summarize)
from stonewall.lab.scenario import start_of
from stonewall.lab.stamps import Stamp, check_acknowledged_kept, check_single_writer

RING = 4


def test_a_schedule_is_a_pure_function_of_its_seed_and_survives_json():
    first, again, other = draw_schedule(7), draw_schedule(7), draw_schedule(8)
    assert first == again and first != other
    assert Schedule.from_json(json.loads(json.dumps(first.to_json()))) == first
    assert 2 <= len(first.faults) <= 6
    assert [f.at for f in first.faults] == sorted(f.at for f in first.faults)


def test_two_hundred_schedules_draw_every_kind_of_fault():
    kinds = {fault.kind for seed in range(200) for fault in draw_schedule(seed).faults}
    assert kinds == set(FaultKind)


def stamp(node: str, sequence: int, at: float) -> Stamp:
    return Stamp(at, node, "g", sequence)


def test_the_last_acknowledged_write_of_each_block_must_be_on_disk():
    acknowledged = [stamp("a", 0, 1.0), stamp("a", 4, 2.0), stamp("a", 1, 1.1)]
    kept = [stamp("a", 4, 2.0), stamp("a", 1, 1.1)]
    assert check_acknowledged_kept("g-disk", kept, acknowledged, RING) == []
    later = [stamp("a", 8, 3.0), stamp("a", 1, 1.1)]  # in flight when its writer died
    assert check_acknowledged_kept("g-disk", later, acknowledged, RING) == []
    lost = check_acknowledged_kept("g-disk", [stamp("a", 0, 1.0)], acknowledged, RING)
    assert [(v.stamp.sequence, "holds" in v.reason) for v in lost] == [(4, True), (1, True)]


def test_two_nodes_acknowledged_in_overlapping_windows_break_the_one_rule():
    one_after_other = [stamp("a", 0, 1.0), stamp("a", 1, 2.0),
                       stamp("b", 1_000_000, 2.5), stamp("b", 1_000_001, 3.0)]
    assert check_single_writer("g-disk", one_after_other, start_of) == []
    overlapping = one_after_other + [stamp("a", 2, 2.7)]
    [violation] = check_single_writer("g-disk", overlapping, start_of)
    assert violation.stamp.node == "b" and "while a still wrote" in violation.reason


def test_the_report_counts_violations_false_claims_and_liveness_by_cause():
    clean = RunResult(draw_schedule(1), recovery=2.0, fence_exits=[4])
    broken = RunResult(draw_schedule(2), violations=["x"], fence_exits=[4, 1],
                       liveness=LivenessCause.EVERY_NODE_DOWN, recovery=5.5)
    summary = summarize([clean, broken])
    assert summary["violations"] == 1 and summary["false_claims"] == 0
    assert summary["failed_seeds"] == [2] and summary["fence_exits"] == {"1": 1, "4": 2}
    assert summary["liveness_failures"] == {"every node is down": 1}
    assert summary["slowest_recovery"] == {"seconds": 5.5, "seed": 2}
    assert "violations of the one rule: 1" in render(summary)
