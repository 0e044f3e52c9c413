"""What discovery finds, whatever the source (sysfs, udev, multipathd, multipath -ll).

Fields a source cannot know are None (multipathd knows no sg node; sysfs knows no
path checker result). Device names are kernel names ('sdc', 'sg3', 'dm-3'); the /dev
paths are properties.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

from stonewall.storage.multipath.wwid import Wwid


class PathState(str, Enum):
    """Whether a path can carry commands now, as far as the source can tell."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


# sysfs `device/state` values (kernel scsi_sysfs.c sdev_states[]); only 'running' accepts
# commands. multipathd's dev_st says 'running'/'offline'/'unknown'.
_RUNNING = "running"
# multipathd path checker states (checkers.h) after which the path is not used. 'ghost'
# (ALUA standby) is not here: a standby port still executes PERSISTENT RESERVE IN/OUT.
_CHECKER_DOWN = frozenset({"faulty", "shaky", "i/o timeout", "disconnected", "delayed"})


@dataclass(frozen=True)
class IscsiLink:
    """An iSCSI path's session (`/sys/class/iscsi_session/sessionN`)."""

    session: str | None  # 'session1'; None when only the target is known (multipathd)
    target: str | None  # target IQN
    address: str | None = None  # portal address (connection persistent_address)
    port: int | None = None


@dataclass(frozen=True)
class FcLink:
    """A Fibre Channel path's remote port (`/sys/class/fc_remote_ports/rport-H:C-N`)."""

    rport: str | None
    node_name: str | None  # target WWNN, e.g. '0x5000…'
    port_name: str | None  # target WWPN


Link = IscsiLink | FcLink


@dataclass(frozen=True)
class PathDevice:
    """One SCSI disk: one I_T nexus to a LUN."""

    name: str  # block device, 'sdc'
    hctl: str | None  # 'H:C:T:L'
    device_state: str | None  # sysfs state ('running', 'offline', ...) or multipathd dev_st
    sg: str | None = None  # its scsi_generic node, 'sg3'
    wwid: Wwid | None = None
    link: Link | None = None
    dm_state: str | None = None  # multipathd: 'active' | 'failed' (dm's view of the path)
    checker_state: str | None = None  # multipathd: 'ready', 'faulty', 'ghost', ...

    @property
    def block_device(self) -> str:
        return f"/dev/{self.name}"

    @property
    def sg_device(self) -> str | None:
        return f"/dev/{self.sg}" if self.sg else None

    @property
    def state(self) -> PathState:
        """DOWN if any source says so; UP only if the device state says running."""
        if self.dm_state == "failed" or self.checker_state in _CHECKER_DOWN:
            return PathState.DOWN
        if self.device_state is None or self.device_state == "unknown":
            return PathState.UNKNOWN
        return PathState.UP if self.device_state == _RUNNING else PathState.DOWN


@dataclass(frozen=True)
class MultipathMap:
    """One dm-multipath map and the path devices in its table."""

    name: str  # dm name: an alias, 'mpatha', or the WWID (user_friendly_names no)
    wwid: Wwid
    dm_name: str | None  # 'dm-3' (None only from sources that do not print it)
    paths: tuple[PathDevice, ...]
    suspended: bool | None = None  # a suspended map answers SG_IO with EAGAIN

    @property
    def device(self) -> str:
        return f"/dev/mapper/{self.name}"

    @property
    def dm_device(self) -> str | None:
        return f"/dev/{self.dm_name}" if self.dm_name else None


@dataclass(frozen=True)
class Discovery:
    """Every multipath map and every SCSI disk outside a map, as one source saw them."""

    source: str  # 'sysfs:/sys', 'udev', 'multipathd', 'multipath -ll'
    maps: tuple[MultipathMap, ...]
    disks: tuple[PathDevice, ...]  # SCSI disks that are in no map

    @classmethod
    def build(cls, source: str, maps: list[MultipathMap],
              scsi_disks: list[PathDevice]) -> "Discovery":
        """Sorted maps, and the SCSI disks not claimed by any of them."""
        claimed = {path.name for m in maps for path in m.paths}
        return cls(source,
                   tuple(sorted(maps, key=lambda m: kernel_name_order(m.dm_name or m.name))),
                   tuple(sorted((d for d in scsi_disks if d.name not in claimed),
                                key=lambda d: kernel_name_order(d.name))))

    def with_daemon_states(self, daemon: "Discovery") -> "Discovery":
        """This discovery with dm and checker states of same-named paths taken from
        `daemon` (multipathd's view): sysfs knows sg nodes, only multipathd knows
        whether dm failed a path."""
        states = {p.name: (p.dm_state, p.checker_state)
                  for m in daemon.maps for p in m.paths}

        def overlay(path: PathDevice) -> PathDevice:
            if path.name not in states:
                return path
            dm_state, checker_state = states[path.name]
            return replace(path, dm_state=dm_state, checker_state=checker_state)

        return Discovery(
            f"{self.source}+{daemon.source}",
            tuple(replace(m, paths=tuple(overlay(p) for p in m.paths)) for m in self.maps),
            self.disks)


def kernel_name_order(name: str) -> tuple[int, str, int]:
    """Sort key in kernel naming order: sdz < sdaa, dm-2 < dm-10."""
    match = re.fullmatch(r"(\D*?)(\d*)", name)
    stem, number = (match.group(1), match.group(2)) if match else (name, "")
    return len(stem), stem, int(number) if number else -1
