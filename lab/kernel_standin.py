"""A lab node's kernel: the data path its guests write through (DESIGN sections 1 and 7).

A real host reaches a guest LUN through the kernel: one I_T nexus per path (an iSCSI session
per portal), a SCSI disk and an sg device per path, and a dm-multipath map over them. The
nexuses live as long as the kernel, whichever process opens the devices. This stand-in gives
a lab node the same:
- the nexus stand-in (lab/nexus.py) holds one session per LUN and portal for the node's
  lifetime; it runs in the node's process group, so a crash of the node ends its sessions
  as a crash ends a kernel's;
- a sysfs tree and /dev, in which those paths appear as SCSI disks with the LUN's real
  identity (tgtd's VPD page 0x83) under one dm map per LUN, as stonewall's sysfs discovery
  reads a real host; the node's service registers them with sg_persist through the SG_IO
  shim (config `paths.sysfs`, `paths.dev`, and the shim's environment);
- `maps.json`: the device ids of each map's paths, for the lab's guests (lab/guest.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stonewall.clock import Deadline
from stonewall.lab.host_tree import HostTree
from stonewall.lab.nexus import FakeDevice, NexusStandIn
from stonewall.storage.multipath.wwid import device_wwid
from stonewall.storage.scsi.iscsi import IscsiSession

# INQUIRY with EVPD=1 for the Device Identification page (SPC-4 6.6.1, 7.8.6): the bytes the
# kernel exposes as sysfs `vpd_pg83`, from which a LUN's WWID is derived.
INQUIRY_DEVICE_ID_PAGE = bytes([0x12, 0x01, 0x83, 0x00, 0xFC, 0x00])
_PROBE_INITIATOR = "iqn.2026-11.lab.stonewall:probe"


@dataclass(frozen=True)
class KernelLun:
    """A LUN of the array that this node writes through its kernel."""

    name: str  # the configuration's LUN name
    target: str
    lun: int


def device_id_page(portal: str, target: str, lun: int, deadline: Deadline) -> bytes:
    """The target's own VPD page 0x83 of `lun`, so the sysfs tree carries its identity."""
    session = IscsiSession(portal, target, lun, _PROBE_INITIATOR)
    session.connect(deadline)
    try:
        result = session.execute(INQUIRY_DEVICE_ID_PAGE, deadline, data_in_length=0xFC)
    finally:
        session.close()
    if result.status != 0:
        raise RuntimeError(f"INQUIRY page 0x83 of LUN {lun} failed: status {result.status}")
    return result.data


