"""The benchmark's own lab: one tgtd with file-backed LUNs on two portals, spread over several
targets, and the two nodes (node-a fences, node-b is the victim) whose holders have joined.

Each node writes every LUN through its kernel, as DRBD writes its backing LUNs through a
dm-multipath map: the LUNs are `sg` LUNs, and each node has a kernel stand-in
(lab/kernel_standin.py) holding one session per LUN path (its data path), where its key is
registered beside the holder's own sessions (the control path). A fence must therefore
remove the victim's key from its data-path nexuses too, and the observer proves it.

Sizes: a node holds two iSCSI sessions per LUN path (holder and kernel), so 512 LUNs x 2
paths is 1,024 sessions in each holder and 1,024 in each kernel stand-in, another 1,024 in
the observer while it checks, all with open sockets; `raise_open_files_limit` lifts this
process's soft RLIMIT_NOFILE to its hard limit before anything starts, and every child
(tgtd, holders, kernel stand-ins) inherits it."""
from __future__ import annotations

import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from stonewall.benchmarks.measure import BenchFailure
from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import ClusterConfig
from stonewall.holder.client import HolderClient
from stonewall.lab.cluster import LabCluster, LabLun, control_path_luns
from stonewall.lab.footprint import process_footprint
from stonewall.lab.processes import ProcessStartError, StonewallProcess
from stonewall.lab.tgtd import TGTD_SOCKET_DIR, Tgtd, TgtdError
from stonewall.storage import ownership
from stonewall.storage.paths import close_paths, connect_paths, plan_paths

TARGET_IQN_PREFIX = "iqn.2026-11.lab.stonewall:bench-array"
OBSERVER_IQN = "iqn.2026-11.lab.stonewall:bench-observer"
FENCER, VICTIM = "node-a", "node-b"
# Measured on tgtd 1.0.85: one target took 600 LUNs and 1,800 sessions, but removing a
# target whose LUNs still have hundreds of sessions took longer than the 5 s Tgtd.stop
# allows; targets of 128 LUNs are removed in ~0.13 s (docs/benchmarks.md).
DEFAULT_LUNS_PER_TARGET = 128
LUN_SIZE_MB = 1
HOLDER_READY_SECONDS = 120.0
SETUP_SECONDS = 120.0


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(frozen=True)
class ArrayLun:
    name: str
    target: str
    lun: int


