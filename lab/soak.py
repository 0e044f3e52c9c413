"""The soak: one two-node lab at 64 LUNs x 2 paths, driven through the same cycle for a
given time, with every long-lived process, the event logs and every answer watched.

The lab: 2 arbiter LUNs, 4 guest LUNs (one per guest; data path through the node's kernel
stand-in) and 58 shared LUNs (every node registered, control path) = 64, each on two paths
per node. All guests live on node-a. One cycle:

1. fence: DRBD's fence-peer handler on node-a fences node-b (exit 4 expected);
2. verify-fenced: an independent initiator reads node-b's key gone from every LUN;
3. self-fence: node-b's watchdog resets it (its service saw its key gone), within T_safe;
4. rejoin: node-b reboots with a new boot id, its service starts, joins and arms;
5. verify-joined: the observer reads node-b's key on every arbiter and shared LUN;
6. status: `stonewall status --json` on node-a and node-b in turn: exit 0, every LUN listed;
7. guest-stop, guest-start: one of node-a's guests in turn, through vm/control.py.

The fencer never changes: node-b is always the victim, so node-a's service (its holder),
its kernel stand-in and watchdog stand-in, both BMCs and tgtd live the whole soak, and node-b
gives one instance of each per cycle. (A reversed fence would reset node-a and its guests:
the invariant checker counts a fenced node's writes after its fence point as a violation, in
any later boot.) After each cycle every process is sampled (VmRSS, descriptors, per PID),
and both event logs (bytes, records). The judge (lab/soak_judge.py) decides at the end, or
at the first failure, together with the lab's invariant check.

    python -m stonewall.lab.soak --duration 3600 --luns 64 --seed 1 --report soak-results
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar

from stonewall.config.model import LunRole
from stonewall.config.timing import t_safe
from stonewall.lab.footprint import process_footprint, process_start
from stonewall.lab.scenario import FenceRecord, LabGuest, ScenarioLab
from stonewall.lab.soak_diagnostics import HolderDiagnostics
from stonewall.lab.soak_judge import LogSample, Operation, Sample
from stonewall.lab.soak_report import SoakReport, render_markdown

FENCER, VICTIM = "node-a", "node-b"
ARBITERS = 2
GUESTS = tuple(LabGuest(f"vm{i}", FENCER, 3 + i, "immediate") for i in range(4))
STORAGE_FENCED, POWERED_OFF = 4, 7
# Slower than the scenarios' FAST_WATCHDOG (check_deadline 1 s): at 64 x 2 on a shared
# 2-core machine a check of node-a's 128 paths plus its guests' LUNs was once late by more
# than that in a short soak, and node-a reset itself (a fail-safe, but the soak's end).
# T_safe = 2.5 + 3.0 + 0.5 = 6 s.
SOAK_WATCHDOG = {"interval": 0.5, "io_deadline": 1.0, "check_deadline": 2.5, "timeout": 3.0,
                 "grace": 2.0, "margin": 0.5}
VERIFY_DEADLINE = 10.0  # the observer's log-in and READ KEYS on every path
REJOIN_DEADLINE = 45.0  # power on: kernel stand-in (20 s), service READY (20 s), hypervisor
STATUS_TIMEOUT = 5.0  # `status --timeout`
STATUS_DEADLINE = STATUS_TIMEOUT + 5.0  # its own reads, and the interpreter's start
GUEST_DEADLINE = 15.0  # what ScenarioLab gives vm start and vm stop
# Before sampling: the restarted guest's writer has written a few times (one write per
# PERIOD, each on the map's next path), so it holds its nexus connection on every path.
SETTLE = 0.5
# Descriptors at rest: the fewest of FD_READS reads FD_READ_GAP apart, a window longer than
# the watchdog's check interval (0.5 s), so that one read falls between two checks: a check
# holds its batch's wake-up pipe (2 descriptors) and, per sg_persist run, its pipes.
FD_READS, FD_READ_GAP = 8, 0.1
REPORT_EVERY = 10  # cycles between report writes (a stopped soak keeps its figures)
TRACE_AFTER = 10  # --tracemalloc: the first snapshot, after this cycle
T = TypeVar("T")


class SoakFailure(RuntimeError):
    """An operation went wrong: the soak stops here and judges what it has."""


@dataclass
class Instance:
    """One process instance (a role on a node, by PID and start time), from the cycle it was
    first seen."""

    name: str  # e.g. "node-a service"
    pid: int
    first_cycle: int
    samples: list[Sample] = field(default_factory=list)


@dataclass
class Soak:
    lab: ScenarioLab
    instances: dict[tuple[str, int, int], Instance] = field(default_factory=dict)
    operations: list[Operation] = field(default_factory=list)
    event_logs: dict[str, list[LogSample]] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)  # power fences, and why
    cycles: int = 0

    # -- one cycle ----------------------------------------------------------------------
    def cycle(self, number: int) -> None:
        lab = self.lab
        fence_budget = lab.config(FENCER).fencing[0].timeout  # the storage level's
        record = self.timed("fence", number, fence_budget,
                            lambda: lab.drbd_fence_peer(FENCER, VICTIM), self._fence_answer)
        fenced_at = time.monotonic() - (time.time() - record.ended)
        self.timed("verify-fenced", number, VERIFY_DEADLINE, lab.registered_nodes,
                   self._victim_absent)
        # Counted from the handler's exit (after its PREEMPT): the victim is reset by T_safe,
        # or, after a power fence, is off already.
        safe = t_safe(lab.config(VICTIM).watchdog)
        expected = ({"reset by its watchdog"} if record.exit_code == STORAGE_FENCED
                    else {"powered off", "reset by its watchdog"})
        self.timed("self-fence", number, safe,
                   lambda: lab.wait_down(VICTIM, within=2 * safe) and lab.nodes[VICTIM].down,
                   lambda why: (why in expected, f"down: {why}"), began=fenced_at)
        self.timed("rejoin", number, REJOIN_DEADLINE,
                   lambda: lab.reboot(VICTIM, f"{VICTIM}-boot-{number + 2}"),
                   lambda _none: (True, ""))
        self.timed("verify-joined", number, VERIFY_DEADLINE, lab.registered_nodes,
                   self._victim_joined)
        node = (FENCER, VICTIM)[number % 2]
        self.timed(f"status on {node}", number, STATUS_DEADLINE, lambda: self._status(node),
                   lambda answer: answer)
        guest = GUESTS[number % len(GUESTS)].name
        self.timed("guest-stop", number, GUEST_DEADLINE,
                   lambda: lab.stop_guest(guest, FENCER), lambda _none: (True, ""))
        self.timed("guest-start", number, GUEST_DEADLINE,
                   lambda: lab.start_guest(guest, FENCER), lambda _none: (True, ""))
        self.cycles = number + 1
        time.sleep(SETTLE)
        self.sample(number)

    def timed(self, kind: str, cycle: int, deadline: float, call: Callable[[], T],
              judge: Callable[[T], tuple[bool, str]], began: float | None = None) -> T:
        """Run `call`, record its duration (from `began`, monotonic, default now) against
        `deadline` and whether its answer was right; SoakFailure when it raised, was wrong
        or was late."""
        began = time.monotonic() if began is None else began
        try:
            answer = call()
        except Exception as error:  # the soak's failure, with what raised it
            seconds = time.monotonic() - began
            self.operations.append(Operation(kind, cycle, seconds, deadline, False,
                                             f"{type(error).__name__}: {error}"))
            raise SoakFailure(f"cycle {cycle}: {kind} raised {error}") from error
        seconds = time.monotonic() - began
        ok, detail = judge(answer)
        operation = Operation(kind, cycle, seconds, deadline, ok, detail)
        self.operations.append(operation)
        if not ok or not operation.in_time:
            raise SoakFailure(f"cycle {cycle}: {kind} took {seconds:.2f}s (deadline "
                              f"{deadline:g}s): {detail or 'right'}")
        return answer

    def _fence_answer(self, record: FenceRecord) -> tuple[bool, str]:
        """Exit 4 is right. Exit 7 (the power level, after the storage level could not prove
        its fence) is a fence too, and keeps the one rule: it is counted as a fallback, with
        what the storage level said, and the soak goes on."""
        if record.exit_code == STORAGE_FENCED:
            return True, "exit 4"
        said = " | ".join(line for line in record.output.strip().splitlines()[-6:])
        if record.exit_code == POWERED_OFF:
            self.fallbacks.append(f"cycle {self.cycles}: exit 7: {said}")
            return True, f"exit 7 (power fallback): {said}"
        return False, f"exit {record.exit_code}: {said}"

    def _victim_absent(self, seen: dict[str, set[str] | None]) -> tuple[bool, str]:
        unread = [lun for lun, nodes in seen.items() if nodes is None]
        still = [lun for lun, nodes in seen.items() if nodes and VICTIM in nodes]
        return (not unread and not still and len(seen) == self.lun_count,
                f"{len(seen)} LUNs read, unreadable {unread[:3]}, {VICTIM} still on "
                f"{still[:3]}")

    def _victim_joined(self, seen: dict[str, set[str] | None]) -> tuple[bool, str]:
        config = self.lab.config(FENCER)
        shared = {lun.name for lun in config.luns if lun.role is not LunRole.GUEST}
        missing = sorted(lun for lun in shared if not seen.get(lun) or VICTIM not in seen[lun])
        on_guest = sorted(lun for lun, nodes in seen.items()
                          if lun not in shared and nodes and VICTIM in nodes)
        return (not missing and not on_guest,
                f"{VICTIM} missing on {missing[:3]}, on guest LUNs {on_guest[:3]}")

    def _status(self, node: str) -> tuple[bool, str]:
        answer = subprocess.run(
            [sys.executable, "-m", "stonewall", "--config", str(self.lab.configs[node]),
             "status", "--json", "--node", node, "--timeout", str(STATUS_TIMEOUT)],
            capture_output=True, text=True, timeout=STATUS_DEADLINE * 2)
        try:
            listed = [lun["name"] for lun in json.loads(answer.stdout)["luns"]]
        except (ValueError, KeyError, TypeError):
            listed = []
        ok = answer.returncode == 0 and len(set(listed)) == self.lun_count
        return ok, f"exit {answer.returncode}, {len(set(listed))} LUNs listed" + (
            "" if ok else f": {answer.stderr.strip()[-300:]}")

    @property
    def lun_count(self) -> int:
        return len(self.lab.config(FENCER).luns)

    # -- sampling -------------------------------------------------------------------------
    def long_lived(self) -> dict[str, int]:
        """name -> PID of every long-lived process of the lab now."""
        lab = self.lab
        found = {"tgtd": lab.tgtd.pid}
        for name, node in lab.nodes.items():
            if node.service is not None:
                found[f"{name} service (holder)"] = node.service.pid
            kernel = lab.cluster.kernels.get(name) if lab.cluster else None
            if kernel is not None and kernel.nexus is not None:
                found[f"{name} kernel stand-in (nexus)"] = kernel.nexus.pid
            if node.supervisor is not None:
                found[f"{name} watchdog stand-in"] = node.supervisor.process.pid
            if node.bmc is not None:
                found[f"{name} BMC"] = node.bmc.pid
        return found

    def sample(self, cycle: int) -> None:
        """Every long-lived process's footprint, and both event logs. Descriptors are the
        fewest of FD_READS reads FD_READ_GAP apart: what comes and goes (a check's pipes, a
        guest's connection on a path) is not held, and a leaked descriptor is in every
        read."""
        pids = self.long_lived()
        reads: dict[str, list[tuple[int, int]]] = {name: [] for name in pids}
        for attempt in range(FD_READS):
            if attempt:
                time.sleep(FD_READ_GAP)
            for name, pid in pids.items():
                reads[name].append(process_footprint(pid))
        for name, pid in pids.items():
            instance = self.instances.setdefault((name, pid, process_start(pid)),
                                                 Instance(name, pid, cycle))
            instance.samples.append(Sample(cycle, reads[name][-1][0],
                                           min(fds for _rss, fds in reads[name])))
        for node in self.lab.nodes:
            path = Path(self.lab.config(node).paths.event_log)
            self.event_logs.setdefault(node, []).append(read_log_sample(path, cycle))


def read_log_sample(path: Path, cycle: int) -> LogSample:
    """The event log's size, its complete records and their bytes (a missing log is empty)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    records, record_bytes, largest = 0, 0, 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            records += 1
            record_bytes += len(line)
            largest = max(largest, len(line))
    return LogSample(cycle, len(data), records, record_bytes, largest)


def run_soak(workdir: Path, duration: float, luns: int, seed: int, report_dir: Path,
             log: Callable[[str], None] = partial(print, flush=True),
             max_cycles: int | None = None,
             trace: bool = False, malloc_trim: bool = False,
             holder_env: dict[str, str] | None = None) -> SoakReport:
    """Build the lab, run cycles until `duration` seconds (or `max_cycles`) are spent, judge
    and write the report (also after a failure). The seed orders nothing but the pause
    before each cycle (0-0.5 s), where in the guests' write period the fence lands.
    Diagnostics of the fencer's holder (lab/soak_diagnostics.py): `trace`, tracemalloc
    snapshots after cycle TRACE_AFTER and at the end; `malloc_trim`, at the end, glibc's
    free memory and the RSS before and after malloc_trim(0); `holder_env`, more environment
    for the fencer's service."""
    shared = luns - ARBITERS - len(GUESTS)
    if shared < 0:
        raise ValueError(f"--luns {luns}: at least {ARBITERS + len(GUESTS)} "
                         "(arbiters and guest LUNs)")
    rng = random.Random(seed)
    diagnostics = HolderDiagnostics(workdir.parent / "holder", trace=trace, malloc=malloc_trim)
    environment = {**(holder_env or {}), **diagnostics.environment}
    lab = ScenarioLab(workdir, guests=GUESTS, shared_luns=shared, watchdog=SOAK_WATCHDOG,
                      service_env={FENCER: environment})
    soak = Soak(lab)
    failure: str | None = None
    began = time.monotonic()
    report = SoakReport(duration, luns, seed, {"arbiter": ARBITERS, "guest": len(GUESTS),
                                               "shared": shared}, holder_env=environment)
    invariants = None
    try:  # the lab is stopped on every way out: a failure, Ctrl-C, SIGTERM
        try:
            lab.start()
            soak.sample(-1)  # the lab as built, before any cycle
            number = 0
            while time.monotonic() - began < duration and (max_cycles is None
                                                            or number < max_cycles):
                time.sleep(rng.uniform(0.0, 0.5))
                soak.cycle(number)
                log(f"cycle {number} done at {time.monotonic() - began:.0f}s")
                if number == TRACE_AFTER:
                    diagnostics.snapshot(lab.nodes[FENCER].service)
                if number % REPORT_EVERY == 0:
                    write_report(report.fill(soak, time.monotonic() - began, None, None),
                                 report_dir)
                number += 1
        except SoakFailure as error:
            failure = str(error)
            log(f"FAILED: {failure}")
        service = lab.nodes[FENCER].service if lab.nodes else None
        try:
            diagnostics.snapshot(service)
            report.malloc_trim = diagnostics.trim(service)
        except OSError as error:  # a diagnostic never costs the soak its report
            log(f"diagnostics: {error}")
        if lab.cluster is not None:
            invariants = lab.check_invariants()
    finally:
        lab.stop()
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "timeline.txt").write_text(
            "".join(f"[{event.at:8.2f}s] {event.text}\n" for event in lab.events))
    report.fill(soak, time.monotonic() - began, failure, invariants)
    report.tracemalloc = diagnostics.growth()
    write_report(report, report_dir)
    return report


