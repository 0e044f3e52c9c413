"""A configured sg-transport LUN -> the devices that reach it on this host.

Persistent reservations belong to I_T nexuses, so the sg transport needs every path device
of the LUN, not only the map: `sg_persist` on /dev/sgN (or /dev/sdX) per path, and the map
device for mpathpersist. The WWID decides identity; an alias only selects a map and must
agree with the WWID when both are configured.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from stonewall.config.model import Lun, Transport
from stonewall.storage.multipath.errors import (AliasMismatch, AmbiguousLun, NotAnSgLun,
                                                UnknownLun)
from stonewall.storage.multipath.types import Discovery, MultipathMap, PathDevice, PathState
from stonewall.storage.multipath.wwid import Wwid, parse_wwid


@dataclass(frozen=True)
class LunPath:
    """One path device of a LUN."""

    path: PathDevice
    # False for a disk with the LUN's WWID outside the map: no multipath on this host, or
    # a path the map's table does not hold yet (slaves/ lags behind reloads). It is still
    # an I_T nexus to the LUN, so registration must cover it too.
    in_map: bool
    # Where device nodes live: /dev, except in labs whose fake devices sit elsewhere.
    dev_root: str = "/dev"

    @property
    def device(self) -> str:
        """The node to send PR commands to: /dev/sgN where known, else /dev/sdX."""
        return os.path.join(self.dev_root, self.path.sg or self.path.name)

    @property
    def state(self) -> PathState:
        return self.path.state


@dataclass(frozen=True)
class LunPaths:
    """Where one configured LUN is on this host."""

    lun: str
    wwid: Wwid
    map: MultipathMap | None  # None when the LUN is reached through plain disks only
    paths: tuple[LunPath, ...]

    @property
    def map_device(self) -> str | None:
        """/dev/mapper/NAME of the map (what mpathpersist takes)."""
        return self.map.device if self.map else None

    @property
    def dm_device(self) -> str | None:
        """/dev/dm-N of the map."""
        return self.map.dm_device if self.map else None

    @property
    def up_paths(self) -> tuple[LunPath, ...]:
        return tuple(p for p in self.paths if p.state is PathState.UP)


def resolve_lun_paths(lun: Lun, discovery: Discovery, *, dev_root: str = "/dev") -> LunPaths:
    """The map and path devices of an sg-transport `lun` in `discovery`, their device
    nodes under `dev_root`.

    Raises NotAnSgLun (wrong transport, or neither wwid nor alias), InvalidWwid (the
    configured wwid is no WWID), AliasMismatch (the alias is the map of another WWID),
    AmbiguousLun, UnknownLun (nothing on this host has the wwid/alias)."""
    if lun.transport is not Transport.SG:
        raise NotAnSgLun(f"LUN {lun.name!r} uses the {lun.transport.value} transport, not sg")
    if not lun.wwid and not lun.alias:
        raise NotAnSgLun(f"LUN {lun.name!r} names neither a wwid nor an alias")
    wanted = parse_wwid(lun.wwid) if lun.wwid else None
    by_alias = next((m for m in discovery.maps if m.name == lun.alias), None)
    if by_alias is not None and wanted is not None and not by_alias.wwid.matches(wanted):
        raise AliasMismatch(lun.name, by_alias.name, str(wanted), str(by_alias.wwid))
    by_wwid = [m for m in discovery.maps if wanted is not None and m.wwid.matches(wanted)]
    if len(by_wwid) > 1:
        raise AmbiguousLun(f"LUN {lun.name!r}: wwid {lun.wwid} matches the maps "
                           + ", ".join(m.name for m in by_wwid))
    found = by_alias or (by_wwid[0] if by_wwid else None)
    identity = found.wwid if found is not None else wanted
    outside = [disk for disk in discovery.disks
               if identity is not None and disk.wwid is not None and disk.wwid.matches(identity)]
    if identity is None or (found is None and not outside):
        raise UnknownLun(lun.name, lun.wwid, lun.alias)
    paths = [LunPath(path, in_map=True, dev_root=dev_root)
             for path in (found.paths if found else ())]
    paths += [LunPath(disk, in_map=False, dev_root=dev_root) for disk in outside]
    return LunPaths(lun=lun.name, wwid=identity, map=found, paths=tuple(paths))
