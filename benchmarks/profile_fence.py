"""Where a fence's time goes inside the holder: node-a's NodeHolder runs in this process
under cProfile (node-b's holder is a real process, as in the benchmark), preempting node-b
`--runs` times on `--luns` LUNs x 2 paths with node-b rebooted (new boot id, holder rejoins) between runs.

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
from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.holder.node import NodeHolder
from stonewall.storage.bootid import BootRecords
from stonewall.storage.parallel import map_bounded
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
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    raise_open_files_limit()
    with tempfile.TemporaryDirectory(prefix="stonewall-profile-") as tmp:
        workdir = Path(tmp)
        array = Array(workdir, args.luns).start()
        try:
            nodes = Nodes(array, workdir / "nodes", args.luns).start()
            try:
                nodes.stop_holder(FENCER)  # node-a runs here instead
                profile = profile_preempts(nodes, args.runs)
                for _ in range(args.runs):
                    print(read_keys_floor(nodes.observer), flush=True)
            finally:
                nodes.stop()
        finally:
            array.stop()
    pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(args.top)
    return 0


def profile_preempts(nodes: Nodes, runs: int) -> cProfile.Profile:
    """node-a's holder in this process; each preempt profiled, each reboot of node-b not."""
    config = nodes.config
    boot = nodes.cluster.boot(FENCER, f"{FENCER}-profile-boot")
    holder = NodeHolder(config, config.node(FENCER), SYSTEM_CLOCK,
                        BootRecords(config.paths.state_dir, boot.read_text().strip()))
    profile = cProfile.Profile()
    try:
        holder.connect(Deadline.after(SETUP_SECONDS))
        if not holder.join(Deadline.after(SETUP_SECONDS))["ok"]:
            raise SystemExit("profile: node-a could not join")
        for run in range(runs):
            nodes.reboot_victim()
            began = time.perf_counter()
            profile.enable()
            holder.refresh(Deadline.after(SETUP_SECONDS))
            outcome = holder.preempt(VICTIM, None, Deadline.after(SETUP_SECONDS))
            profile.disable()
            print(f"run {run + 1}: {(time.perf_counter() - began) * 1000:.1f} ms, "
                  f"fenced {outcome.fenced}", flush=True)
    finally:
        holder.close()
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
