"""The nemesis: seeded random fault schedules over the two-node data-path lab, each judged
by the invariant checker. A schedule is a pure function of its seed, so every run replays.

A schedule is 2-6 faults at random times within a 6 s run. DRBD's side reacts as drbdadm
would: a node that loses its peer (crashed, reset, frozen past DRBD's ping timeout, or the
replication link cut) runs the fence-peer handler once, and takes the peer's guests over
when the handler proves the fence. After the run every fault heals, a handler that could
not prove its fence is run once more (DRBD stays frozen until it is asked again), the
watchdogs get T_safe, and the checker judges:

- the one rule: no write of a fenced node accepted after its fence point, and no two nodes'
  writes acknowledged in overlapping windows (from every acknowledged data-path write and
  what the LUNs hold at the end);
- no acknowledged write lost;
- no false claim: right after every exit 4 an independent initiator reads the victim's key
  gone from every LUN, and after every exit 7 the victim's BMC reads "off";
- every guest runs on exactly one node, or nowhere;
- liveness: every guest runs again, or the report names why it cannot.

`python -m stonewall.lab.nemesis --schedules 200` runs many and reports; a failing schedule
is saved with its timeline and replays with `--replay FILE`.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from stonewall.config.timing import t_safe
from stonewall.lab.bmc_files import BmcBehaviour
from stonewall.lab.scenario import FenceRecord, LabGuest, ScenarioLab

NODES = ("node-a", "node-b")
GUESTS = (LabGuest("api1", "node-a", 3, "immediate"), LabGuest("web1", "node-a", 4, "safe"),
          LabGuest("db1", "node-b", 5, "immediate"))
HORIZON = 6.0  # seconds in which faults land
PING_TIMEOUT = 0.5  # DRBD declares a silent (frozen) peer lost after this long
STORM = 16  # concurrent fence-peer calls of a handler storm
VICTIM_SHARE = 0.8
TICK = 0.05
STORAGE_FENCED, POWERED_OFF = 4, 7


class FaultKind(str, Enum):
    CRASH = "crash"  # SIGKILL of the node's process group
    FREEZE = "freeze"  # SIGSTOP of the node, SIGCONT after `duration`
    LINK_LOSS = "link-loss"  # the replication link breaks: both sides fence at once
    LOSE_ONE_PATH = "lose-one-path"  # one portal of the node gone, back after `duration`
    LOSE_ALL_PATHS = "lose-all-paths"
    TARGET_FREEZE = "target-freeze"  # SIGSTOP of tgtd for `duration` (short: a slow target)
    BMC_MUTE = "bmc-mute"  # the node's BMC answers nothing (over UDP: also "unreachable")
    BMC_UNKNOWN = "bmc-unknown"  # the node's BMC answers status with an error code
    SERVICE_KILLED = "service-killed"  # the node's watchdog service (its holder) SIGKILLed
    # The peer crashes, and this node's fence-peer call is disturbed: killed after `duration`
    # (DRBD calls it again), or made as 16 concurrent calls.
    HANDLER_KILLED = "handler-killed"
    HANDLER_STORM = "handler-storm"
    WRONG_NODE_START = "wrong-node-start"  # start the peer's running guest on this node


# Faults that disturb the node's next fence-peer call.
_ARMING = (FaultKind.HANDLER_KILLED, FaultKind.HANDLER_STORM)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the run started
    kind: FaultKind
    node: str
    duration: float  # how long until it heals (freeze, paths, target, BMC); kill delay

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind.value, "node": self.node,
                "duration": self.duration}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Fault":
        return cls(float(data["at"]), FaultKind(data["kind"]), str(data["node"]),
                   float(data["duration"]))


@dataclass(frozen=True)
class Schedule:
    seed: int
    faults: tuple[Fault, ...]

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "faults": [fault.to_json() for fault in self.faults]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Schedule":
        return cls(int(data["seed"]), tuple(Fault.from_json(f) for f in data["faults"]))


_DURATIONS = {
    FaultKind.FREEZE: (0.2, 4.0),
    FaultKind.LOSE_ONE_PATH: (0.5, 4.0),
    FaultKind.LOSE_ALL_PATHS: (0.5, 4.0),
    FaultKind.TARGET_FREEZE: (0.1, 2.5),
    FaultKind.BMC_MUTE: (1.0, 6.0),
    FaultKind.BMC_UNKNOWN: (1.0, 6.0),
    FaultKind.HANDLER_KILLED: (0.02, 0.4),
}


def _other(node: str) -> str:
    return NODES[1 - NODES.index(node)]


def draw_schedule(seed: int) -> Schedule:
    """The schedule of `seed`: 2-6 faults of any kind, sorted by time; each hits the seed's
    victim node with probability VICTIM_SHARE, else the other node."""
    rng = random.Random(seed)
    victim = rng.choice(NODES)  # most faults hit one node, so that a survivor is often left
    faults = []
    for _ in range(rng.randint(2, 6)):
        kind = rng.choice(list(FaultKind))
        low, high = _DURATIONS.get(kind, (0.0, 0.0))
        target = victim if rng.random() < VICTIM_SHARE else _other(victim)
        if kind in _ARMING:  # these name the fencer: its peer is the one that crashes
            target = _other(target)
        faults.append(Fault(round(rng.uniform(0.3, HORIZON - 1.0), 3), kind, target,
                            round(rng.uniform(low, high), 3)))
    return Schedule(seed, tuple(sorted(faults, key=lambda f: (f.at, f.kind.value, f.node))))


class LivenessCause(str, Enum):
    EVERY_NODE_DOWN = "every node is down"
    FENCE_NOT_PROVEN = "the survivor could not prove its fence"
    NOT_STARTED = "fenced, but the guest was not started"


@dataclass
class RunResult:
    schedule: Schedule
    violations: list[str] = field(default_factory=list)
    false_claims: list[str] = field(default_factory=list)
    unchecked_claims: int = 0  # claims no observer path could check (target unreachable)
    liveness: LivenessCause | None = None
    liveness_detail: str = ""
    recovery: float | None = None  # link lost -> a takeover has every guest running again
    fence_exits: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # faults that found nothing to act on
    timeline: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations and not self.false_claims

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schedule"] = self.schedule.to_json()
        data["liveness"] = self.liveness.value if self.liveness else None
        return data


class _DrbdSide:
    """DRBD's reaction to a lost peer, on each node: the fence-peer handler once per lost
    link, then the takeover of the peer's guests when it proved the fence."""

    def __init__(self, lab: ScenarioLab, result: RunResult) -> None:
        self.lab = lab
        self.result = result
        self.broken = False  # the replication link is gone for good in this run
        self.frozen_since: dict[str, float] = {}
        self.called: set[str] = set()  # nodes whose handler ran for the lost link
        self.armed: dict[str, list[Fault]] = {node: [] for node in NODES}
        self.proven: dict[str, bool] = {}  # fencer -> its last call proved the fence
        self.threads: list[threading.Thread] = []
        self.disrupted: float | None = None  # when the link was first lost
        self.served_again: float | None = None  # when a takeover last had every guest running
        self.lock = threading.Lock()  # one libvirt/holder action at a time

    def up(self, node: str) -> bool:
        return self.lab.nodes[node].down is None and node not in self.frozen_since

    def tick(self, now: float) -> None:
        """Notice lost peers and call the handler on each node that lost its peer."""
        self.lab.poll_machines()
        for node in NODES:
            peer_gone = self.lab.nodes[_other(node)].down is not None
            peer_silent = now - self.frozen_since.get(_other(node), now) > PING_TIMEOUT
            if peer_gone or peer_silent:
                self.broken = True
        if not self.broken:
            return
        if self.disrupted is None:
            self.disrupted = now
        for node in NODES:
            if node not in self.called and self.up(node):
                self.called.add(node)
                self.spawn(node)

    def spawn(self, fencer: str) -> None:
        thread = threading.Thread(target=self.fence, args=(fencer,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def fence(self, fencer: str) -> None:
        victim = _other(fencer)
        armed = self.armed[fencer]
        mode = armed.pop(0) if armed else None
        if mode is not None and mode.kind is FaultKind.HANDLER_KILLED:
            self.lab.drbd_fence_peer(fencer, victim, kill_after=mode.duration)
        if mode is not None and mode.kind is FaultKind.HANDLER_STORM:
            records = self._storm(fencer, victim)
        else:
            records = [self.lab.drbd_fence_peer(fencer, victim)]
        for record in records:
            self.result.fence_exits.append(record.exit_code)
            if record.fenced:
                self._check_claim(record)
        proven = [record for record in records if record.fenced]
        self.proven[fencer] = bool(proven)
        if proven and self.lab.nodes[fencer].down is None:
            with self.lock:
                takeover = self.lab.take_over(fencer, victim, proven[-1])
            if takeover.all_running:
                self.served_again = time.monotonic()

    def _storm(self, fencer: str, victim: str) -> list[FenceRecord]:
        records: list[FenceRecord] = []
        calls = [threading.Thread(target=lambda: records.append(
            self.lab.drbd_fence_peer(fencer, victim))) for _ in range(STORM)]
        for call in calls:
            call.start()
        for call in calls:
            call.join()
        return records

    def _check_claim(self, record: FenceRecord) -> None:
        """An exit 4 must be followed by the victim's key gone (read by an independent
        initiator); an exit 7 by the victim's BMC reading off."""
        claim = f"{record.fencer} exit {record.exit_code} for {record.victim}"
        if record.exit_code == POWERED_OFF:
            bmc = self.lab.nodes[record.victim].bmc
            if bmc is None or bmc.state().power != "off":
                self.result.false_claims.append(f"{claim}: the BMC does not read off")
            return
        registered = self.lab.registered_nodes()
        for lun, nodes in sorted(registered.items()):
            if nodes is None:
                self.result.unchecked_claims += 1
            elif record.victim in nodes:
                self.result.false_claims.append(f"{claim}: its key is still on {lun}")

    def retry_unproven(self) -> None:
        """DRBD stays frozen after a failed handler until asked again: ask once more, on
        every live node whose peer is gone or cut off and whose handler proved nothing."""
        for fencer in NODES:
            if self.broken and self.up(fencer) and not self.proven.get(fencer, False):
                self.lab.note(f"DRBD on {fencer}: asked again after the faults healed")
                self.spawn(fencer)

    def join(self, within: float) -> None:
        deadline = time.monotonic() + within
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Nemesis:
    """Applies a schedule's faults to a running lab, and heals them."""

    def __init__(self, lab: ScenarioLab, side: _DrbdSide, result: RunResult) -> None:
        self.lab = lab
        self.side = side
        self.result = result
        self.heals: list[tuple[float, Callable[[], None]]] = []
        self.lost: set[str] = set()  # portals not listening now
        self.target_frozen = 0  # target freezes in force (tgtd runs again when none is)

    def apply(self, fault: Fault, now: float) -> None:
        node = self.lab.nodes[fault.node]
        self.lab.note(f"nemesis: {fault.kind.value} on {fault.node}"
                      + (f" for {fault.duration:.2f}s" if fault.duration else ""))
        if fault.kind is FaultKind.TARGET_FREEZE:
            self.lab.tgtd.freeze()
            self.target_frozen += 1
            self._heal_after(now + fault.duration, self._thaw_target)
            return
        if fault.kind in _ARMING:  # the peer crashes, and this node's handler is disturbed
            self.side.armed[fault.node].append(fault)
            peer = _other(fault.node)
            if self.lab.nodes[peer].down is None and peer not in self.side.frozen_since:
                self.lab.crash(peer)
            return
        if fault.kind in (FaultKind.BMC_MUTE, FaultKind.BMC_UNKNOWN):  # the BMC outlives its host
            self._bmc_fault(fault, now)
            return
        if node.down is not None or fault.node in self.side.frozen_since:
            self.result.skipped.append(f"{fault.kind.value} on {fault.node}: node not running")
            return
        if fault.kind is FaultKind.CRASH:
            self.lab.crash(fault.node)
        elif fault.kind is FaultKind.FREEZE:
            self.lab.freeze(fault.node)
            self.side.frozen_since[fault.node] = now
            self._heal_after(now + fault.duration, lambda: self._thaw(fault.node))
        elif fault.kind is FaultKind.LINK_LOSS:
            self.side.broken = True
        elif fault.kind in (FaultKind.LOSE_ONE_PATH, FaultKind.LOSE_ALL_PATHS):
            if self.target_frozen:  # tgtadm talks to the frozen tgtd: it would hang
                self.result.skipped.append(f"{fault.kind.value} on {fault.node}: the target "
                                           "is frozen")
                return
            listening = [portal for portal in node.portals if portal not in self.lost]
            portals = listening[:1] if fault.kind is FaultKind.LOSE_ONE_PATH else listening
            if not portals:
                self.result.skipped.append(f"{fault.kind.value} on {fault.node}: no path left")
                return
            self.lost.update(portals)
            self.lab.lose_paths(fault.node, portals)
            self._heal_after(now + fault.duration, lambda: self._restore(fault.node, portals))
        elif fault.kind is FaultKind.SERVICE_KILLED:
            assert node.service is not None
            node.service.kill()
        elif fault.kind is FaultKind.WRONG_NODE_START:
            self._wrong_node_start(fault.node)

    def _bmc_fault(self, fault: Fault, now: float) -> None:
        bmc = self.lab.nodes[fault.node].bmc
        if bmc is None:
            self.result.skipped.append(f"{fault.kind.value} on {fault.node}: no BMC")
            return
        normal = bmc.behaviour
        bmc.set_behaviour(BmcBehaviour(mute=True) if fault.kind is FaultKind.BMC_MUTE
                          else BmcBehaviour(status_error=0xFF))
        self._heal_after(now + fault.duration, lambda: bmc.set_behaviour(normal))

    def _restore(self, node: str, portals: list[str]) -> None:
        if self.target_frozen:  # again once the target runs
            self._heal_after(time.monotonic() + TICK, lambda: self._restore(node, portals))
            return
        self.lab.restore_paths(node, portals)
        self.lost.difference_update(portals)

    def _thaw_target(self) -> None:
        self.target_frozen -= 1
        if not self.target_frozen:
            self.lab.tgtd.thaw()

    def _thaw(self, node: str) -> None:
        if self.lab.nodes[node].down is None:  # else: reset by its watchdog while frozen
            self.lab.thaw(node)
        self.side.frozen_since.pop(node, None)

    def _wrong_node_start(self, node: str) -> None:
        """Start a guest that runs on the peer here: refused while its owner lives."""
        peer = _other(node)
        running = self.lab.running_guests()
        candidates = [g for g, nodes in sorted(running.items()) if nodes == [peer]]
        if not candidates or not self.side.up(peer) or self.lab.nodes[peer].down is not None:
            self.result.skipped.append(f"wrong-node-start on {node}: no guest runs on {peer}")
            return
        with self.side.lock:
            try:
                self.lab.start_guest(candidates[0], node)
            except RuntimeError as refused:
                self.lab.note(f"nemesis: refused as it must be: {refused}")
                return
        if self.lab.nodes[peer].down is None:
            self.result.violations.append(f"{candidates[0]} started on {node} while it ran "
                                          f"on {peer}")

    def _heal_after(self, when: float, action: Callable[[], None]) -> None:
        self.heals.append((when, action))

    def heal_due(self, now: float) -> None:
        due = [(when, action) for when, action in self.heals if when <= now]
        self.heals = [(when, action) for when, action in self.heals if when > now]
        for _, action in sorted(due, key=lambda item: item[0]):
            action()

    def heal_all(self) -> None:
        while self.heals:  # a path restored during a target freeze waits for its thaw
            self.heal_due(float("inf"))


def run_schedule(schedule: Schedule, workdir: Path,
                 log: Callable[[str], None] | None = None) -> RunResult:
    """Run one schedule on a fresh lab and judge it."""
    result = RunResult(schedule)
    began = time.monotonic()
    lab = ScenarioLab(workdir, guests=GUESTS, log=log)
    try:
        lab.start()
        _drive(lab, schedule, result)
    finally:
        result.timeline = [f"[{event.at:6.2f}s] {event.text}" for event in lab.events]
        lab.stop()
    result.seconds = time.monotonic() - began
    return result


def _drive(lab: ScenarioLab, schedule: Schedule, result: RunResult) -> None:
    side = _DrbdSide(lab, result)
    nemesis = _Nemesis(lab, side, result)
    pending = list(schedule.faults)
    start = time.monotonic()
    while (now := time.monotonic()) - start < HORIZON:
        while pending and pending[0].at <= now - start:
            nemesis.apply(pending.pop(0), now)
        nemesis.heal_due(now)
        side.tick(now)
        time.sleep(TICK)
    nemesis.heal_all()  # whatever is still broken heals at the end of the run
    lab.note("nemesis: every fault healed")
    side.join(within=120)
    side.retry_unproven()
    side.join(within=120)
    settle_until = time.monotonic() + t_safe(lab.config(NODES[0]).watchdog) + 1.0
    while time.monotonic() < settle_until:
        lab.poll_machines()
        time.sleep(TICK)
    if side.disrupted is not None and side.served_again is not None:
        result.recovery = side.served_again - side.disrupted
    _judge(lab, side, result)


def _judge(lab: ScenarioLab, side: _DrbdSide, result: RunResult) -> None:
    report = lab.check_invariants()
    result.violations += [f"{v.lun}: {v.stamp} {v.reason}" for v in report.violations]
    result.violations += [f"key of {node} back in its fenced boot" for node in report.keys_back]
    result.violations += [f"{guest} runs on {', '.join(nodes)}"
                          for guest, nodes in report.guests_running.items() if len(nodes) > 1]
    unplaced = [guest for guest, nodes in report.guests_running.items() if not nodes]
    if not unplaced:
        return
    down = {name: node.down for name, node in lab.nodes.items() if node.down is not None}
    if len(down) == len(lab.nodes):
        result.liveness = LivenessCause.EVERY_NODE_DOWN
        result.liveness_detail = "; ".join(f"{name}: {why}" for name, why in sorted(down.items()))
    elif not any(side.proven.values()):
        result.liveness = LivenessCause.FENCE_NOT_PROVEN
        result.liveness_detail = f"handler exits {result.fence_exits}"
    else:
        result.liveness = LivenessCause.NOT_STARTED
        result.liveness_detail = f"not running: {', '.join(sorted(unplaced))}"


# -- many schedules ------------------------------------------------------------------------

def summarize(results: list[RunResult]) -> dict[str, Any]:
    """The nemesis report: what ran, and what broke."""
    kinds = Counter(fault.kind.value for r in results for fault in r.schedule.faults)
    liveness = Counter(r.liveness.value for r in results if r.liveness is not None)
    recoveries = [r.recovery for r in results if r.recovery is not None]
    slowest = max(results, key=lambda r: r.recovery or 0.0, default=None)
    return {
        "schedules": len(results),
        "faults_by_kind": dict(sorted(kinds.items())),
        "violations": sum(len(r.violations) for r in results),
        "false_claims": sum(len(r.false_claims) for r in results),
        "unchecked_claims": sum(r.unchecked_claims for r in results),
        "fence_calls": sum(len(r.fence_exits) for r in results),
        "fence_exits": dict(sorted(Counter(str(e) for r in results
                                           for e in r.fence_exits).items())),
        "liveness_failures": dict(sorted(liveness.items())),
        "slowest_recovery": ({"seconds": round(slowest.recovery, 2),
                              "seed": slowest.schedule.seed}
                             if slowest is not None and slowest.recovery is not None else None),
        "median_recovery": (round(sorted(recoveries)[len(recoveries) // 2], 2)
                            if recoveries else None),
        "failed_seeds": [r.schedule.seed for r in results if not r.ok],
        "seconds": round(sum(r.seconds for r in results), 1),
    }


def render(summary: dict[str, Any]) -> str:
    """The report as the README shows it."""
    lines = [f"schedules: {summary['schedules']} ({summary['seconds']} s)",
             f"violations of the one rule: {summary['violations']}",
             f"false claims: {summary['false_claims']} "
             f"(claims no observer path could check: {summary['unchecked_claims']})",
             f"fence-peer calls: {summary['fence_calls']}, exits {summary['fence_exits']}",
             "faults: " + ", ".join(f"{k} {v}" for k, v in summary["faults_by_kind"].items()),
             "liveness failures: " + (", ".join(f"{k}: {v}" for k, v in
                                                summary["liveness_failures"].items()) or "none"),
             f"recovery (link lost -> the survivor runs every guest): median "
             f"{summary['median_recovery']} s, slowest {summary['slowest_recovery']}",
             f"failed seeds: {summary['failed_seeds'] or 'none'}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run seeded schedules; exit 0 when none broke the one rule or claimed falsely, 1
    otherwise, 2 on bad arguments."""
    parser = argparse.ArgumentParser(prog="./run nemesis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=200, help="how many (default 200)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--replay", type=Path, help="a saved failing schedule to run again")
    parser.add_argument("--out", type=Path, default=Path("nemesis-results"),
                        help="report.json, report.md, failures/ and liveness/ (the runs that "
                             "broke a rule, and those with a liveness failure; default "
                             "nemesis-results)")
    parser.add_argument("--verbose", action="store_true", help="print every timeline")
    args = parser.parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: the running lab is stopped by PID on the way out.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    if args.replay is not None:
        try:
            schedules = [Schedule.from_json(json.loads(args.replay.read_text())["schedule"])]
        except (OSError, ValueError, KeyError, TypeError) as err:
            parser.error(f"--replay {args.replay}: not a saved schedule ({err})")
    elif args.schedules < 1:
        parser.error("--schedules must be at least 1")
    else:
        schedules = [draw_schedule(seed) for seed in
                     range(args.first_seed, args.first_seed + args.schedules)]
    for folder in ("failures", "liveness"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
    results = []
    for schedule in schedules:
        workdir = Path(tempfile.mkdtemp(prefix=f"nemesis-{schedule.seed}-"))
        try:
            result = run_schedule(schedule, workdir / "lab",
                                  log=print if args.verbose else None)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        results.append(result)
        faults = " ".join(f"{f.kind.value}@{f.node}" for f in schedule.faults)
        verdict = "ok" if result.ok else "FAILED"
        print(f"seed {schedule.seed:4d} {verdict:6s} {result.seconds:5.1f}s "
              f"exits {result.fence_exits} liveness "
              f"{result.liveness.value if result.liveness else 'ok'}: {faults}", flush=True)
        if not result.ok or result.liveness is not None:
            folder = "failures" if not result.ok else "liveness"
            saved = args.out / folder / f"seed-{schedule.seed}.json"
            saved.write_text(json.dumps(result.to_json(), indent=2) + "\n")
            for line in result.violations + result.false_claims:
                print(f"    {line}")
        summary = summarize(results)  # after each schedule: a stopped run keeps its report
        (args.out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "report.md").write_text(render(summary) + "\n")
    print(render(summary))
    return 0 if not summary["failed_seeds"] else 1


if __name__ == "__main__":
    sys.exit(main())
