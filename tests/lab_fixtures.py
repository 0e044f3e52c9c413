"""A two-node lab cluster on the tgtd fixture: configs, boot ids, holder processes.

Shared by the test folders that need node holders (ownership, fencing): their conftest files
import the fixtures from here."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import ClusterConfig, SgBackend, Transport
from stonewall.holder.client import HolderClient
from stonewall.holder.node import NodeHolder
from stonewall.lab.cluster import LabCluster, LabLun, control_path_luns
from stonewall.lab.guest import load_map
from stonewall.lab.stamps import Stamp, encode
from stonewall.lab.processes import StonewallProcess
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.bootid import BootRecords, current_boot_id
from stonewall.storage.paths import PathSet, close_paths, connect_paths, plan_paths

# web1-disk is a guest LUN: each node reaches it through its kernel stand-in (data path)
# and the array's portals (control path); the others through the control path alone.
LUNS = [LabLun("arbiter0", 1, "arbiter", 0), LabLun("arbiter1", 2, "arbiter", 1),
        LabLun("data0", 3, "shared"), LabLun("web1-disk", 4, "guest")]


class Lab:
    def __init__(self, cluster: LabCluster, guest_runs: dict[str, str] | None = None) -> None:
        """`guest_runs`: guest LUN -> the node whose guest runs on it: that node claims it
        as soon as its holder joined (its guest's registration)."""
        self.cluster = cluster
        self.guest_runs = dict(guest_runs or {})
        for node in cluster.nodes:
            cluster.start_kernel(node, Deadline.after(20))
        self.configs = {node: cluster.write_config(node) for node in cluster.nodes}
        self.boots = {node: cluster.boot(node, f"{node}-boot-1") for node in cluster.nodes}
        self.holders: dict[str, StonewallProcess] = {}

    def config(self, node: str) -> ClusterConfig:
        return load_config(str(self.configs[node]))

    @contextmanager
    def in_process_holder(self, node: str,
                          monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeHolder]:
        """`node`'s holder inside the test process, connected and joined. SG_IO reaches the
        shim only in a process it was preloaded into, and pytest's was not: this holder
        drives its data path with sg_persist children, which inherit the shim's environment
        (set here with `monkeypatch`)."""
        for name, value in self.cluster.environment(node).items():
            monkeypatch.setenv(name, value)
        loaded = self.config(node)
        config = replace(loaded, luns=tuple(
            replace(lun, sg_backend=SgBackend.SG_PERSIST) if lun.transport is Transport.SG
            else lun for lun in loaded.luns))
        holder = NodeHolder(config, config.node(node), SYSTEM_CLOCK,
                            BootRecords(config.paths.state_dir,
                                        current_boot_id(config.paths.boot_id)))
        holder.connect(Deadline.after(10))
        try:
            holder.join(Deadline.after(10))
            yield holder
        finally:
            holder.close()

    def configure(self, node: str, **keys: object) -> None:
        """Rewrite `node`'s configuration with extra top-level keys (watchdog, guests...)."""
        document = {**self.cluster.document(node), **keys}
        self.configs[node].write_text(yaml.safe_dump(document, sort_keys=False))

    def process(self, node: str, args: list[str],
                process_group: int | None = None) -> StonewallProcess:
        """`stonewall ARGS` as `node` (its config, and its kernel's devices), not started."""
        return StonewallProcess(self.configs[node], args, env=self.cluster.environment(node),
                                process_group=process_group)

    def start_holder(self, node: str, join: bool = True) -> StonewallProcess:
        args = ["holder", "run", "--node", node] + (["--join"] if join else [])
        started = self.start(node, self.process(node, args))
        configured = {lun.name for lun in self.config(node).luns}
        for lun in (lun for lun, runs_on in self.guest_runs.items()
                    if runs_on == node and join and lun in configured):
            claimed = self.client(node).claim(lun, Deadline.after(10))
            assert claimed.ok, claimed
        return started

    def start(self, node: str, process: StonewallProcess) -> StonewallProcess:
        """Start `process` as `node`'s holder (the holder or the watchdog service, which
        holds the sessions itself); stopped with the lab."""
        self.holders[node] = process.start()
        return process

    def client(self, node: str) -> HolderClient:
        return HolderClient(self.config(node), node)

    def write_on_every_path(self, node: str, lun: str) -> dict[str, str]:
        """One WRITE(10) down each path of `node`'s map of `lun`, as the node's kernel would
        send a guest's writes (lab/guest.py): path -> "written", or the error."""
        mapped = load_map(str(self.cluster.kernels[node].maps_file), lun)
        try:
            answers = {}
            for lba, path in enumerate(mapped.paths):
                answer = mapped.write_through(path, lba, encode(Stamp(time.time(), node, lun,
                                                                      lba)))
                answers[path.name] = ("path failed" if answer is None else "written"
                                      if answer["written"] else str(answer["error"]))
            return answers
        finally:
            mapped.close()

    def reboot(self, node: str, boot_id: str) -> None:
        """A new boot: a new boot id, and a new kernel (its nexuses carry no registration)."""
        self.boots[node] = self.cluster.boot(node, boot_id)
        self.cluster.start_kernel(node, Deadline.after(20))

    def stop(self) -> None:
        for process in self.holders.values():
            process.stop()
        for node in list(self.cluster.kernels):
            self.cluster.stop_kernel(node)


@contextmanager
def running_lab(tgtd: Tgtd, workdir: Path, extra: dict[str, object] | None = None,
                luns: list[LabLun] | None = None,
                guest_runs: dict[str, str] | None = None,
                nodes: list[str] | None = None) -> Iterator[Lab]:
    """A Lab on `tgtd` with `luns` (default: the standard LUNs), `extra` top-level config
    keys, `guest_runs` (see Lab) and `nodes` (default: node-a and node-b); every holder it
    started is stopped on exit."""
    luns = list(luns or LUNS)
    for lun in luns:
        if lun.lun not in tgtd.targets[1].luns:
            tgtd.add_lun(1, lun.lun)
    cluster = LabCluster(workdir, tgtd, luns=luns, extra=dict(extra or {}),
                         **({"nodes": list(nodes)} if nodes else {}))
    try:
        lab = Lab(cluster, guest_runs)
    except BaseException:
        for node in list(cluster.kernels):
            cluster.stop_kernel(node)
        raise
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def lab(tgtd: Tgtd, tmp_path: Path) -> Iterator[Lab]:
    with running_lab(tgtd, tmp_path / "lab") as started:
        yield started


@pytest.fixture
def observer(lab) -> Iterator[Callable[[], PathSet]]:
    """Reader sessions of a third initiator: the target's truth, independent of the nodes."""
    opened: list[PathSet] = []

    def open_paths() -> PathSet:
        config = lab.config("node-a")
        paths = plan_paths(control_path_luns(config.luns), "iqn.2026-11.lab.stonewall:observer",
                           "reader")
        connect_paths(paths, Deadline.after(5))
        opened.append(paths)
        return paths

    yield open_paths
    for paths in opened:
        close_paths(paths)
