"""A lab cluster's configuration: one YAML file per node, all describing the same cluster
(LUNs on the lab's tgtd, two portals each), differing only in each node's own directories.

LUNs with a data path (guest LUNs by default) are `sg` LUNs: each node reaches them through
its kernel stand-in (lab/kernel_standin.py), whose sysfs tree and devices the node's configuration
names (`paths.sysfs`, `paths.dev`), with the array's portals as the control path. The other
LUNs are reached on the control path alone."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import yaml

from stonewall.clock import Deadline
from stonewall.config.model import Lun, Portal, Transport
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.kernel_standin import KernelLun, LabKernel
from stonewall.lab.tgtd import Tgtd


def control_path_luns(luns: Sequence[Lun],
                      portals: Sequence[Portal] | None = None) -> list[Lun]:
    """The same LUNs reached on a control path alone (an observer's own sessions, never a
    node's data path), optionally through other portals."""
    chosen = []
    for lun in luns:
        assert lun.iscsi is not None, f"lab LUN {lun.name} has no iscsi location"
        location = replace(lun.iscsi, portals=tuple(portals)) if portals else lun.iscsi
        chosen.append(replace(lun, transport=Transport.ISCSI, iscsi=location))
    return chosen


@dataclass
class LabLun:
    name: str
    lun: int
    role: str = "shared"
    order: int = 100
    reservation: str | None = None  # None: the role's default (we-ar for guests, else we-ro)
    data_path: bool | None = None  # None: guest LUNs have one, others are control path only
    target: str | None = None  # the array's target holding it (None: the cluster's one)

    @property
    def written_by_kernel(self) -> bool:
        return self.role == "guest" if self.data_path is None else self.data_path


@dataclass
class LabCluster:
    """Node names, LUNs and where each node keeps its files."""

    workdir: Path
    tgtd: Tgtd
    nodes: list[str] = field(default_factory=lambda: ["node-a", "node-b"])
    luns: list[LabLun] = field(default_factory=list)
    cluster: str = "lab"
    target_iqn: str = ARRAY_IQN
    extra: dict[str, object] = field(default_factory=dict)  # more top-level config keys
    portals_of: dict[str, list[str]] = field(default_factory=dict)  # node -> its portals
    kernels: dict[str, LabKernel] = field(default_factory=dict)  # started by start_kernel

    def node_dir(self, node: str) -> Path:
        return self.workdir / node

    def initiator(self, node: str) -> str:
        return f"iqn.2026-11.lab.stonewall:{node}"

    def portals(self, node: str) -> list[str]:
        """The portals `node` reaches the array through (default: all of them)."""
        return list(self.portals_of.get(node) or self.tgtd.portals)

    def target_of(self, lun: LabLun) -> str:
        return lun.target or self.target_iqn

    def data_path_luns(self) -> list[LabLun]:
        return [lun for lun in self.luns if lun.written_by_kernel]

    def start_kernel(self, node: str, deadline: Deadline, process_group: int | None = None,
                     spare_portals: Sequence[str] = ()) -> LabKernel | None:
        """(Re)start `node`'s kernel stand-in: new sessions, as after a reboot. None when no
        LUN has a data path. `spare_portals`: see LabKernel."""
        self.stop_kernel(node)
        luns = [KernelLun(lun.name, self.target_of(lun), lun.lun) for lun in self.data_path_luns()]
        if not luns:
            return None
        pages = next((dict(k.pages) for k in self.kernels.values()), None)
        kernel = LabKernel(self.node_dir(node) / "kernel", self.initiator(node),
                           self.portals(node), luns, spare_portals=spare_portals,
                           process_group=process_group,
                           shim_cache=self.workdir / "shim").start(deadline, pages)
        self.kernels[node] = kernel
        return kernel

    def stop_kernel(self, node: str) -> None:
        kernel = self.kernels.pop(node, None)
        if kernel is not None:
            kernel.stop()

    def environment(self, node: str) -> dict[str, str]:
        """The process environment of `node`'s service: its kernel's devices (the shim)."""
        kernel = self.kernels.get(node)
        return kernel.environment if kernel is not None else {}

    def document(self, node: str) -> dict[str, object]:
        """The configuration `node` reads."""
        base = self.node_dir(node)
        kernel = self.kernels.get(node)
        if self.data_path_luns() and kernel is None:
            raise RuntimeError(f"{node}: start its kernel first (LUNs with a data path)")
        paths: dict[str, str] = {"state_dir": str(base / "state"),
                                 "runtime_dir": str(base / "run"),
                                 "event_log": str(base / "events.jsonl"),
                                 "boot_id": str(self.boot_file(node))}
        if kernel is not None:
            paths.update(sysfs=kernel.sysfs, dev=kernel.dev)
        document: dict[str, object] = {
            "cluster": self.cluster,
            "libvirt_uri": "test:///default",
            "paths": paths,
            "transport": "iscsi",
            "nodes": [{"name": name, "id": index + 1, "initiator": self.initiator(name)}
                      for index, name in enumerate(self.nodes)],
            "luns": [self._lun(lun, node, kernel) for lun in self.luns],
            "fencing": [{"level": "storage", "timeout": 10}],
        }
        document.update(self.extra)
        return document

    def _lun(self, lun: LabLun, node: str, kernel: LabKernel | None) -> dict[str, object]:
        entry: dict[str, object] = {"name": lun.name, "role": lun.role, "order": lun.order}
        if lun.reservation is not None:
            entry["reservation"] = lun.reservation
        if lun.written_by_kernel and kernel is not None:
            entry.update(transport="sg", wwid=kernel.wwids[lun.name], alias=lun.name)
        entry["iscsi"] = {"target": self.target_of(lun), "lun": lun.lun,
                          "portals": self.portals(node)}
        return entry

    def write_config(self, node: str) -> Path:
        """Write `node`'s configuration file (mode 0600) and return its path."""
        base = self.node_dir(node)
        for sub in ("state", "run"):
            (base / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        path = base / "cluster.yaml"
        path.write_text(yaml.safe_dump(self.document(node), sort_keys=False))
        path.chmod(0o600)
        return path

    def boot_file(self, node: str) -> Path:
        """The file `node`'s configuration names as its kernel's boot id."""
        return self.node_dir(node) / "boot_id"

    def boot(self, node: str, boot_id: str) -> Path:
        """Give `node` a boot id (the lab's stand-in for a reboot); returns the file."""
        path = self.boot_file(node)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(boot_id + "\n")
        return path
