"""Two lab nodes that can live-migrate a real QEMU guest (TCG) between them.

- the lab cluster (tests/lab_fixtures.py): tgtd, each node's kernel stand-in (its data path)
  and its holder process, joined;
- per node a private libvirtd (tests/vm/libvirtd.py) with a host UUID of its own and the
  stonewall hook installed in qemu.d/, running the real `stonewall vm hook run` as that node
  (its configuration, its holder's socket);
- the guest `web1`: a small TCG guest without a disk; its LUN `web1-disk` comes from the
  configuration. QEMU cannot write through the lab's nexus stand-in, so the guest's writes
  are made by lab writers (lab/guest.py) on the nodes' data paths, and the invariant checker
  (lab/stamps.check_handoff) reads them back: see `Writers`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import libvirt

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.lab.cluster import control_path_luns
from stonewall.lab.kernel.guest import GuestImage
from stonewall.lab.scenario import read_stamps
from stonewall.lab.stamps import Stamp, Violation, check_handoff
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import close_paths, connect_paths, plan_paths
from stonewall.vm.hook_install import install_hook
from stonewall.vm.libvirt_conn import DomainState, LibvirtConnection

from ..lab_fixtures import Lab, running_lab
from .libvirtd import PrivateLibvirtd

NODES = ("node-a", "node-b")
HOST_UUIDS = {"node-a": "6f1c2a3e-8b4d-4c1a-9e2f-0a1b2c3d4e5f",
              "node-b": "a7e3b9d1-2c4f-4e6a-8b0d-1f2e3d4c5b6a"}
GUEST = "web1"
LUN = "web1-disk"
GUEST_UUID = "3b0f6c1e-5d2a-4f7b-9c8e-1a2b3c4d5e6f"
GUESTS = [{"name": GUEST, "luns": [LUN], "home": "node-a"}]
MIGRATE_URI = "tcp://127.0.0.1"


def guest_xml(memory_mib: int = 64, image: GuestImage | None = None) -> str:
    """The guest; with `image` it boots the kernel tier's Linux (its memory is then not all
    zero pages, so a throttled migration really takes its time)."""
    boot = (f"<kernel>{image.kernel}</kernel><initrd>{image.initramfs}</initrd>"
            "<cmdline>console=ttyS0 quiet</cmdline>") if image else ""
    return (f"<domain type='qemu'><name>{GUEST}</name><uuid>{GUEST_UUID}</uuid>"
            f"<memory unit='MiB'>{memory_mib}</memory><os><type arch='x86_64' machine='pc'>hvm</type>{boot}</os><devices>"
            "<emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>")


@dataclass
class MigrationLab:
    lab: Lab
    daemons: dict[str, PrivateLibvirtd]
    conns: dict[str, LibvirtConnection] = field(default_factory=dict)

    def stonewall(self, node: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        """`stonewall ARGS` as `node`, to completion."""
        return subprocess.run(
            [sys.executable, "-m", "stonewall", "--config", str(self.lab.configs[node]), *args],
            env={**os.environ, **self.lab.cluster.environment(node), "STONEWALL_NODE": node},
            capture_output=True, text=True, timeout=timeout, check=False)

    def migrate(self, source: str, destination: str, *extra: str) -> subprocess.CompletedProcess:
        """`stonewall vm migrate` on `source` through the lab's channel (--peer-config)."""
        return self.stonewall(source, "vm", "migrate", GUEST, "--to", destination,
                              "--uri", self.daemons[source].uri,
                              "--to-uri", self.daemons[destination].uri,
                              "--migrate-uri", MIGRATE_URI,
                              "--peer-config", str(self.lab.configs[destination]), "--json",
                              *extra)

    def state(self, node: str) -> DomainState | None:
        """The guest's state on `node`; None when the node has no such domain."""
        try:
            return self.conns[node].state(GUEST)
        except Exception:  # DomainNotFound: undefined there
            return None

    def running_on(self) -> list[str]:
        return [n for n in NODES if self.state(n) in (DomainState.RUNNING, DomainState.PAUSED)]

    def registered(self) -> dict[str, tuple[str, ...]]:
        """Who a third initiator sees registered on the guest LUN (each node once; every path
        must agree)."""
        config = self.lab.config("node-a")
        names = {n.key: n.name for n in config.nodes}
        paths = plan_paths([lun for lun in control_path_luns(config.luns) if lun.name == LUN],
                           "iqn.2026-11.lab.stonewall:observer", "reader")
        connect_paths(paths, Deadline.after(10))
        try:
            view = read_views(paths, Deadline.after(10), SYSTEM_CLOCK)[LUN]
        finally:
            close_paths(paths)
        seen = {tuple(sorted({names.get(k, hex(k)) for k in (p.keys or ())})) for p in view.up_paths}
        assert len(seen) == 1, view
        return {LUN: seen.pop()}


