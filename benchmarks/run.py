"""`./run bench` (python -m stonewall.benchmarks.run): stonewall's fence, status and join at
scale, side by side with fence_scsi on the same LUNs, in one run. See docs/benchmarks.md.

Exit status: 0 every case ran or is unavailable here (targets met or missed are reported,
not judged here); 1 some case failed (its row says why); 2 the lab could not be built."""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from stonewall.benchmarks import cases, power, report
from stonewall.benchmarks.cases import CaseResult
from stonewall.benchmarks.fence_scsi import FenceScsiNode
from stonewall.benchmarks.lab import (
    DEFAULT_LUNS_PER_TARGET, Array, Nodes, raise_open_files_limit)
from stonewall.benchmarks.measure import BenchFailure
from stonewall.lab.nexus import NexusError
from stonewall.lab.processes import ProcessStartError
from stonewall.lab.tgtd import TgtdError

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "benchmarks" / "results"
PATHS_PER_LUN = 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./run bench", description="Benchmarks: stonewall and fence_scsi side by side.")
    parser.add_argument("--smoke", action="store_true",
                        help="CI smoke: 8 LUNs for every case, 2 runs each")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per case (10)")
    parser.add_argument("--fence-sizes", default="8,64,512",
                        help="LUN counts for the fence cases (8,64,512)")
    parser.add_argument("--status-luns", default="8,256",
                        help="LUN counts for the status cases (8,256)")
    parser.add_argument("--fence-scsi-per-path", action="store_true",
                        help="also run fence_scsi given every path device (the setup of "
                             "earlier runs), beside one map per LUN")
    parser.add_argument("--join-luns", type=int, default=512,
                        help="LUN count for the join and holder start-up cases (512)")
    parser.add_argument("--luns-per-target", type=int, default=DEFAULT_LUNS_PER_TARGET,
                        help=f"LUNs per tgtd target ({DEFAULT_LUNS_PER_TARGET})")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python whose stonewall the timed entry points run "
                             "(`./run bench` passes a normal install of the tree; default: "
                             "this one)")
    parser.add_argument("--note", default="",
                        help="a line stored with the results and shown above the table "
                             "(e.g. what differs from the committed tree)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory for bench.json, bench.md, bench.png "
                             "(benchmarks/results)")
    args = parser.parse_args(argv)
    try:
        args.fence_sizes = sorted({int(size) for size in args.fence_sizes.split(",")})
        args.status_luns = sorted({int(size) for size in args.status_luns.split(",")})
    except ValueError:
        parser.error("--fence-sizes and --status-luns: comma-separated LUN counts")
    if args.smoke:
        args.runs, args.fence_sizes, args.status_luns, args.join_luns = 2, [8], [8], 8
    sizes = [*args.fence_sizes, *args.status_luns, args.join_luns]
    if args.runs < 1 or min(sizes) < 1 or args.luns_per_target < 1:
        parser.error("runs, LUN counts and LUNs per target must be positive")
    return args


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_size(nodes: Nodes, workdir: Path, args: argparse.Namespace,
             progress: Callable[[CaseResult], None]) -> list[CaseResult]:
    """Every case that `args` asks for at this size."""
    size = nodes.count
    results: list[CaseResult] = []

    def add(found: CaseResult | list[CaseResult]) -> None:
        for result in found if isinstance(found, list) else [found]:
            results.append(result)
            progress(result)

    if size in args.fence_sizes:
        add(cases.stonewall_fence(nodes, workdir, args.runs, args.python))
    if size in args.status_luns:  # before fence_scsi's key is on the LUNs: it is foreign
        add(cases.stonewall_status(nodes, args.runs, args.python))
    if size in args.fence_sizes or size in args.status_luns:
        fence_scsi = FenceScsiNode(workdir / "fence_scsi", list(nodes.config.luns))
        layouts = [False, True] if args.fence_scsi_per_path else [False]
        try:
            fence_scsi.start()
            floors = fence_scsi.floors(args.runs, cases.STONEWALL_TIMEOUT)
            for per_path in layouts:
                if size in args.fence_sizes:
                    add(cases.fence_scsi_fence(nodes, fence_scsi, args.runs, floors, per_path))
                if size in args.status_luns:
                    add(cases.fence_scsi_status(nodes, fence_scsi, args.runs, floors,
                                                per_path))
            if size in args.fence_sizes:
                add(cases.fence_mpath(nodes, fence_scsi))
        except (BenchFailure, NexusError) as exc:
            add(CaseResult("fence" if size in args.fence_sizes else "status", "fence_scsi",
                           size, PATHS_PER_LUN, error=f"fence_scsi lab: {exc}"))
        finally:
            fence_scsi.stop()
    if size == args.join_luns:
        add(cases.holder_join(nodes, args.runs))
        add(cases.holder_start(nodes, args.runs))
    if size == min(args.fence_sizes):  # the power level does not depend on LUNs
        unavailable = power.power_available()
        if unavailable:
            add(CaseResult("power", "stonewall power off", 0, 0,
                           error=f"unavailable: {unavailable}"))
        else:
            add(power.power_cases(nodes, workdir, args.runs))
    return results


