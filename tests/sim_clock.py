"""A simulated clock for decision code that takes its clock as a parameter."""
from __future__ import annotations


class SimClock:
    """Time passes only when someone sleeps; every sleep is recorded."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_790_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
