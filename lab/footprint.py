"""What a running process holds, read from /proc: its resident memory and its descriptors.
Used by the soak and the benchmarks (which may import the lab; production code may not)."""
from __future__ import annotations

from pathlib import Path


def process_footprint(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, open file descriptors) of a running process, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


def process_start(pid: int) -> int:
    """When the process started, in clock ticks since boot (/proc/PID/stat field 22): with
    the PID, it names one process instance even after the PID is reused."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])
