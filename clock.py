"""Time as a parameter: a clock adapter and deadlines.

Decision code never calls `time` directly; it takes a `Clock`, so scenario tests can drive
it with a simulated one. Every wait in stonewall has a deadline.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """What decision code needs from time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for deadlines)."""

    def wall(self) -> float:
        """Seconds since the epoch (for logs and records)."""

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class Deadline:
    """A point on a clock's monotonic scale after which a wait must give up."""

    at: float
    clock: Clock = SYSTEM_CLOCK

    @classmethod
    def after(cls, seconds: float, clock: Clock = SYSTEM_CLOCK) -> "Deadline":
        """The deadline `seconds` from now."""
        return cls(clock.monotonic() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.at

    def earlier(self, seconds: float) -> "Deadline":
        """This deadline, or one `seconds` from now if that comes first."""
        return Deadline(min(self.at, self.clock.monotonic() + seconds), self.clock)
