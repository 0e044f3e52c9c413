"""Test helpers: the lab BMC factory type; processes seen through /proc (which workers are
alive, whether a PID is gone)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from stonewall.lab.bmc_process import BmcProcess

BmcFactory = Callable[..., BmcProcess]  # start(**BmcProcess options) -> a running lab BMC

WORKER_MODULE = "stonewall.power.ipmi_child"


def process_exists(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def leftover_workers(parent: int | None = None) -> list[int]:
    """Children of `parent` (us) that are IPMI workers, or zombies (a zombie has lost its
    command line, and a reaped worker leaves none)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and (WORKER_MODULE.encode() in cmdline or state == "Z"):
            found.append(int(entry.name))
    return found
