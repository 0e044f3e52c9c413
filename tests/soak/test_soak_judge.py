"""The soak's judge on synthetic samples: flat passes, and each kind of growth fails."""
from __future__ import annotations

import random
from typing import Callable

import pytest

from stonewall.lab.soak_judge import (MAX_GROWTH_KIB, LogSample, Operation, Sample,
                                      judge_deadlines, judge_event_log, judge_fds,
                                      judge_memory, percentile, slope)


def series(cycles: int, rss: Callable[[int], float],
           fds: Callable[[int], int] = lambda _c: 40) -> list[Sample]:
    return [Sample(c, int(rss(c)), fds(c)) for c in range(cycles)]


def test_slope_is_least_squares():
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 7)]) == 0.0
    assert slope([(3, 1), (3, 9)]) == 0.0


def test_noisy_but_flat_memory_is_flat():
    noise = random.Random(7)
    samples = series(500, lambda c: 45_000 + (3_000 if c < 20 else 0) + noise.randint(-300, 300))
    figures = judge_memory(samples)
    assert figures.verdict.ok, figures.verdict.reason
    assert figures.slope_kib_per_cycle is not None and abs(figures.slope_kib_per_cycle) < 1


def test_a_slow_leak_is_a_trend_even_below_the_growth_limit():
    samples = series(500, lambda c: 45_000 + 2 * c)  # 2 KiB per cycle, ~0.9 MiB in all
    figures = judge_memory(samples)
    assert not figures.verdict.ok
    assert "trend" in figures.verdict.reason and figures.growth_kib < MAX_GROWTH_KIB


def test_a_step_after_the_warm_up_is_growth():
    samples = series(100, lambda c: 45_000 + (MAX_GROWTH_KIB + 1 if c > 80 else 0))
    assert "grew" in judge_memory(samples).verdict.reason


def test_growth_inside_the_warm_up_is_allowed():
    samples = series(100, lambda c: 45_000 + (8_000 if c >= 5 else 0))
    assert judge_memory(samples).verdict.ok


def test_too_few_samples_judge_growth_but_no_trend():
    figures = judge_memory(series(6, lambda c: 45_000 + 100 * c))
    assert figures.slope_kib_per_cycle is None and figures.verdict.ok


def test_one_descriptor_more_after_the_warm_up_is_not_flat():
    assert judge_fds(series(50, lambda _c: 1, lambda c: 40 + (c >= 3))).ok  # warm-up
    verdict = judge_fds(series(50, lambda _c: 1, lambda c: 40 + (c == 30)))
    assert not verdict.ok and "cycle 30" in verdict.reason


def log_series(cycles: int, per_cycle: int = 1, size: int = 13_000) -> list[LogSample]:
    return [LogSample(c, c * per_cycle * size, c * per_cycle, c * per_cycle * size, size)
            for c in range(1, cycles + 1)]


def test_an_event_log_of_records_only_passes():
    assert judge_event_log(log_series(40)).ok


def test_bytes_outside_records_fail():
    samples = log_series(40)
    samples[20] = LogSample(21, samples[20].size + 17, 21, samples[20].record_bytes, 13_000)
    verdict = judge_event_log(samples)
    assert not verdict.ok and "cycle 21" in verdict.reason


def test_a_cycle_with_an_extra_record_fails():
    samples = log_series(40)
    samples[30:] = [LogSample(s.cycle, s.size + 13_000, s.records + 1, s.record_bytes + 13_000,
                              13_000) for s in samples[30:]]
    assert "records per cycle" in judge_event_log(samples).reason


def test_records_that_grow_fail():
    samples = [LogSample(c, c * 100, c, c * 100, 100 + 5 * c) for c in range(1, 41)]
    assert not judge_event_log(samples).ok


def test_a_late_or_wrong_answer_fails_the_deadlines():
    right = [Operation("fence", 0, 0.3, 10.0, True), Operation("status", 0, 0.2, 10.0, True)]
    assert judge_deadlines(right).ok
    assert not judge_deadlines(right + [Operation("status", 1, 10.5, 10.0, True)]).ok
    assert not judge_deadlines(right + [Operation("fence", 1, 0.3, 10.0, False, "exit 1")]).ok


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
