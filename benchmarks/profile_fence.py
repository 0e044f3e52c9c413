"""Where a fence's time goes inside the holder: node-a's and node-b's NodeHolders run in this
process against the benchmark's tgtd, node-a preempting node-b `--runs` times on `--luns`
LUNs x 2 paths under cProfile, node-b joining again in a new boot between runs.

    python -m stonewall.benchmarks.profile_fence [--luns 512] [--runs 5] [--top 25]

Prints each run's wall time and the functions with the most cumulative time, then the floor
one round of READ KEYS on every path costs: pipelined on one poll() loop (libiscsi's
asynchronous API, `IscsiSession.submit` + `wait_for`) and through the 16-thread pool
(`map_bounded`, what storage/ownership.py uses)."""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from stonewall.benchmarks.lab import (
    FENCER, SETUP_SECONDS, VICTIM, Array, Nodes, raise_open_files_limit)
from stonewall.config.loader import load_config
from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.holder.node import NodeHolder
from stonewall.storage.bootid import BootRecords
from stonewall.bounded import map_bounded
from stonewall.storage.paths import PathSet
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.iscsi import wait_for
from stonewall.storage.scsi.types import PrInAction

READ_KEYS_LENGTH = 1024


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stonewall.benchmarks.profile_fence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--luns", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=25,
                        help="functions to list (0: time the runs without the profiler)")
    args = parser.parse_args(argv)
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="stonewall-profile-") as tmp:
        workdir = Path(tmp)
        array = Array(workdir, args.luns).start()
        try:
            nodes = Nodes(array, workdir / "nodes", args.luns)  # configurations only
            fencer, victim = (in_process_holder(nodes, node) for node in (FENCER, VICTIM))
            try:
                profile = profile_preempts(fencer, victim, args.runs, args.top > 0)
                for _ in range(args.runs):
                    print(read_keys_floor(fencer.paths), flush=True)
            finally:
                fencer.close()
                victim.close()
        finally:
            array.stop()
    if args.top > 0:
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(args.top)
    return 0


def in_process_holder(nodes: Nodes, node: str) -> NodeHolder:
    """`node`'s holder in this process, logged in on every path."""
    config = load_config(str(nodes.configs[node]))
    holder = NodeHolder(config, config.node(node), SYSTEM_CLOCK,
                        BootRecords(config.paths.state_dir, f"{node}-profile-boot-0"))
    holder.connect(Deadline.after(SETUP_SECONDS))
    return holder


def profile_preempts(fencer: NodeHolder, victim: NodeHolder, runs: int,
                     profiled: bool = True) -> cProfile.Profile:
    """Each preempt of the victim profiled (unless not `profiled`); the victim's join in a
    new boot before each run (a fenced node registers again only after a reboot) is not."""
    profile = cProfile.Profile()
    if not fencer.join(Deadline.after(SETUP_SECONDS)).ok:
        raise SystemExit(f"profile: {FENCER} could not join")
    for run in range(runs):
        victim.boot_records = BootRecords(victim.config.paths.state_dir,
                                          f"{VICTIM}-profile-boot-{run + 1}")
        if not victim.join(Deadline.after(SETUP_SECONDS)).ok:
            raise SystemExit(f"profile: {VICTIM} could not join")
        began = time.perf_counter()
        if profiled:
            profile.enable()
        fencer.refresh(Deadline.after(SETUP_SECONDS))
        outcome = fencer.preempt(VICTIM, None, Deadline.after(SETUP_SECONDS))
        if profiled:
            profile.disable()
        print(f"run {run + 1}: {(time.perf_counter() - began) * 1000:.1f} ms, "
              f"fenced {outcome.fenced}", flush=True)
    return profile


def read_keys_floor(paths: PathSet) -> str:
    """One READ KEYS on every path: pipelined on one poll loop, then one thread per call."""
    sessions = [p.session for ps in paths.values() for p in ps if p.session is not None]
    command = cdb.pr_in(PrInAction.READ_KEYS, READ_KEYS_LENGTH)
    began = time.perf_counter()
    pendings = [s.submit(command, data_in_length=READ_KEYS_LENGTH) for s in sessions]
    wait_for(pendings, Deadline.after(SETUP_SECONDS))
    pipelined = time.perf_counter() - began
    if not all(p.done and p.error is None for p in pendings):
        raise SystemExit("profile: a pipelined READ KEYS failed")
    began = time.perf_counter()
    answers = map_bounded(lambda s: s.execute(command, Deadline.after(SETUP_SECONDS),
                                              data_in_length=READ_KEYS_LENGTH),
                          sessions, Deadline.after(SETUP_SECONDS))
    threaded = time.perf_counter() - began
    if any(isinstance(a, BaseException) for a in answers):
        raise SystemExit("profile: a threaded READ KEYS failed")
    return (f"READ KEYS on {len(sessions)} paths: pipelined {pipelined * 1000:.1f} ms "
            f"({pipelined / len(sessions) * 1e6:.0f} us/path), thread pool "
            f"{threaded * 1000:.1f} ms ({threaded / len(sessions) * 1e6:.0f} us/path)")


if __name__ == "__main__":
    sys.exit(main())
