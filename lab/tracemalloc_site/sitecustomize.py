"""Diagnostics for the soak (`./run soak --tracemalloc`), never on a cluster node: a lab
process started with this folder on PYTHONPATH traces its allocations (25 frames) from
interpreter start, and writes a tracemalloc snapshot to $STONEWALL_LAB_TRACEMALLOC.<n> on
each SIGUSR2 (n counts from 1). The soak compares two snapshots."""
from __future__ import annotations

import os
import signal
import tracemalloc

_TARGET = os.environ.get("STONEWALL_LAB_TRACEMALLOC")

if _TARGET:
    tracemalloc.start(25)
    _taken = [0]

    def _dump(_signum: int, _frame: object) -> None:
        _taken[0] += 1
        tracemalloc.take_snapshot().dump(f"{_TARGET}.{_taken[0]}")

    signal.signal(signal.SIGUSR2, _dump)
