"""Discovery through udev's database, with pyudev (libudev).

udev adds what sysfs lacks: the identity multipath itself used (`ID_SERIAL`, its default
uid_attribute) and the map names its rules recorded (`DM_UUID`, `DM_NAME`). Device tree
facts (H:C:T:L, state, sg node, transport) come from the same devices' sysfs attributes,
read through pyudev. udev keeps no list of a map's paths; they come from the map's
`slaves/` directory.

udev is unavailable when pyudev or libudev is missing or when udev's database
(`/run/udev/data`) does not exist: without it libudev still lists devices but knows none
of the properties, and every map would look like a plain dm device.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from stonewall.storage.multipath.errors import UdevUnavailable
from stonewall.storage.multipath.scsi_tree import HCTL, is_scsi_disk, link_from_ancestors
from stonewall.storage.multipath.types import (Discovery, MultipathMap, PathDevice,
                                               kernel_name_order)
from stonewall.storage.multipath.wwid import (Wwid, device_wwid, multipath_wwid,
                                              wwid_from_dm_uuid)

try:
    import pyudev
except ImportError:  # pyudev absent, or libudev.so.1 absent (pyudev loads it on import)
    pyudev = None

if TYPE_CHECKING:
    from pyudev import Context, Device


def discover_udev(context: Context | None = None) -> Discovery:
    """All multipath maps and SCSI disks that udev knows.
    Raises UdevUnavailable when udev cannot be used on this host."""
    if pyudev is None:
        raise UdevUnavailable("pyudev (or libudev) is not installed: Debian packages "
                              "python3-pyudev and libudev1")
    context = context or pyudev.Context()
    database = os.path.join(context.run_path, "data")
    if not os.path.isdir(database):
        raise UdevUnavailable(f"udev database {database} does not exist: udevd is not "
                              "running on this host (containers often lack it)")
    maps: list[MultipathMap] = []
    disks: list[PathDevice] = []
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        if device.sys_name.startswith("dm-"):
            found = _read_map(context, device)
            if found is not None:
                maps.append(found)
        else:
            scsi = device.find_parent("scsi", "scsi_device")
            if scsi is not None and is_scsi_disk(scsi.sys_name, _attribute(scsi, "type")):
                disks.append(_read_path(context, device))
    return Discovery.build("udev", maps, disks)


def _read_map(context: Context, device: Device) -> MultipathMap | None:
    # DM_UUID/DM_NAME come from dm's udev rules; the sysfs attributes stand in for a map
    # whose event udev has not processed yet.
    uuid = device.properties.get("DM_UUID") or _attribute(device, "dm/uuid") or ""
    wwid = wwid_from_dm_uuid(uuid)
    name = device.properties.get("DM_NAME") or _attribute(device, "dm/name")
    if wwid is None or name is None:
        return None  # not a multipath map, or one being torn down
    suspended = device.properties.get("DM_SUSPENDED") or _attribute(device, "dm/suspended")
    try:
        slaves = sorted(os.listdir(os.path.join(device.sys_path, "slaves")),
                        key=kernel_name_order)
    except OSError:
        slaves = []
    return MultipathMap(
        name=name,
        wwid=wwid,
        dm_name=device.sys_name,
        paths=tuple(_read_slave(context, slave) for slave in slaves),
        suspended=None if suspended is None else suspended == "1",
    )


def _read_slave(context: Context, name: str) -> PathDevice:
    try:
        device = pyudev.Devices.from_name(context, "block", name)
    except pyudev.DeviceNotFoundError:  # removed between listing and reading
        return PathDevice(name=name, hctl=None, device_state=None)
    return _read_path(context, device)


def _read_path(context: Context, device: Device) -> PathDevice:
    scsi = device.find_parent("scsi", "scsi_device")
    if scsi is None:
        return PathDevice(name=device.sys_name, hctl=None, device_state=None,
                          wwid=_udev_wwid(device))
    sg_nodes = sorted((sg.sys_name for sg in
                       context.list_devices(subsystem="scsi_generic").match_parent(scsi)),
                      key=kernel_name_order)

    def read_class_attribute(subsystem: str, name: str, attribute: str) -> str | None:
        try:
            return _attribute(pyudev.Devices.from_name(context, subsystem, name), attribute)
        except pyudev.DeviceNotFoundError:
            return None

    return PathDevice(
        name=device.sys_name,
        hctl=scsi.sys_name if HCTL.fullmatch(scsi.sys_name) else None,
        device_state=_attribute(scsi, "state"),
        sg=sg_nodes[0] if sg_nodes else None,
        wwid=_udev_wwid(device) or device_wwid(scsi.attributes.get("vpd_pg83"),
                                               _attribute(scsi, "wwid")),
        link=link_from_ancestors([parent.sys_name for parent in scsi.ancestors],
                                 read_class_attribute),
    )


def _udev_wwid(device: Device) -> Wwid | None:
    """`ID_SERIAL`, the WWID multipath uses by default, where udev's SCSI rules (sg3_utils or
    scsi_id) set it; for other buses (ATA: model_serial) it is no designator."""
    if device.properties.get("ID_BUS") != "scsi":
        return None
    return multipath_wwid(device.properties.get("ID_SERIAL") or "")


def _attribute(device: Device, name: str) -> str | None:
    raw = device.attributes.get(name)
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace").strip()
    return text or None
