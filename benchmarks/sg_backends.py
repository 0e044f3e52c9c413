"""The sg transport's two backends side by side: `sg_persist` (one process per PR command)
against in-process SG_IO (storage/scsi/sgio.py), on the same I_T nexuses, through the
fakesg shim and the nexus stand-in against tgtd (LUNs x 2 paths for each of two nodes).

Each measured operation is stonewall's own code (storage/ownership.py) on a PathSet of the
backend's devices, in one long-lived process started with the shim (SG_IO reaches the shim
only in a process it was preloaded into):
- verify: READ KEYS on every path of every LUN (what a watchdog check and a fence's
  verification cost);
- fence: preempt the victim's key on every LUN (arbiter first) and verify it gone.
The victim re-registers between runs (not timed).

  python -m stonewall.benchmarks.sg_backends [--sizes 64,512] [--runs 5]
  (`./run bench --sg-backends` runs it.) Results: benchmarks/results/sg_backends.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from stonewall.benchmarks.lab import Array, raise_open_files_limit
from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import Lun, LunRole, Transport
from stonewall.lab.nexus import FakeDevice, NexusStandIn
from stonewall.storage import ownership
from stonewall.storage.paths import LunPath, PathSet
from stonewall.storage.scsi.device import PrDevice
from stonewall.storage.scsi.sg import SgPersistDevice, SgRunner
from stonewall.storage.scsi.sgio import SgioDevice

RESULTS = Path(__file__).resolve().parent / "results"
NODES = {"node-a": 0x5354574200000001, "node-b": 0x5354574200000002}  # victim, fencer
BACKENDS = ("sg_persist", "sgio")
STEP_SECONDS = 600.0


# -- the child: runs inside the shim -----------------------------------------------------
def _device(backend: str, path: str, runner: SgRunner) -> PrDevice:
    return SgioDevice(path) if backend == "sgio" else SgPersistDevice(path, runner)


def _paths(spec: dict[str, Any], node: str, backend: str, runner: SgRunner,
           luns: list[Lun]) -> PathSet:
    return {lun.name: [LunPath(lun, path, _device(backend, path, runner))
                       for path in spec["paths"][node][lun.name]] for lun in luns}


def _must(report: Any, what: str) -> None:
    ok = getattr(report, "ok", None)
    proven = getattr(report, "proven", None)
    if ok is False or proven is False:
        raise RuntimeError(f"{what} did not succeed: {report}")


def measure_backend(spec: dict[str, Any], backend: str, runs: int) -> dict[str, Any]:
    runner = SgRunner()
    luns = [Lun(name, LunRole.ARBITER if index == 0 else LunRole.SHARED, Transport.SG,
                alias=name) for index, name in enumerate(spec["luns"])]
    victim, fencer = _paths(spec, "node-a", backend, runner, luns), \
        _paths(spec, "node-b", backend, runner, luns)
    key_a, key_b = NODES["node-a"], NODES["node-b"]

    def deadline() -> Deadline:
        return Deadline.after(STEP_SECONDS)

    started = time.perf_counter()
    _must(ownership.register_paths(fencer, key_b, deadline(), SYSTEM_CLOCK), "join node-b")
    join = time.perf_counter() - started
    verify, fence = [], []
    for _ in range(runs):
        _must(ownership.register_paths(victim, key_a, deadline(), SYSTEM_CLOCK), "join node-a")
        started = time.perf_counter()
        _must(ownership.verify(fencer, key_a, True, deadline(), SYSTEM_CLOCK), "verify")
        verify.append(time.perf_counter() - started)
        started = time.perf_counter()
        preempt = ownership.preempt_peer(fencer, luns, key_b, key_a, deadline(), SYSTEM_CLOCK,
                                         ownership.AbortSupport())
        if preempt.lost_race or not preempt.ok:
            raise RuntimeError(f"preempt failed: {preempt}")
        _must(ownership.verify(fencer, key_a, False, deadline(), SYSTEM_CLOCK), "fence verify")
        fence.append(time.perf_counter() - started)
    for lun_paths in [*victim.values(), *fencer.values()]:
        for path in lun_paths:
            path.close()
    return {"join_s": join, "verify_s": verify, "fence_s": fence}


def child_main(spec_path: str, runs: int) -> int:
    spec = json.loads(Path(spec_path).read_text())
    print(json.dumps({backend: measure_backend(spec, backend, runs) for backend in BACKENDS}))
    return 0


# -- the parent: builds the array and the nexuses ----------------------------------------
def run_size(workdir: Path, lun_count: int, runs: int) -> dict[str, Any]:
    array = Array(workdir / "array", lun_count).start()
    try:
        devices, paths = [], {node: {} for node in NODES}
        for lun in array.luns:
            for node in NODES:
                initiator = f"iqn.2026-12.lab.stonewall:bench-{node}"
                for index, portal in enumerate(array.tgtd.portals[:2]):
                    path = str(workdir / "dev" / f"{node}-{lun.name}-p{index}")
                    devices.append(FakeDevice(path, portal, lun.target, lun.lun, initiator))
                    paths[node].setdefault(lun.name, []).append(path)
        nexus = NexusStandIn(workdir / "nexus", devices).start(Deadline.after(STEP_SECONDS))
        try:
            spec_path = workdir / "spec.json"
            spec_path.write_text(json.dumps({"luns": [lun.name for lun in array.luns],
                                             "paths": paths}))
            result = subprocess.run(
                [sys.executable, "-m", "stonewall.benchmarks.sg_backends", "--child",
                 str(spec_path), "--runs", str(runs)], capture_output=True, text=True,
                env={**os.environ, **nexus.environment}, timeout=STEP_SECONDS * 4, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"benchmark child failed:\n{result.stderr[-3000:]}")
            return json.loads(result.stdout)
        finally:
            nexus.stop()
    finally:
        array.stop()


def kernel_tier(workdir: Path, runs: int) -> list[dict[str, Any]]:
    """Per-command cost of each backend on a real kernel: a kernel-tier guest (QEMU TCG)
    whose path devices /dev/sda and /dev/sdb reach tgtd, timed inside the guest by its
    agent (lab/kernel/agent.py) around each PrDevice call."""
    from stonewall.lab.kernel.cluster import KernelCluster, node_key
    from stonewall.lab.kernel.guest import GuestImage

    rows = []
    with KernelCluster(workdir, GuestImage.find()) as cluster:
        agent = cluster.agent("node-a")
        key = node_key("node-a")
        for backend in BACKENDS:
            for call, args, kwargs in (("register", [0, key], {"ignore_existing": True}),
                                       ("read_keys", [], {})):
                seconds = [agent.request("pr", 60, backend=backend, device=path, call=call,
                                         args=args, kwargs=kwargs, timeout=30)["seconds"]
                           for _ in range(runs) for path in ("/dev/sda", "/dev/sdb")]
                rows.append({"backend": backend, "command": call, "commands": len(seconds),
                             "median_ms": round(statistics.median(seconds) * 1000, 2),
                             "max_ms": round(max(seconds) * 1000, 2)})
    return rows


def kernel_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["", "## On the kernel tier (QEMU TCG guest, kernel path devices, tgtd)", "",
             "| backend | command | commands | median | max |", "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['command']} | {r['commands']} | {r['median_ms']} ms | "
              f"{r['max_ms']} ms |" for r in rows]
    return "\n".join(lines) + "\n"


def summary(size: int, measured: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for backend in BACKENDS:
        found = measured[backend]
        rows.append({"luns": size, "paths_per_lun": 2, "backend": backend,
                     "join_s": round(found["join_s"], 3),
                     "verify_median_s": round(statistics.median(found["verify_s"]), 3),
                     "fence_median_s": round(statistics.median(found["fence_s"]), 3),
                     "fence_max_s": round(max(found["fence_s"]), 3)})
    return rows


def markdown(rows: list[dict[str, Any]], note: str) -> str:
    lines = ["# sg transport: sg_persist vs in-process SG_IO (shim + nexus stand-in + tgtd)",
             "", note, "",
             "| LUNs x paths | backend | join (1 node) | verify (READ KEYS, all paths) median "
             "| fence (preempt + verify) median | fence max |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['luns']} x 2 | {row['backend']} | {row['join_s']:.3f} s | "
                     f"{row['verify_median_s']:.3f} s | {row['fence_median_s']:.3f} s | "
                     f"{row['fence_max_s']:.3f} s |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,512", help="LUN counts (64,512)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (5)")
    parser.add_argument("--kernel", action="store_true",
                        help="also measure both on the kernel tier (a QEMU guest; root)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, args.runs)
    raise_open_files_limit()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stonewall-sg-backends-") as tmp:
        for size in sorted({int(s) for s in args.sizes.split(",")}):
            print(f"sg backends: {size} LUNs x 2 paths x 2 nodes ...", file=sys.stderr,
                  flush=True)
            rows += summary(size, run_size(Path(tmp) / f"n{size}", size, args.runs))
            print(markdown(rows, ""), file=sys.stderr, flush=True)
        kernel_rows = kernel_tier(Path(tmp) / "kernel", 4 * args.runs) if args.kernel else []
    note = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
            f"{args.runs} runs per case; one process, stonewall's ownership code, "
            "blocking PR commands on 16 batch workers (storage/scsi/batch.py).")
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, note) + (kernel_markdown(kernel_rows) if kernel_rows else "")
    (args.out / "sg_backends.json").write_text(json.dumps(
        {"note": note, "rows": rows, "kernel_tier": kernel_rows}, indent=1))
    (args.out / "sg_backends.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
