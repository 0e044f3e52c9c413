"""The pause a live migration costs the guest: `stonewall vm migrate` against libvirt's own
live migration (through stonewall's hook), between two private libvirtd daemons on this
machine (tests/vm/migration_lab.py: tgtd, the nodes' holders, QEMU TCG).

    python -m stonewall.benchmarks.migration [--runs N] [--memory MIB]

For each migration the guest's pause is read from libvirt's lifecycle events, on connections
of this process: from the source's SUSPENDED/migrated (the switchover) to the destination's
RESUMED. libvirt's own downtime comes from the job statistics. "Added" is the pause minus
libvirt's downtime. Results go to benchmarks/results/migration.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import libvirt

from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.tests.vm.migration_lab import GUEST, MIGRATE_URI, MigrationLab, guest_xml, \
    migration_lab

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("stonewall vm migrate", "stonewall vm migrate --handoff-at finish",
         "libvirt migrate --live (hook)")
EVENT_WAIT = 10.0  # seconds for a lifecycle event to arrive after the call returned


class Events:
    """Lifecycle events of the guest on both daemons, with their arrival times."""

    def __init__(self, uris: dict[str, str]) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[float, str, int, int]] = []
        self.conns = []
        for node, uri in uris.items():
            conn = libvirt.openReadOnly(uri)
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                        self._on_event, node)
            self.conns.append(conn)

    def _on_event(self, _conn, dom, event: int, detail: int, node: str) -> None:
        if dom.name() == GUEST:
            with self.lock:
                self.seen.append((time.monotonic(), node, event, detail))

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()

    def first(self, node: str, event: int, detail: int | None) -> float:
        """When the first such event arrived (`detail` None: any detail)."""
        ends = time.monotonic() + EVENT_WAIT
        while time.monotonic() < ends:
            with self.lock:
                for at, where, what, how in self.seen:
                    if (where, what) == (node, event) and detail in (None, how):
                        return at
            time.sleep(0.01)
        raise RuntimeError(f"no event {event}/{detail} from {node}")

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def guest_pause(events: Events, source: str, destination: str) -> float:
    """Seconds from the source's switchover to the destination's CPUs running (RESUMED:
    "migrated" after libvirt's own migration, "unpaused" after `vm migrate`'s resume)."""
    stopped = events.first(source, libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                           libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
    return events.first(destination, libvirt.VIR_DOMAIN_EVENT_RESUMED, None) - stopped


def stonewall_run(mlab: MigrationLab, events: Events, source: str, destination: str,
                  handoff_at: str = "source-gone") -> dict[str, float]:
    events.clear()
    done = mlab.migrate(source, destination, "--handoff-at", handoff_at)
    report = json.loads(done.stdout)
    if report["outcome"] != "migrated":
        raise RuntimeError(f"vm migrate: {report}")
    pause = guest_pause(events, source, destination)
    steps = {s["step"]: s["at"] for s in report["steps"]}
    return {"pause_ms": 1000 * pause, "libvirt_downtime_ms": report["libvirt_downtime_ms"],
            "added_ms": 1000 * pause - report["libvirt_downtime_ms"],
            "handoff_ms": report["handoff_ms"],
            "migrate_call_s": steps["migrated"] - steps["permit held"]}


def stonewall_finish_run(mlab: MigrationLab, events: Events, source: str,
                         destination: str) -> dict[str, float]:
    return stonewall_run(mlab, events, source, destination, "finish")


def libvirt_run(mlab: MigrationLab, events: Events, source: str,
                destination: str) -> dict[str, float]:
    events.clear()
    began = time.monotonic()
    migrated = mlab.conns[source]._lookup(GUEST).migrate(
        mlab.conns[destination]._conn, libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE, None,
        MIGRATE_URI, 0)
    call = time.monotonic() - began
    downtime = float(migrated.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)["downtime"])
    pause = guest_pause(events, source, destination)
    time.sleep(2)  # the source's `release end` hook unregisters it after the call returned
    return {"pause_ms": 1000 * pause, "libvirt_downtime_ms": downtime,
            "added_ms": 1000 * pause - downtime, "migrate_call_s": call}


def summarize(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {key: {"median": round(statistics.median(r[key] for r in runs), 1),
                  "min": round(min(r[key] for r in runs), 1),
                  "max": round(max(r[key] for r in runs), 1)}
            for key in runs[0] if all(r.get(key) is not None for r in runs)}


CASES = tuple(zip(NAMES, (stonewall_run, stonewall_finish_run, libvirt_run)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6, help="migrations per case (alternating "
                                                            "directions; default %(default)s)")
    parser.add_argument("--memory", type=int, default=128, help="guest memory in MiB")
    args = parser.parse_args(argv)
    libvirt.virEventRegisterDefaultImpl()
    threading.Thread(target=lambda: [libvirt.virEventRunDefaultImpl() for _ in iter(int, 1)],
                     daemon=True).start()
    results: dict[str, object] = {"memory_mib": args.memory, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="stonewall-migration-bench-") as scratch:
        work = Path(scratch)
        tgtd = Tgtd(work / "tgtd", portal_count=2)
        tgtd.start()
        try:
            tgtd.add_lun(tgtd.add_target(ARRAY_IQN), 4)
            with migration_lab(tgtd, work) as mlab:
                mlab.conns["node-a"].define(guest_xml(args.memory))
                done = mlab.stonewall("node-a", "vm", "start", GUEST, "--uri",
                                      mlab.daemons["node-a"].uri)
                if done.returncode != 0:
                    raise RuntimeError(done.stderr)
                events = Events({n: d.uri for n, d in mlab.daemons.items()})
                try:
                    order = [("node-a", "node-b"), ("node-b", "node-a")]
                    libvirt_run(mlab, events, *order[0])  # warm both daemons' first Begin
                    libvirt_run(mlab, events, *order[1])
                    for name, run in CASES:
                        runs = [run(mlab, events, *order[i % 2]) for i in range(args.runs)]
                        results[name] = {"summary": summarize(runs), "runs": runs}
                        print(name, json.dumps(results[name]["summary"]), flush=True)
                finally:
                    events.close()
        finally:
            tgtd.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "migration.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "migration.md").write_text(render(results))
    print(render(results))
    return 0


def render(results: dict[str, object]) -> str:
    lines = [f"# Live migration pause ({results['memory_mib']} MiB TCG guest, "
             f"{results['runs']} runs per case, medians [min-max])", "",
             "| case | guest pause ms | libvirt downtime ms | added ms | handoff ms | "
             "migrate() s |", "|---|---|---|---|---|---|"]
    for name in NAMES:
        summary = results[name]["summary"]  # type: ignore[index]

        def cell(key: str) -> str:
            if key not in summary:
                return "-"
            s = summary[key]
            return f"{s['median']} [{s['min']}-{s['max']}]"
        lines.append(f"| {name} | {cell('pause_ms')} | {cell('libvirt_downtime_ms')} | "
                     f"{cell('added_ms')} | {cell('handoff_ms')} | {cell('migrate_call_s')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
