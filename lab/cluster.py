"""A lab cluster's configuration: one YAML file per node, all describing the same cluster
(LUNs on the lab's tgtd, two portals each), differing only in each node's own directories."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd


@dataclass
class LabLun:
    name: str
    lun: int
    role: str = "shared"
    order: int = 100
    reservation: str = "we-ro"


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

    def node_dir(self, node: str) -> Path:
        return self.workdir / node

    def initiator(self, node: str) -> str:
        return f"iqn.2026-11.lab.stonewall:{node}"

    def document(self, node: str) -> dict[str, object]:
        """The configuration `node` reads."""
        base = self.node_dir(node)
        document: dict[str, object] = {
            "cluster": self.cluster,
            "libvirt_uri": "test:///default",
            "paths": {"state_dir": str(base / "state"), "runtime_dir": str(base / "run"),
                      "event_log": str(base / "events.jsonl")},
            "transport": "iscsi",
            "nodes": [{"name": name, "id": index + 1, "initiator": self.initiator(name)}
                      for index, name in enumerate(self.nodes)],
            "luns": [{"name": lun.name, "role": lun.role, "order": lun.order,
                      "reservation": lun.reservation,
                      "iscsi": {"target": self.target_iqn, "lun": lun.lun,
                                "portals": list(self.tgtd.portals)}} for lun in self.luns],
            "fencing": [{"level": "storage", "timeout": 10}],
        }
        document.update(self.extra)
        return document

    def write_config(self, node: str) -> Path:
        """Write `node`'s configuration file (mode 0600) and return its path."""
        base = self.node_dir(node)
        for sub in ("state", "run"):
            (base / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        path = base / "cluster.yaml"
        path.write_text(yaml.safe_dump(self.document(node), sort_keys=False))
        path.chmod(0o600)
        return path

    def boot(self, node: str, boot_id: str) -> Path:
        """Give `node` a boot id (the lab's stand-in for a reboot); returns the file."""
        path = self.node_dir(node) / "boot_id"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(boot_id + "\n")
        return path