@contextmanager
def migration_lab(tgtd: Tgtd, workdir: Path) -> Iterator[MigrationLab]:
    with running_lab(tgtd, workdir / "lab", {"guests": GUESTS}) as lab:
        for node in NODES:
            lab.start_holder(node)
        daemons = {node: PrivateLibvirtd(workdir / node, HOST_UUIDS[node]) for node in NODES}
        started: list[PrivateLibvirtd] = []
        result = MigrationLab(lab, daemons)
        try:
            for node, daemon in daemons.items():
                # An operator's own hook, run by libvirt before stonewall's qemu.d/ script:
                # it refuses the call named in <scratch>/refuse (a test's fault).
                daemon.hooks_dir.mkdir(parents=True)
                operator = daemon.hooks_dir / "qemu"
                operator.write_text(f"#!/bin/sh\ncat >/dev/null\nif [ \"$2 $3\" = \"$(cat "
                                    f"{daemon.scratch}/refuse 2>/dev/null)\" ]; then echo "
                                    "'refused by the operator hook' >&2; exit 1; fi\nexit 0\n")
                operator.chmod(0o755)
                install_hook(daemon.hooks_dir,
                             [sys.executable, "-m", "stonewall", "vm", "hook", "run",
                              "--timeout", "8"],
                             libvirt_version=libvirt.getVersion(),
                             environment={"STONEWALL_CONFIG": str(lab.configs[node]),
                                          "STONEWALL_NODE": node,
                                          "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
                daemon.start()
                started.append(daemon)
                result.conns[node] = LibvirtConnection.open(daemon.uri, Deadline.after(30),
                                                            call_timeout=90)
            yield result
        finally:
            for conn in result.conns.values():
                conn.close()
            for daemon in started:
                daemon.stop()


class Writers:
    """The guest's writes, through the nodes' data paths (lab/guest.py), one writer per node.

    The source's writer keeps writing through the whole test, also after its QEMU is gone (the
    worst case: anything left on the source writing to the LUN); the destination's starts
    once the guest was resumed there (a paused QEMU does not write). The SAN alone must then
    keep the source's writes off the LUN after the handoff."""

    def __init__(self, mlab: MigrationLab, workdir: Path) -> None:
        self.mlab = mlab
        self.log = workdir / "writes.jsonl"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.began = time.time()  # blocks stamped earlier belong to an earlier phase

    def start(self, node: str) -> None:
        kernel = self.mlab.lab.cluster.kernels[node]
        first = 1_000_000 * (len(self.processes) + 1)
        process = subprocess.Popen(
            [sys.executable, "-m", "stonewall.lab.guest", "--maps", str(kernel.maps_file),
             "--node", node, "--guest", GUEST, "--lun", LUN, "--log", str(self.log),
             "--first-sequence", str(first)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None and process.stdout.readline().startswith(b"READY")
        self.processes.append(process)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
            if process.stdout:
                process.stdout.close()
        self.processes.clear()

    def acknowledged(self) -> list[Stamp]:
        return [Stamp(r["time"], r["node"], r["guest"], r["sequence"]) for r in self._records()
                if r.get("written")]

    def conflicts(self) -> list[Stamp]:
        """The writes the SAN refused with RESERVATION CONFLICT (the writer's key was gone)."""
        return [Stamp(r["time"], r["node"], r["guest"], r["sequence"]) for r in self._records()
                if r.get("error") == "ReservationConflict"]

    def _records(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def check(self, source: str, destination: str, handoff_point: float) -> list[Violation]:
        """The one rule across the handoff (lab/stamps.check_handoff): the LUN read back by
        a third initiator, and every write the data paths acknowledged."""
        on_disk = [s for s in self._on_disk() if s.time >= self.began]
        return check_handoff(LUN, on_disk, source, destination, handoff_point,
                             self.acknowledged())

    def _on_disk(self) -> list[Stamp]:
        config = self.mlab.lab.config("node-a")
        paths = plan_paths([lun for lun in control_path_luns(config.luns) if lun.name == LUN],
                           "iqn.2026-11.lab.stonewall:checker", "reader")
        connect_paths(paths, Deadline.after(10))
        try:
            return read_stamps(paths[LUN])
        finally:
            close_paths(paths)