def write_report(report: SoakReport, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "report.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    (report_dir / "report.md").write_text(render_markdown(report))


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when the soak passed every check, 1 when it did not, 2 on bad arguments."""
    parser = argparse.ArgumentParser(prog="./run soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600.0,
                        help="seconds of cycles (default 3600)")
    parser.add_argument("--luns", type=int, default=64, help="LUNs, each on two paths "
                        "(default 64)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycles", type=int, help="stop after this many cycles")
    parser.add_argument("--report", type=Path, default=Path("soak-results"),
                        help="folder for report.json and report.md (default soak-results)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the lab's files (kept anyway when the soak fails)")
    parser.add_argument("--holder-env", action="append", default=[], metavar="NAME=VALUE",
                        help="diagnostics: more environment for the fencer's service, e.g. "
                             "MALLOC_ARENA_MAX=1 (repeatable)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="diagnostics: trace the fencer holder's allocations and report "
                             f"what grew from cycle {TRACE_AFTER} to the end")
    parser.add_argument("--malloc-trim", action="store_true",
                        help="diagnostics: at the end, the fencer holder's free malloc memory "
                             "and its RSS before and after malloc_trim(0)")
    args = parser.parse_args(argv)
    holder_env = dict(item.partition("=")[::2] for item in args.holder_env)
    if any(not name for name in holder_env):
        parser.error("--holder-env wants NAME=VALUE")
    if args.duration <= 0 or args.luns < ARBITERS + len(GUESTS):
        parser.error(f"--duration must be positive and --luns at least "
                     f"{ARBITERS + len(GUESTS)}")
    # SIGTERM ends the soak like Ctrl-C: the lab is stopped by PID on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    report = None
    try:
        report = run_soak(workdir / "lab", args.duration, args.luns, args.seed, args.report,
                          max_cycles=args.cycles, trace=args.tracemalloc,
                          malloc_trim=args.malloc_trim, holder_env=holder_env)
    finally:
        if args.keep or report is None or not report.passed:  # a failure keeps its evidence
            print(f"the lab's files (logs, event logs, configs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render_markdown(report))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