class LabKernel:
    """The kernel stand-in of one lab node; `start` builds it, `stop` ends its sessions.

    `spare_portals` are logged in at start but show no device until `add_path` (a path the
    kernel discovers later, e.g. a new fabric link): the lab's way to add a path to a map."""

    def __init__(self, workdir: Path, initiator: str, portals: Sequence[str],
                 luns: Sequence[KernelLun], *, spare_portals: Sequence[str] = (),
                 process_group: int | None = None, shim_cache: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.initiator = initiator
        self.portals = tuple(portals) + tuple(spare_portals)
        self.shown = list(portals)
        self.luns = tuple(luns)
        self.process_group = process_group
        self.shim_cache = shim_cache
        self.pages: dict[str, bytes] = {}
        self.wwids: dict[str, str] = {}
        self.nexus: NexusStandIn | None = None
        self.tree = HostTree(self.workdir / "host")

    @property
    def sysfs(self) -> str:
        return str(self.tree.sys)

    @property
    def dev(self) -> str:
        return str(self.workdir / "dev")

    @property
    def maps_file(self) -> Path:
        return self.workdir / "maps.json"

    def start(self, deadline: Deadline, pages: dict[str, bytes] | None = None) -> "LabKernel":
        """Log in every path and show the devices. `pages`: the LUNs' VPD pages 0x83, when
        the caller read them already (they do not change while the array runs)."""
        self.pages = dict(pages or {})
        for lun in self.luns:
            if lun.name not in self.pages:
                self.pages[lun.name] = device_id_page(self.portals[0], lun.target, lun.lun,
                                                      deadline)
            wwid = device_wwid(self.pages[lun.name], None)
            if wwid is None:
                raise RuntimeError(f"LUN {lun.lun}: the target's page 0x83 names no identity")
            self.wwids[lun.name] = str(wwid)
        devices = [FakeDevice(self._sg_path(p, lun), portal, lun.target, lun.lun,
                              self.initiator)
                   for p, portal in enumerate(self.portals) for lun in self.luns]
        self.nexus = NexusStandIn(self.workdir / "nexus", devices, shim_cache=self.shim_cache,
                                  process_group=self.process_group).start(deadline)
        self._show()
        return self

    def add_path(self, portal: str) -> None:
        """Show a spare portal's devices: the path appears in sysfs and in every map."""
        if portal not in self.portals or portal in self.shown:
            raise ValueError(f"{portal} is not a spare portal of this kernel")
        self.shown.append(portal)
        self._show()

    def _index(self, portal: str, lun: KernelLun) -> int:
        return self.portals.index(portal) * len(self.luns) + self.luns.index(lun)

    def _sg_path(self, portal_index: int, lun: KernelLun) -> str:
        return f"{self.dev}/sg{portal_index * len(self.luns) + self.luns.index(lun)}"

    def _show(self) -> None:
        """One SCSI host and iSCSI session per shown portal and target, a disk per LUN on
        each, one dm map per LUN over its disks, and maps.json for the guests."""
        assert self.nexus is not None
        targets = list(dict.fromkeys(lun.target for lun in self.luns))
        for portal in self.shown:
            for target in targets:
                self._show_session(portal, target, targets.index(target), len(targets))
        maps = {}
        for number, lun in enumerate(self.luns):
            indices = [self._index(portal, lun) for portal in self.shown]
            self.tree.dm_device(f"dm-{number}", name=lun.name,
                                uuid=f"mpath-{self.wwids[lun.name]}",
                                slaves=tuple(_disk_name(i) for i in indices),
                                major=253, minor=number)
            maps[lun.name] = {"wwid": self.wwids[lun.name], "socket": str(self.nexus.socket_path),
                              "paths": [{"device": self.nexus.device_ids[i],
                                         "name": f"{self.dev}/sg{i}"} for i in indices]}
        partial = self.maps_file.with_suffix(".tmp")
        partial.write_text(json.dumps(maps, indent=1))
        partial.replace(self.maps_file)  # a guest reading it never sees half a file

    def _show_session(self, portal: str, target: str, target_index: int,
                      targets: int) -> None:
        """The SCSI host and iSCSI session of (`portal`, `target`), with a disk per LUN of
        that target (a kernel logs in once per target and portal)."""
        host_number = 10 + self.portals.index(portal) * targets + target_index
        address, port = portal.rsplit(":", 1)
        session = self.tree.iscsi_session(
            self.tree.scsi_host(f"devices/platform/host{host_number}"),
            host_number - 9, target, address, int(port))
        for lun in (lun for lun in self.luns if lun.target == target):
            index = self._index(portal, lun)
            self.tree.scsi_disk(_disk_name(index), f"{session}/target{host_number}:0:0/"
                                f"{host_number}:0:0:{lun.lun}",
                                major=8, minor=16 * index, state="running",
                                sg=f"sg{index}",
                                inquiry={"vendor": "IET     ", "model": "VIRTUAL-DISK    ",
                                         "vpd_pg83": self.pages[lun.name]})

    @property
    def environment(self) -> dict[str, str]:
        """What a process of this node needs to reach the kernel's devices (the shim)."""
        if self.nexus is None:
            raise RuntimeError("the lab kernel is not started")
        return self.nexus.environment

    def stop(self) -> None:
        if self.nexus is not None:
            self.nexus.stop()
            self.nexus = None


def _disk_name(index: int) -> str:
    """sda, sdb, ... sdz, sdaa, ... as the kernel names SCSI disks."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "sd" + letters
