"""Diagnostics of the fencer's holder during a soak (off by default; lab/diagnostics_site):
tracemalloc snapshots (what Python objects grew), and glibc's malloc_info around a
malloc_trim(0) (how much of the resident memory was free memory the allocator kept)."""
from __future__ import annotations

import os
import re
import signal
import time
import tracemalloc
from pathlib import Path
from typing import Any

from stonewall.lab.footprint import process_footprint
from stonewall.lab.processes import StonewallProcess

_SITE = Path(__file__).parent / "diagnostics_site"
_FREE = re.compile(r'<total type="(fast|rest)" count="\d+" size="(\d+)"/>')
_SYSTEM = re.compile(r'<system type="current" size="(\d+)"/>')


class HolderDiagnostics:
    def __init__(self, prefix: Path, *, trace: bool, malloc: bool) -> None:
        self.prefix = prefix
        self.trace = trace
        self.malloc = malloc
        self.snapshots = 0

    @property
    def environment(self) -> dict[str, str]:
        if not (self.trace or self.malloc):
            return {}
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(_SITE),
                                                           os.environ.get("PYTHONPATH")]))}
        if self.trace:
            env["STONEWALL_LAB_TRACEMALLOC"] = f"{self.prefix}-trace"
        if self.malloc:
            env["STONEWALL_LAB_MALLOC_INFO"] = f"{self.prefix}-malloc"
        return env

    def snapshot(self, service: StonewallProcess | None) -> None:
        """A tracemalloc snapshot of the holder (when tracing), waited for."""
        if not self.trace or service is None:
            return
        self.snapshots += 1
        os.kill(service.pid, signal.SIGUSR2)
        _wait_written(Path(f"{self.prefix}-trace.{self.snapshots}"))

    def growth(self, top: int = 15) -> list[dict[str, Any]] | None:
        """The allocation sites that grew most from the first snapshot to the last, and the
        traced total."""
        if self.snapshots < 2:
            return None
        first = tracemalloc.Snapshot.load(f"{self.prefix}-trace.1")
        last = tracemalloc.Snapshot.load(f"{self.prefix}-trace.{self.snapshots}")
        total = [sum(s.size for s in snap.statistics("filename")) for snap in (first, last)]
        rows: list[dict[str, Any]] = [{"traced_kib": [t // 1024 for t in total]}]
        for stat in last.compare_to(first, "traceback")[:top]:
            rows.append({"size_diff_kib": round(stat.size_diff / 1024, 1),
                         "count_diff": stat.count_diff,
                         "traceback": [f"{frame.filename}:{frame.lineno}"
                                       for frame in stat.traceback][-8:]})
        return rows

    def trim(self, service: StonewallProcess | None) -> dict[str, int] | None:
        """RSS and glibc's free and mapped bytes before and after malloc_trim(0)."""
        if not self.malloc or service is None:
            return None
        before_rss = process_footprint(service.pid)[0]
        os.kill(service.pid, signal.SIGUSR1)
        after = Path(f"{self.prefix}-malloc.after")
        _wait_written(after)
        if not after.exists():
            return None  # the process did not run its handler (gone, or stopped)
        figures = {"rss_before_kib": before_rss,
                   "rss_after_kib": process_footprint(service.pid)[0]}
        for when in ("before", "after"):
            text = Path(f"{self.prefix}-malloc.{when}").read_text()
            free = sum(int(size) for _kind, size in _FREE.findall(text)[-2:])
            system = _SYSTEM.findall(text)
            figures[f"malloc_free_{when}_kib"] = free // 1024
            figures[f"malloc_mapped_{when}_kib"] = int(system[-1]) // 1024 if system else 0
        return figures


def _wait_written(path: Path, within: float = 30.0) -> None:
    """Until `path` exists and its size stopped changing (or `within` seconds passed)."""
    deadline = time.monotonic() + within
    size = -1
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = path.stat().st_size if path.exists() else -1
        if now == size and now > 0:
            return
        size = now
