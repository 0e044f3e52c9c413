"""Timing: one process from its start to its exit, repeated with a state reset between runs
that is never part of the timed span; summaries as min / median / max."""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence


class BenchFailure(Exception):
    """A timed run did not do what it claims (wrong exit status, key still registered...):
    the case is reported as failed, never with a time."""


@dataclass(frozen=True)
class Stats:
    """Seconds of every run of one case."""

    runs: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def as_dict(self) -> dict[str, object]:
        return {"min": self.min, "median": self.median, "max": self.max,
                "runs": list(self.runs)}


@dataclass(frozen=True)
class ProcessRun:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


def time_process(command: Sequence[str], timeout: float,
                 env: Mapping[str, str] | None = None, stdin: str | None = None,
                 replace_env: bool = False) -> ProcessRun:
    """Run `command` once: wall time from just before fork/exec to just after its exit (what
    a caller such as DRBD or Pacemaker waits for), with its output. `env` is added to this
    process's environment, or with `replace_env` is the whole environment (PYTHONPATH, when
    set, still passes so that a patched tree can be measured)."""
    if replace_env:
        environment = {**{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
                       **(env or {})}
    else:
        environment = {**os.environ, **(env or {})}
    started = time.perf_counter()
    try:
        result = subprocess.run(list(command), env=environment, capture_output=True, text=True,
                                timeout=timeout, input=stdin,
                                stdin=None if stdin is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise BenchFailure(f"{command[0]}: not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchFailure(f"{' '.join(command[:3])}...: no exit within {timeout}s") from exc
    return ProcessRun(time.perf_counter() - started, result.returncode, result.stdout,
                      result.stderr)


def repeat(run_once: Callable[[], float], reset: Callable[[], None], runs: int) -> Stats:
    """`reset()` then `run_once()` (which returns the seconds it timed), `runs` times."""
    if runs < 1:
        raise ValueError("at least one run")
    timings = []
    for _ in range(runs):
        reset()
        timings.append(run_once())
    return Stats(tuple(timings))


def expect_exit(run: ProcessRun, expected: int, what: str) -> float:
    """The run's seconds, or BenchFailure naming its exit status and last stderr line."""
    if run.returncode != expected:
        tail = (run.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise BenchFailure(f"{what}: exit {run.returncode}, expected {expected}: {tail}")
    return run.seconds
