"""The files a lab cluster starts from: corosync.conf, and a CIB seeded offline with cibadmin.

Seeding the CIB before pacemakerd starts cuts start-up from ~22 s to ~5 s: `dc-deadtime`
(default 20 s) is the wait before the first DC election (reference/pacemaker.md B.3).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CIB_TOOL_TIMEOUT = 20.0


class LabConfigError(RuntimeError):
    """A lab cluster file could not be written (cibadmin missing or refusing)."""


@dataclass(frozen=True)
class CorosyncMember:
    name: str  # lower case: Pacemaker warns about capitals
    nodeid: int
    address: str


def corosync_conf(cluster_name: str, members: Sequence[CorosyncMember], log_file: Path, *,
                  port: int = 5420, two_node: bool = False, token_ms: int = 3000) -> str:
    """corosync.conf for knet over `members`' addresses, no crypto (lab traffic only)."""
    nodes = "".join(f"    node {{\n        name: {m.name}\n        nodeid: {m.nodeid}\n"
                    f"        ring0_addr: {m.address}\n    }}\n" for m in members)
    quorum = "    two_node: 1\n" if two_node else ""
    return (
        "totem {\n    version: 2\n"
        f"    cluster_name: {cluster_name}\n"
        "    transport: knet\n    crypto_cipher: none\n    crypto_hash: none\n"
        f"    token: {token_ms}\n"
        f"    interface {{\n        linknumber: 0\n        mcastport: {port}\n    }}\n}}\n"
        f"nodelist {{\n{nodes}}}\n"
        f"quorum {{\n    provider: corosync_votequorum\n{quorum}}}\n"
        "logging {\n    to_stderr: yes\n    to_logfile: yes\n"
        f"    logfile: {log_file}\n    to_syslog: no\n    timestamp: on\n}}\n")


@dataclass(frozen=True)
class FenceDevice:
    """A stonith primitive as the CIB holds it."""

    id: str
    params: Mapping[str, str]  # instance attributes, pcmk_* included
    agent: str = "fence_stonewall"
    provides_unfencing: bool = True  # needed with cibadmin on Pacemaker 2.1 (pcs adds it)
    monitor_interval: str = "60s"

    def element(self) -> ET.Element:
        primitive = ET.Element("primitive", id=self.id, **{"class": "stonith"}, type=self.agent)
        attributes = ET.SubElement(primitive, "instance_attributes", id=f"{self.id}-ia")
        for name, value in self.params.items():
            ET.SubElement(attributes, "nvpair", id=f"{self.id}-{name}", name=name, value=value)
        if self.provides_unfencing:
            meta = ET.SubElement(primitive, "meta_attributes", id=f"{self.id}-meta")
            ET.SubElement(meta, "nvpair", id=f"{self.id}-provides", name="provides",
                          value="unfencing")
        operations = ET.SubElement(primitive, "operations")
        ET.SubElement(operations, "op", id=f"{self.id}-monitor", name="monitor",
                      interval=self.monitor_interval)
        return primitive


@dataclass(frozen=True)
class FencingLevel:
    """One level of Pacemaker's fencing topology: every device in it is required."""

    target: str
    index: int  # 1 is tried first
    devices: Sequence[str]

    def element(self) -> ET.Element:
        return ET.Element("fencing-level", id=f"fl-{self.target}-{self.index}",
                          target=self.target, index=str(self.index),
                          devices=",".join(self.devices))


@dataclass(frozen=True)
class CibSeed:
    """What a lab cluster's CIB starts with."""

    cluster_name: str
    devices: Sequence[FenceDevice] = ()
    dummy: bool = True  # an ocf:pacemaker:Dummy, which needs the node unfenced first
    properties: Mapping[str, str] = field(default_factory=dict)  # beyond the lab defaults
    topology: Sequence[FencingLevel] = ()  # none: each device fences the nodes it can

    def property_set(self) -> ET.Element:
        values = {"dc-deadtime": "2s", "stonith-enabled": "true",
                  "cluster-name": self.cluster_name, **self.properties}
        element = ET.Element("cluster_property_set", id="cib-bootstrap-options")
        for name, value in values.items():
            ET.SubElement(element, "nvpair", id=f"opt-{name}", name=name, value=value)
        return element


def _cibadmin(*arguments: str, cib_file: Path | None = None) -> str:
    binary = shutil.which("cibadmin")
    if binary is None:
        raise LabConfigError("cibadmin not found: install the Debian package pacemaker-cli-utils")
    environment = dict(os.environ)
    if cib_file is not None:
        environment["CIB_file"] = str(cib_file)  # edit the file, no cluster needed
    try:
        result = subprocess.run([binary, *arguments], capture_output=True, text=True,
                                env=environment, timeout=CIB_TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LabConfigError(f"cibadmin {' '.join(arguments[:2])}: no answer") from None
    if result.returncode != 0:
        raise LabConfigError(f"cibadmin {' '.join(arguments[:3])}: {result.stderr.strip()}")
    return result.stdout


def write_cib(path: Path, seed: CibSeed) -> None:
    """An empty CIB from cibadmin, then the seed's properties and resources."""
    path.write_text(_cibadmin("--empty"))
    additions = [("crm_config", seed.property_set())]
    additions += [("resources", device.element()) for device in seed.devices]
    if seed.topology:
        topology = ET.Element("fencing-topology")
        topology.extend(level.element() for level in seed.topology)
        additions.append(("configuration", topology))
    if seed.dummy:
        additions.append(("resources", ET.Element("primitive", id="dummy", provider="pacemaker",
                                                  type="Dummy", **{"class": "ocf"})))
    for section, element in additions:
        _cibadmin("--create", "-o", section, "--xml-text", ET.tostring(element, encoding="unicode"),
                  cib_file=path)
