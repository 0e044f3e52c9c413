"""Discovery straight from sysfs: needs neither udev nor multipathd, only a mounted /sys.

What is read (reference/multipath.md section 1):
- `block/dm-N/dm/uuid`: `mpath-<wwid>` marks a multipath map; `dm/name`, `dm/suspended`;
- `block/dm-N/slaves/`: the map's path devices (may lag behind right after a reload);
- per path `block/sdX/device/` (the SCSI device H:C:T:L): `state`, `vpd_pg83` (binary,
  preferred) or `wwid`, `type`, `scsi_generic/sgN`;
- transport: the device's ancestors `sessionN` -> `class/iscsi_session/sessionN/targetname`
  and `class/iscsi_connection/connectionN:0/persistent_*`; `rport-H:C-N` ->
  `class/fc_remote_ports/rport-H:C-N/{node,port}_name`.
Every value is read once; a device that disappears mid-scan leaves its fields None.
"""
from __future__ import annotations

import os
from pathlib import Path

from stonewall.storage.multipath.errors import SysfsUnavailable
from stonewall.storage.multipath.scsi_tree import HCTL, is_scsi_disk, link_from_ancestors
from stonewall.storage.multipath.types import (Discovery, MultipathMap, PathDevice,
                                               kernel_name_order)
from stonewall.storage.multipath.wwid import device_wwid, wwid_from_dm_uuid


def discover_sysfs(sysfs_root: str | os.PathLike[str] = "/sys") -> Discovery:
    """All multipath maps and SCSI disks under `sysfs_root`.
    Raises SysfsUnavailable when it has no `block/` directory."""
    root = Path(sysfs_root)
    block = root / "block"
    if not block.is_dir():
        raise SysfsUnavailable(f"{block} is not a directory: is sysfs mounted at {root}?")
    maps: list[MultipathMap] = []
    disks: list[PathDevice] = []
    for name in _list(block):
        if name.startswith("dm-"):
            found = _read_map(root, name)
            if found is not None:
                maps.append(found)
        else:
            device = block / name / "device"
            scsi_dir = _resolve(device)
            if is_scsi_disk(scsi_dir.name if scsi_dir else None, _text(device / "type")):
                disks.append(read_path_device(root, name))
    return Discovery.build(f"sysfs:{root}", maps, disks)


def read_path_device(sysfs_root: str | os.PathLike[str], name: str) -> PathDevice:
    """The facts of block device `name` (e.g. 'sdc') as sysfs shows them now."""
    root = Path(sysfs_root)
    device = root / "block" / name / "device"
    scsi_dir = _resolve(device)
    hctl = scsi_dir.name if scsi_dir is not None and HCTL.fullmatch(scsi_dir.name) else None
    sg_nodes = _list(device / "scsi_generic")
    return PathDevice(
        name=name,
        hctl=hctl,
        device_state=_text(device / "state"),
        sg=sg_nodes[0] if sg_nodes else None,
        wwid=device_wwid(_bytes(device / "vpd_pg83"), _text(device / "wwid")),
        link=link_from_ancestors(_ancestors(root, scsi_dir),
                                 lambda cls, dev, attr: _text(root / "class" / cls / dev / attr)),
    )


def _read_map(root: Path, dm_name: str) -> MultipathMap | None:
    dm_dir = root / "block" / dm_name
    wwid = wwid_from_dm_uuid(_text(dm_dir / "dm" / "uuid") or "")
    name = _text(dm_dir / "dm" / "name")
    if wwid is None or name is None:
        return None  # LVM, crypt, a kpartx partition, or a map being torn down
    suspended = _text(dm_dir / "dm" / "suspended")
    return MultipathMap(
        name=name,
        wwid=wwid,
        dm_name=dm_name,
        paths=tuple(read_path_device(root, slave) for slave in _list(dm_dir / "slaves")),
        suspended=None if suspended is None else suspended == "1",
    )


def _ancestors(root: Path, scsi_dir: Path | None) -> list[str]:
    """Names of the directories above the SCSI device, nearest first."""
    if scsi_dir is None:
        return []
    try:
        relative = scsi_dir.relative_to((root / "devices").resolve())
    except ValueError:
        return []
    return list(reversed(relative.parts[:-1]))


def _resolve(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except OSError:
        return None


def _list(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory), key=kernel_name_order)
    except OSError:
        return []


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # absent, or the kernel refuses (EINVAL: no such VPD page)
        return None


def _text(path: Path) -> str | None:
    """An attribute without its trailing newline and INQUIRY padding; None if unreadable."""
    raw = _bytes(path)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
    return text or None
