"""The soak's judge: pure functions over what the soak sampled, no processes, no clock.

- memory is flat when, after a warm-up (the first WARMUP_SHARE of a process instance's
  samples), RSS grows by less than MAX_GROWTH_KIB from the first sample after the warm-up
  to the last, and the least-squares slope over the samples after the warm-up is below
  MAX_SLOPE_KIB_PER_CYCLE (judged when there are at least MIN_TREND_SAMPLES of them);
- descriptors are flat when every sample after the warm-up equals the first one after it;
- the event log grows only by its records: its size is the sum of its complete lines, each
  cycle after the warm-up adds the same number of records, and the largest record at the end
  is at most MAX_RECORD_GROWTH larger than the largest by the first cycle after the warm-up;
- every operation ended within its deadline, and answered right.

Why these bounds (docs/soak.md): CPython's small-object allocator takes memory in 1 MiB
arenas (3.10+) and glibc keeps freed chunks below its 128 KiB trim threshold, so a process
in a steady loop may move by an arena or two without leaking: 4 MiB leaves room for that. A
leak of one fence's results per cycle (64 LUNs x 2 paths of typed values) is tens of KiB per
cycle; 1 KiB per cycle is under 1 MiB over a soak's 500-1,000 cycles: what a loop that
allocates the same things every cycle meets once its allocator has settled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

WARMUP_SHARE = 0.10
MAX_GROWTH_KIB = 4 * 1024
MAX_SLOPE_KIB_PER_CYCLE = 1.0
MIN_TREND_SAMPLES = 20
MAX_RECORD_GROWTH = 0.10


@dataclass(frozen=True)
class Sample:
    """One reading of one process instance at the end of a cycle."""

    cycle: int
    rss_kib: int
    fds: int


@dataclass(frozen=True)
class LogSample:
    """The event log at the end of a cycle: its size, its records, and the bytes of its
    complete (parsable, newline-ended) lines."""

    cycle: int
    size: int
    records: int
    record_bytes: int
    largest_record: int


@dataclass(frozen=True)
class Operation:
    kind: str  # fence, verify-fenced, self-fence, rejoin, verify-joined, status, guest-stop, ...
    cycle: int
    seconds: float
    deadline: float
    ok: bool  # the operation's own answer was right (exit code, evidence)
    detail: str = ""

    @property
    def in_time(self) -> bool:
        return self.seconds <= self.deadline


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of y over x; 0 for fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def after_warmup(samples: Sequence[Sample]) -> list[Sample]:
    """The samples after the warm-up (at least the first sample is warm-up)."""
    ordered = sorted(samples, key=lambda s: s.cycle)
    warmup = max(1, math.ceil(len(ordered) * WARMUP_SHARE))
    return ordered[warmup:]


@dataclass(frozen=True)
class MemoryFigures:
    start_kib: int
    after_warmup_kib: int | None
    end_kib: int
    growth_kib: int | None  # end - after warm-up
    slope_kib_per_cycle: float | None  # None: too few samples to judge a trend
    verdict: Verdict


def judge_memory(samples: Sequence[Sample], judge_trend: bool = True) -> MemoryFigures:
    """`judge_trend` False: the slope is reported, not judged (a series of successive
    instances, each a fresh process, whose starts differ by noise, not by accumulation)."""
    ordered = sorted(samples, key=lambda s: s.cycle)
    if not ordered:
        return MemoryFigures(0, None, 0, None, None, Verdict(False, "no samples"))
    steady = after_warmup(ordered)
    start, end = ordered[0].rss_kib, ordered[-1].rss_kib
    if not steady:
        return MemoryFigures(start, None, end, None, None,
                             Verdict(True, "too short to judge (warm-up only)"))
    base = steady[0].rss_kib
    growth = end - base
    trend = (slope([(s.cycle, s.rss_kib) for s in steady])
             if len(steady) >= MIN_TREND_SAMPLES else None)
    problems = []
    if growth >= MAX_GROWTH_KIB:
        problems.append(f"grew {growth} KiB after the warm-up (limit {MAX_GROWTH_KIB})")
    if judge_trend and trend is not None and trend >= MAX_SLOPE_KIB_PER_CYCLE:
        problems.append(f"trend {trend:.2f} KiB/cycle (limit {MAX_SLOPE_KIB_PER_CYCLE})")
    verdict = Verdict(not problems, "; ".join(problems) or "flat")
    return MemoryFigures(start, base, end, growth, trend, verdict)


def judge_fds(samples: Sequence[Sample]) -> Verdict:
    steady = after_warmup(samples)
    if not steady:
        return Verdict(True, "too short to judge (warm-up only)")
    base = steady[0].fds
    moved = [s for s in steady if s.fds != base]
    if moved:
        return Verdict(False, f"{base} descriptors after the warm-up, {moved[0].fds} at cycle "
                              f"{moved[0].cycle} ({len(moved)} samples differ)")
    return Verdict(True, f"{base} descriptors throughout")


def judge_event_log(samples: Sequence[LogSample]) -> Verdict:
    ordered = sorted(samples, key=lambda s: s.cycle)
    junk = [s for s in ordered if s.size != s.record_bytes]
    if junk:
        return Verdict(False, f"cycle {junk[0].cycle}: {junk[0].size} bytes but "
                              f"{junk[0].record_bytes} in complete records")
    warmup = max(1, math.ceil(len(ordered) * WARMUP_SHARE))
    steady = ordered[warmup:]
    if not steady:
        return Verdict(True, "too short to judge (warm-up only)")
    added = [(later.cycle, later.records - earlier.records)
             for earlier, later in zip(ordered[warmup - 1:], steady)]
    per_cycle = added[0][1]
    uneven = [(cycle, count) for cycle, count in added if count != per_cycle]
    if uneven:
        return Verdict(False, f"{per_cycle} records per cycle after the warm-up, "
                              f"{uneven[0][1]} in cycle {uneven[0][0]}")
    bound = steady[0].largest_record * (1 + MAX_RECORD_GROWTH)
    if steady[-1].largest_record > bound:
        return Verdict(False, f"a record of {steady[-1].largest_record} bytes by cycle "
                              f"{steady[-1].cycle}, {steady[0].largest_record} at most by "
                              f"cycle {steady[0].cycle}")
    return Verdict(True, f"{per_cycle} record(s) per cycle, size = its records")


def judge_deadlines(operations: Sequence[Operation]) -> Verdict:
    late = [op for op in operations if not op.in_time]
    wrong = [op for op in operations if not op.ok]
    problems = [f"{op.kind} in cycle {op.cycle}: {op.seconds:.2f}s, deadline {op.deadline:g}s"
                for op in late[:3]]
    problems += [f"{op.kind} in cycle {op.cycle}: {op.detail}" for op in wrong[:3]]
    if late or wrong:
        return Verdict(False, f"{len(late)} late, {len(wrong)} wrong: " + "; ".join(problems))
    return Verdict(True, f"{len(operations)} operations, every one in time and right")


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
