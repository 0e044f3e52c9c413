"""The benchmark's cases, each a number of timed runs with its state reset between them
(outside the timed part), and each timed run checked: a fence counts only when the
observer's own sessions show the victim's key gone on every path of every LUN."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from stonewall.benchmarks.entry_points import Invocation, fence_entry_points
from stonewall.benchmarks.fence_scsi import STATUS_ON, FenceScsiNode
from stonewall.benchmarks.lab import FENCER, VICTIM, HolderStart, Nodes
from stonewall.benchmarks.measure import (
    BenchFailure, ProcessRun, Stats, expect_exit, repeat, time_process)
from stonewall.clock import Deadline
from stonewall.holder.api import HolderFailure

STONEWALL_TIMEOUT = 120.0
UNAVAILABLE = "unavailable: "
FENCE_SCSI_TIMEOUT = 900.0  # 512 x 2 devices x 14 processes, one after another


@dataclass
class CaseResult:
    """One row of the results: a case, a tool, a size, and its timings or why none."""

    case: str  # fence, status, join, holder start, power
    tool: str
    luns: int
    paths: int  # per LUN
    stats: Stats | None = None
    error: str = ""
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def unavailable(self) -> bool:
        """The tool cannot run on this machine (the row says why): not a failure."""
        return self.error.startswith(UNAVAILABLE)

    @property
    def lun_paths(self) -> int:
        return self.luns * self.paths

    def as_dict(self) -> dict[str, object]:
        return {"case": self.case, "tool": self.tool, "luns": self.luns, "paths": self.paths,
                "lun_paths": self.lun_paths,
                "seconds": self.stats.as_dict() if self.stats else None,
                "error": self.error or None, "notes": self.notes}


def run_case(case: str, tool: str, nodes: Nodes, once: Callable[[], float],
             reset: Callable[[], None], runs: int) -> CaseResult:
    """`runs` timed runs; the first failure ends the case and is reported instead."""
    result = CaseResult(case, tool, nodes.count, nodes.paths_per_lun)
    try:
        result.stats = repeat(once, reset, runs)
    except BenchFailure as exc:
        result.error = str(exc)
    except Exception as exc:  # a broken case must not cost the rest of a long run
        result.error = f"unexpected {type(exc).__name__}: {exc}"
    return result


def _nothing() -> None:
    """No state to reset (read-only cases)."""


# -- fence -----------------------------------------------------------------------------------
def stonewall_fence(nodes: Nodes, workdir: Path, runs: int,
                    python: str = sys.executable) -> list[CaseResult]:
    """Every available fence entry point, run by `python`: node-a fences node-b; node-b
    reboots between."""
    results = []
    for point in fence_entry_points(nodes, workdir, python):
        invocation = point.invocation
        if invocation is None:
            results.append(CaseResult("fence", point.name, nodes.count, nodes.paths_per_lun,
                                      error=f"unavailable: {point.unavailable}"))
            continue

        def once(name: str = point.name, inv: Invocation = invocation) -> float:
            run = time_process(inv.command, STONEWALL_TIMEOUT, inv.env, inv.stdin,
                               inv.replace_env)
            seconds = expect_exit(run, inv.expected_exit, name)
            nodes.require_victim(present=False)
            return seconds

        results.append(run_case("fence", point.name, nodes, once, nodes.reboot_victim, runs))
    return results


FENCE_SCSI_PER_PATH = ", one device per path"


def fence_mpath(nodes: Nodes, fence_scsi: FenceScsiNode) -> CaseResult:
    """fence_mpath, where it can run. It acts through mpathpersist, which asks the kernel's
    device-mapper and multipathd for a map's paths; the lab presents maps through the SG_IO
    shim, which has no device-mapper behind it, so the row says so in mpathpersist's
    own words rather than time something else."""
    result = CaseResult("fence", "fence_mpath -o off", nodes.count, nodes.paths_per_lun)
    why = fence_scsi.mpathpersist_refusal()
    result.error = UNAVAILABLE + (why or "mpathpersist answers here, but this benchmark "
                                  "has no dm-multipath lab to time fence_mpath in")
    return result


def fence_scsi_fence(nodes: Nodes, fence_scsi: FenceScsiNode, runs: int,
                     notes: dict[str, object], per_path: bool = False) -> CaseResult:
    """`fence_scsi -o off` of node-b's key, given one map per LUN as a multipath user
    configures it (with `per_path`: every path device, the benchmark's earlier setup)."""
    tool = "fence_scsi -o off" + (FENCE_SCSI_PER_PATH if per_path else "")

    def once() -> float:
        run = fence_scsi.run("off", nodes.key(VICTIM), FENCE_SCSI_TIMEOUT, per_path=per_path)
        seconds = expect_exit(run, 0, tool)
        nodes.require_victim(present=False)
        return seconds

    result = run_case("fence", tool, nodes, once, nodes.reboot_victim, runs)
    result.notes = {"devices": len(fence_scsi.devices if per_path else fence_scsi.maps),
                    **notes}
    return result


# -- status ----------------------------------------------------------------------------------
def stonewall_status(nodes: Nodes, runs: int,
                     python: str = sys.executable) -> list[CaseResult]:
    """`stonewall status` (table, then --json) on node-a, whose holder runs, by `python`."""
    names = [lun.name for lun in nodes.config.luns]
    base = [python, "-m", "stonewall", "--config", str(nodes.configs[FENCER]), "status"]

    def check_table(run: ProcessRun) -> None:
        missing = [name for name in names if name not in run.stdout]
        if missing:
            raise BenchFailure(f"status table lacks {len(missing)} LUNs, e.g. {missing[0]}")

    def check_json(run: ProcessRun) -> None:
        try:
            listed = {entry["name"] for entry in json.loads(run.stdout)["luns"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchFailure(f"status --json did not parse: {exc}") from exc
        if listed != set(names):
            raise BenchFailure(f"status --json lists {len(listed)} of {len(names)} LUNs")

    results = []
    nodes.reboot_victim()  # every node registered on every path: status exits 0
    for tool, extra, check in (("stonewall status", [], check_table),
                               ("stonewall status --json", ["--json"], check_json)):
        def once(extra: list[str] = extra, check: Callable[[ProcessRun], None] = check,
                 tool: str = tool) -> float:
            run = time_process([*base, *extra], STONEWALL_TIMEOUT)
            seconds = expect_exit(run, 0, tool)
            check(run)
            return seconds

        results.append(run_case("status", tool, nodes, once, _nothing, runs))
    return results


def fence_scsi_status(nodes: Nodes, fence_scsi: FenceScsiNode, runs: int,
                      notes: dict[str, object], per_path: bool = False) -> CaseResult:
    """`fence_scsi -o status` of node-b's key (registered: "on", exit 0), on one map per
    LUN (with `per_path`: on every path device)."""
    tool = "fence_scsi -o status" + (FENCE_SCSI_PER_PATH if per_path else "")
    nodes.reboot_victim()

    def once() -> float:
        run = fence_scsi.run("status", nodes.key(VICTIM), FENCE_SCSI_TIMEOUT,
                             per_path=per_path)
        return expect_exit(run, STATUS_ON, tool)

    result = run_case("status", tool, nodes, once, _nothing, runs)
    result.notes = {"devices": len(fence_scsi.devices if per_path else fence_scsi.maps),
                    **notes}
    return result


# -- join ------------------------------------------------------------------------------------
def holder_start(nodes: Nodes, runs: int) -> CaseResult:
    """node-a's holder started with --join, exec to READY (log in every path, register on
    every path, reserve), stopped between runs; RSS and open fds of each start."""
    starts: list[HolderStart] = []

    def once() -> float:
        start = nodes.start_holder(FENCER)
        starts.append(start)
        return start.seconds

    result = run_case("join", "holder run --join (start-up)", nodes, once,
                      lambda: nodes.stop_holder(FENCER), runs)
    if starts:
        result.notes = {"control_paths": starts[-1].control_paths,
                        "data_paths": starts[-1].data_paths,
                        "rss_kib_max": max(s.rss_kib for s in starts),
                        "open_fds_max": max(s.open_fds for s in starts)}
    return result


def holder_join(nodes: Nodes, runs: int) -> CaseResult:
    """A join asked of node-a's running holder over its socket (REGISTER AND IGNORE on every
    path, then reserve where no reservation is), timed in this process."""
    def once() -> float:
        began = time.perf_counter()
        try:
            answer = nodes.client(FENCER).join(Deadline.after(STONEWALL_TIMEOUT))
        except HolderFailure as exc:
            raise BenchFailure(f"join: {exc}") from exc
        seconds = time.perf_counter() - began
        if not answer.ok:
            raise BenchFailure(f"join incomplete: {answer}")
        return seconds

    return run_case("join", "holder join (socket)", nodes, once, _nothing, runs)
