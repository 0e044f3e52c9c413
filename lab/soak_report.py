"""The soak's report: what it sampled, judged (lab/soak_judge.py), as JSON and as markdown."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stonewall.lab.soak_judge import (LogSample, MemoryFigures, Operation, Sample, Verdict,
                                      judge_deadlines, judge_event_log, judge_fds,
                                      judge_memory, percentile)

if TYPE_CHECKING:  # the driver imports this module
    from stonewall.lab.scenario import InvariantReport
    from stonewall.lab.soak import Instance, Soak


@dataclass
class ProcessFigures:
    """One process instance, or (`instances` > 1) the successive instances of one role,
    judged on each instance's first sample (growth and descriptors; the trend is shown)."""

    name: str
    pids: list[int]
    first_cycle: int
    last_cycle: int
    samples: list[Sample]
    instances: int = 1

    def memory(self) -> MemoryFigures:
        return judge_memory(self.samples, judge_trend=self.instances == 1)

    def to_json(self) -> dict[str, Any]:
        memory = self.memory()
        fds = judge_fds(self.samples)
        return {"name": self.name, "instances": self.instances,
                "pid": self.pids[0] if self.instances == 1 else None,
                "cycles": [self.first_cycle, self.last_cycle],
                "rss_kib": {"start": memory.start_kib, "after_warmup": memory.after_warmup_kib,
                            "end": memory.end_kib, "growth": memory.growth_kib,
                            "slope_per_cycle": (None if memory.slope_kib_per_cycle is None
                                                else round(memory.slope_kib_per_cycle, 3))},
                "fds": {"start": self.samples[0].fds, "end": self.samples[-1].fds},
                "memory": memory.verdict.__dict__, "descriptors": fds.__dict__,
                "samples": [[s.cycle, s.rss_kib, s.fds] for s in self.samples]}

    @property
    def verdicts(self) -> list[Verdict]:
        return [self.memory().verdict, judge_fds(self.samples)]


def group_processes(instances: list["Instance"]) -> list[ProcessFigures]:
    """Each instance that lived from the lab's start to the last cycle on its own; the
    instances of a role that restarted as one series of their first samples."""
    by_name: dict[str, list["Instance"]] = defaultdict(list)
    for instance in instances:
        by_name[instance.name].append(instance)
    figures = []
    for name, found in sorted(by_name.items()):
        if len(found) == 1:
            only = found[0]
            figures.append(ProcessFigures(name, [only.pid], only.first_cycle,
                                          only.samples[-1].cycle, list(only.samples)))
            continue
        found.sort(key=lambda i: i.first_cycle)
        figures.append(ProcessFigures(f"{name} (successive instances)",
                                      [i.pid for i in found], found[0].first_cycle,
                                      found[-1].samples[-1].cycle,
                                      [i.samples[0] for i in found], instances=len(found)))
    return figures


@dataclass
class SoakReport:
    duration: float
    luns: int
    seed: int
    layout: dict[str, int]
    holder_env: dict[str, str] = field(default_factory=dict)  # diagnostics, if any
    seconds: float = 0.0
    cycles: int = 0
    failure: str | None = None
    operations: list[Operation] = field(default_factory=list)
    processes: list[ProcessFigures] = field(default_factory=list)
    event_logs: dict[str, list[LogSample]] = field(default_factory=dict)
    invariants: "InvariantReport | None" = None
    tracemalloc: list[dict[str, Any]] | None = None  # --tracemalloc: what grew in the holder
    malloc_trim: dict[str, int] | None = None  # --malloc-trim: the holder's free malloc memory
    final: bool = False  # judged at the end (or at a failure); else an interim report
    fallbacks: list[str] = field(default_factory=list)  # power fences instead of storage

    def fill(self, soak: "Soak", seconds: float, failure: str | None,
             invariants: "InvariantReport | None") -> "SoakReport":
        self.seconds, self.cycles, self.failure = seconds, soak.cycles, failure
        self.operations = list(soak.operations)
        self.fallbacks = list(soak.fallbacks)
        self.processes = group_processes(list(soak.instances.values()))
        self.event_logs = {node: list(samples) for node, samples in soak.event_logs.items()}
        self.invariants = invariants
        self.final = failure is not None or invariants is not None
        return self

    # -- verdicts -------------------------------------------------------------------------
    @property
    def deadlines(self) -> Verdict:
        return judge_deadlines(self.operations)

    def log_verdicts(self) -> dict[str, Verdict]:
        return {node: judge_event_log(samples) for node, samples in self.event_logs.items()}

    @property
    def passed(self) -> bool:
        return (self.failure is None and self.cycles > 0 and self.invariants is not None
                and self.invariants.holds and self.deadlines.ok
                and all(v.ok for p in self.processes for v in p.verdicts)
                and all(v.ok for v in self.log_verdicts().values()))

    # -- figures --------------------------------------------------------------------------
    def operation_figures(self) -> list[dict[str, Any]]:
        by_kind: dict[str, list[Operation]] = defaultdict(list)
        for operation in self.operations:
            by_kind[operation.kind].append(operation)
        rows = []
        for kind, found in by_kind.items():
            seconds = [op.seconds for op in found]
            rows.append({"kind": kind, "count": len(found),
                         "p50": round(percentile(seconds, 0.5), 3),
                         "p99": round(percentile(seconds, 0.99), 3),
                         "max": round(max(seconds), 3), "deadline": found[0].deadline,
                         "late": sum(not op.in_time for op in found),
                         "wrong": sum(not op.ok for op in found)})
        return rows

    def to_json(self) -> dict[str, Any]:
        logs = {}
        for node, samples in self.event_logs.items():
            last = samples[-1]
            logs[node] = {"bytes": last.size, "records": last.records,
                          "bytes_per_record": (round(last.size / last.records, 1)
                                               if last.records else None),
                          "largest_record": last.largest_record,
                          "verdict": self.log_verdicts()[node].__dict__,
                          "samples": [[s.cycle, s.size, s.records] for s in samples]}
        invariants = None if self.invariants is None else {
            "holds": self.invariants.holds, "stamps_read": self.invariants.stamps_read,
            "violations": len(self.invariants.violations),
            "keys_back": self.invariants.keys_back,
            "guests_running": self.invariants.guests_running,
            "describe": self.invariants.describe()}
        return {"passed": self.passed, "final": self.final, "failure": self.failure,
                "seed": self.seed,
                "duration_asked": self.duration, "seconds": round(self.seconds, 1),
                "cycles": self.cycles, "luns": self.luns, "paths_per_lun": 2,
                "layout": self.layout, "holder_env": self.holder_env,
                "power_fallbacks": self.fallbacks,
                "deadlines": self.deadlines.__dict__,
                "operations": self.operation_figures(),
                "processes": [p.to_json() for p in self.processes],
                "event_logs": logs, "invariants": invariants,
                **({"tracemalloc": self.tracemalloc} if self.tracemalloc is not None else {}),
                **({"malloc_trim": self.malloc_trim} if self.malloc_trim is not None else {})}