def run_all(args: argparse.Namespace, workdir: Path) -> list[CaseResult]:
    sizes = sorted({*args.fence_sizes, *args.status_luns, args.join_luns})
    array = Array(workdir, max(sizes), args.luns_per_target).start()
    say(f"tgtd pid {array.tgtd.pid}: {max(sizes)} LUNs on {array.targets} targets, "
        f"portals {', '.join(array.tgtd.portals)}")
    results: list[CaseResult] = []
    try:
        for size in sizes:
            try:
                nodes = Nodes(array, workdir / f"luns{size}", size).start()
            except BenchFailure as exc:
                failed = CaseResult("lab", "two joined holders", size, PATHS_PER_LUN,
                                    error=str(exc))
                _progress(failed)
                results.append(failed)
                continue
            say(f"{size} LUNs x {PATHS_PER_LUN} paths: holders joined "
                f"({', '.join(f'{n} {s.seconds:.2f}s' for n, s in nodes.starts.items())})")
            try:
                results += run_size(nodes, workdir / f"luns{size}", args, _progress)
            finally:
                nodes.stop()
    finally:
        array.stop()
    return results


def _progress(result: CaseResult) -> None:
    size = f"{result.luns:4}x{result.paths}" if result.luns else "      "
    if result.stats:
        say(f"  {result.case:6} {result.tool:32} {size}: median "
            f"{result.stats.median * 1000:9.1f} ms ({len(result.stats.runs)} runs)")
    else:
        say(f"  {result.case:6} {result.tool:32} {size}: FAILED {result.error}")


def installed_from(python: str) -> str:
    """Where `python` imports stonewall from, and whether that is this tree (an editable
    install) or a normal install."""
    found = subprocess.run([python, "-c", "import stonewall; print(stonewall.__file__)"],
                           capture_output=True, text=True, timeout=30)
    where = Path(found.stdout.strip()).parent if found.returncode == 0 else None
    if where is None:
        return f"none ({found.stderr.strip().splitlines()[-1:]})"
    return f"{'editable: this tree' if where == REPOSITORY else 'normal install'} ({where})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    open_files = raise_open_files_limit()
    settings = {"runs": args.runs, "fence_sizes": args.fence_sizes,
                "status_luns": args.status_luns, "join_luns": args.join_luns,
                "paths_per_lun": PATHS_PER_LUN, "luns_per_target": args.luns_per_target,
                "fence_scsi_per_path": args.fence_scsi_per_path,
                "entry_points_python": args.python,
                "entry_points_stonewall": installed_from(args.python),
                "rlimit_nofile": open_files, "smoke": args.smoke, "note": args.note}
    with tempfile.TemporaryDirectory(prefix="stonewall-bench-") as tmp:
        try:
            results = run_all(args, Path(tmp))
        except (TgtdError, ProcessStartError, BenchFailure, NexusError) as exc:
            say(f"bench: the lab could not be built: {exc}")
            return 2
    doc = report.document(results, report.machine_facts(REPOSITORY), settings)
    written = report.write_outputs(doc, results, args.out)
    print(report.markdown(doc))
    say("wrote " + ", ".join(str(p) for p in written.values() if p)
        + ("" if written["plot"] else " (no plot: install python3-matplotlib)"))
    return 1 if any(r.error and not r.unavailable for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