class Array:
    """tgtd with `lun_count` LUNs on two portals, at most `luns_per_target` per target."""

    def __init__(self, workdir: Path, lun_count: int,
                 luns_per_target: int = DEFAULT_LUNS_PER_TARGET) -> None:
        if lun_count < 1 or luns_per_target < 1:
            raise ValueError("at least one LUN and one LUN per target")
        self.tgtd = Tgtd(workdir / "tgtd", portal_count=2)
        self.lun_count = lun_count
        self.luns_per_target = luns_per_target
        self.luns: list[ArrayLun] = []

    def start(self) -> "Array":
        self.tgtd.start()
        try:
            for index in range(math.ceil(self.lun_count / self.luns_per_target)):
                iqn = f"{TARGET_IQN_PREFIX}-{index}"
                tid = self.tgtd.add_target(iqn)
                first = index * self.luns_per_target
                for number in range(1, min(self.luns_per_target, self.lun_count - first) + 1):
                    self.tgtd.add_lun(tid, number, size_mb=LUN_SIZE_MB)
                    self.luns.append(ArrayLun(f"lun{first + number - 1:04d}", iqn, number))
        except BaseException:
            self.tgtd.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop tgtd; by PID when it does not answer tgtadm in time (measured: removing a
        target right after hundreds of logouts can take longer than Tgtd.stop waits)."""
        process, port = self.tgtd.process, self.tgtd.control_port
        try:
            self.tgtd.stop()
        except TgtdError:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            for leftover in (f"socket.{port}", f"socket.{port}.lock"):
                (TGTD_SOCKET_DIR / leftover).unlink(missing_ok=True)

    @property
    def targets(self) -> int:
        return len(self.tgtd.targets)


@dataclass(frozen=True)
class HolderStart:
    """One holder start: seconds from exec to READY (login + join), and what it holds: its
    control-path sessions and the data-path devices (the kernel's nexuses) it registered."""

    seconds: float
    rss_kib: int
    open_fds: int
    control_paths: int
    data_paths: int


class Nodes:
    """node-a and node-b configured for the first `count` LUNs of `array`, holders joined
    (node-a first, so it holds the reservations). An observer with its own initiator name
    checks every fence independently of the fencer: it logs in to every path, reads, and
    logs out again, so it holds no descriptors between checks (StonewallProcess.start waits
    with select(), which fails on a descriptor above 1,023: measured at 512 x 2 with 1,024
    observer sessions open while a holder started)."""

    def __init__(self, array: Array, workdir: Path, count: int) -> None:
        if not 1 <= count <= len(array.luns):
            raise ValueError(f"{count} LUNs asked, the array has {len(array.luns)}")
        self.workdir = workdir
        luns = array.luns[:count]
        self.count = count
        self.cluster = LabCluster(
            workdir, array.tgtd, nodes=[FENCER, VICTIM],
            luns=[LabLun(lun.name, lun.lun, data_path=True, target=lun.target)
                  for lun in luns],
            extra={"drbd": [{"name": "r0", "luns": [lun.name for lun in luns],
                             "peers": {0: FENCER, 1: VICTIM}}],
                   "fencing": [{"level": "storage", "timeout": 30}]})
        self.configs: dict[str, Path] = {}
        self.holders: dict[str, StonewallProcess] = {}
        self.boots = {node: 0 for node in self.cluster.nodes}
        self.starts: dict[str, HolderStart] = {}

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> "Nodes":
        try:
            for node in (FENCER, VICTIM):
                self.start_kernel(node)
                self.configs[node] = self.cluster.write_config(node)
            self.config: ClusterConfig = load_config(str(self.configs[FENCER]))
            for node in (FENCER, VICTIM):
                self.starts[node] = self.start_holder(node)
        except BaseException:
            self.stop()
            raise
        return self

    def start_kernel(self, node: str) -> None:
        """(Re)start `node`'s kernel stand-in: a session per LUN path, as a booted kernel
        holds them (the config's sysfs and /dev stay where they were)."""
        try:
            self.cluster.start_kernel(node, Deadline.after(SETUP_SECONDS))
        except (OSError, RuntimeError) as exc:
            raise BenchFailure(f"{node}: its kernel stand-in did not start: {exc}") from exc

    def start_holder(self, node: str) -> HolderStart:
        """Start `node`'s holder with --join; time it to READY and read its footprint."""
        self.cluster.boot(node, f"{node}-bench-boot-{self.boots[node]}")
        holder = StonewallProcess(self.configs[node], ["holder", "run", "--node", node,
                                                       "--join"],
                                  env=self.cluster.environment(node))
        began = time.perf_counter()
        try:
            holder.start(ready_timeout=HOLDER_READY_SECONDS)
        except ProcessStartError as exc:
            raise BenchFailure(str(exc)) from exc
        except BaseException:
            holder.stop()
            raise
        seconds = time.perf_counter() - began
        self.holders[node] = holder
        rss, fds = process_footprint(holder.pid)
        state = self.client(node).state(Deadline.after(SETUP_SECONDS))
        paths = state.paths
        unregistered = [p for p in paths if not (p.up and p.registered)]
        if unregistered:
            raise BenchFailure(f"{node}: {len(unregistered)} of {len(paths)} paths not "
                               f"joined, e.g. {unregistered[0]}")
        data = sum(1 for p in paths if p.kind == "data")
        return HolderStart(seconds, rss, fds, len(paths) - data, data)

    def stop_holder(self, node: str) -> None:
        holder = self.holders.pop(node, None)
        if holder is not None:
            holder.stop()

    def stop(self) -> None:
        for node in list(self.holders):
            self.stop_holder(node)
        for node in self.cluster.nodes:
            self.cluster.stop_kernel(node)

    # -- what the cases use ----------------------------------------------------------------
    def client(self, node: str) -> HolderClient:
        return HolderClient(load_config(str(self.configs[node])), node)

    def key(self, node: str) -> int:
        return self.config.node(node).key

    @property
    def paths_per_lun(self) -> int:
        return len(self.cluster.tgtd.portals)

    def reboot_victim(self) -> None:
        """The reset between fences: node-b "reboots" (its holder stops, its kernel logs in
        again, it gets a new boot id, its holder starts and joins: a fenced node may register
        again only in a new boot), and the observer sees its key on every path again."""
        self.stop_holder(VICTIM)
        self.start_kernel(VICTIM)
        self.boots[VICTIM] += 1
        self.start_holder(VICTIM)
        self.require_victim(present=True)

    def require_victim(self, present: bool) -> None:
        """The observer reads every path of every LUN; BenchFailure unless node-b's key is
        there (present) or gone (not present) on all of them."""
        paths = plan_paths(control_path_luns(self.config.luns), OBSERVER_IQN,
                           role="observer")
        try:
            connect_paths(paths, Deadline.after(SETUP_SECONDS))
            down = [p.name for ps in paths.values() for p in ps if not p.up]
            if down:
                raise BenchFailure(f"observer: {len(down)} paths did not log in")
            report = ownership.verify(paths, self.key(VICTIM), present,
                                      Deadline.after(SETUP_SECONDS), SYSTEM_CLOCK)
        finally:
            close_paths(paths)
        if not report.proven:
            wrong = [c.lun for c in report.checks if c.verdict is not True]
            raise BenchFailure(f"observer: {VICTIM}'s key {'missing' if present else 'still'}"
                               f" on {len(wrong)} LUN(s), e.g. {wrong[:3]}")