def render_markdown(report: SoakReport) -> str:
    """The short summary docs/soak.md quotes."""
    data = report.to_json()
    layout = ", ".join(f"{count} {role}" for role, count in report.layout.items())
    verdict = ("PASSED" if report.passed else "FAILED") if report.final else "running"
    lines = [f"# Soak: {verdict}", "",
             f"{data['cycles']} cycles in {data['seconds']} s, {report.luns} LUNs x 2 paths "
             f"({layout}), seed {report.seed}."
             + (f" Fencer's service environment: {report.holder_env}."
                if report.holder_env else ""), ""]
    if report.failure:
        lines += [f"Failure: {report.failure}", ""]
    lines += [f"Power fallbacks (exit 7 instead of 4): {len(report.fallbacks)}", ""]
    lines += [f"- {fallback}" for fallback in report.fallbacks]
    lines += [""] if report.fallbacks else []
    lines += ["| operation | count | p50 s | p99 s | max s | deadline s | late | wrong |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['kind']} | {r['count']} | {r['p50']} | {r['p99']} | {r['max']} | "
              f"{r['deadline']:g} | {r['late']} | {r['wrong']} |"
              for r in data["operations"]]
    lines += ["", "| process | instances | RSS start / after warm-up / end MiB | "
              "slope KiB/cycle | fds start / end | memory | descriptors |",
              "|---|---:|---|---:|---|---|---|"]
    for p in data["processes"]:
        rss = p["rss_kib"]
        mib = " / ".join("-" if v is None else f"{v / 1024:.1f}"
                         for v in (rss["start"], rss["after_warmup"], rss["end"]))
        slope = "-" if rss["slope_per_cycle"] is None else f"{rss['slope_per_cycle']:.2f}"
        lines.append(f"| {p['name']} | {p['instances']} | {mib} | {slope} | "
                     f"{p['fds']['start']} / {p['fds']['end']} | {p['memory']['reason']} | "
                     f"{p['descriptors']['reason']} |")
    lines += ["", "| event log | bytes | records | bytes/record | verdict |",
              "|---|---:|---:|---:|---|"]
    lines += [f"| {node} | {log['bytes']} | {log['records']} | {log['bytes_per_record']} | "
              f"{log['verdict']['reason']} |" for node, log in data["event_logs"].items()]
    lines += ["", f"Deadlines: {data['deadlines']['reason']}.", ""]
    if report.malloc_trim is not None:
        trim = report.malloc_trim
        lines += [f"Fencer's holder at the end: RSS {trim['rss_before_kib'] / 1024:.1f} MiB, of "
                  f"which glibc held {trim['malloc_free_before_kib'] / 1024:.1f} MiB free; after "
                  f"malloc_trim(0) RSS {trim['rss_after_kib'] / 1024:.1f} MiB.", ""]
    if data["invariants"] is not None:
        lines += ["Invariants:", "", "```", data["invariants"]["describe"], "```", ""]
    else:
        lines += ["Invariants: not checked (an interim report, or the lab did not start).", ""]
    return "\n".join(lines)
