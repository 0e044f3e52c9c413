"""Timing runs real processes; a reset precedes every run and is not timed; a failed run
ends the case."""
from __future__ import annotations

import time

import pytest

from stonewall.benchmarks.measure import BenchFailure, Stats, expect_exit, repeat, time_process


def test_time_process_measures_start_to_exit_and_keeps_output() -> None:
    run = time_process(["sh", "-c", "sleep 0.05; echo out; echo err >&2; exit 3"], 10)
    assert run.seconds >= 0.05
    assert (run.returncode, run.stdout, run.stderr) == (3, "out\n", "err\n")
    with pytest.raises(BenchFailure, match="exit 3, expected 0: err"):
        expect_exit(run, 0, "probe")


def test_time_process_feeds_stdin_and_can_replace_the_environment() -> None:
    run = time_process(["sh", "-c", "read line; echo \"$line $ONLY ${HOME:-none}\""], 10,
                       env={"ONLY": "set"}, stdin="hello\n", replace_env=True)
    assert run.stdout == "hello set none\n"


def test_missing_program_and_timeout_are_failures() -> None:
    with pytest.raises(BenchFailure, match="not installed"):
        time_process(["/nonexistent/program"], 5)
    with pytest.raises(BenchFailure, match="no exit within"):
        time_process(["sleep", "5"], 0.2)


def test_reset_runs_before_every_run_and_outside_its_time() -> None:
    order: list[str] = []

    def reset() -> None:
        order.append("reset")
        time.sleep(0.05)

    def once() -> float:
        order.append("run")
        return 0.001

    stats = repeat(once, reset, 3)
    assert order == ["reset", "run"] * 3
    assert stats.runs == (0.001, 0.001, 0.001)


def test_first_failure_ends_the_case() -> None:
    calls = []

    def once() -> float:
        calls.append(1)
        raise BenchFailure("key still registered")

    with pytest.raises(BenchFailure):
        repeat(once, lambda: None, 10)
    assert len(calls) == 1


def test_stats() -> None:
    stats = Stats((0.3, 0.1, 0.2, 0.4))
    assert (stats.min, stats.median, stats.max) == (0.1, 0.25, 0.4)
