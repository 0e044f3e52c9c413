"""Facts about the kernel's SCSI device tree that sysfs and udev discovery share: what a
SCSI device is called, and how a path reaches its target (iSCSI session or FC rport)."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from stonewall.storage.multipath.types import FcLink, IscsiLink, Link

HCTL = re.compile(r"\d+:\d+:\d+:\d+")
_SESSION = re.compile(r"session(\d+)")
_RPORT = re.compile(r"rport-\d+:\d+-\d+")
# SCSI peripheral device type 0 = direct access block device (SPC-4 table 49); sysfs
# `device/type` holds it. CD-ROMs (5) and enclosures are not LUNs we fence on.
_DIRECT_ACCESS_TYPE = "0"

# Reads /sys/class/<class>/<name>/<attribute> (stripped text) or None when absent.
ClassAttributeReader = Callable[[str, str, str], "str | None"]


def is_scsi_disk(scsi_device_name: str | None, peripheral_type: str | None) -> bool:
    """True for a SCSI direct-access device: its device directory is named H:C:T:L (virtio,
    NVMe, loop and zram disks are not) and its peripheral type, where readable, is 0."""
    if scsi_device_name is None or not HCTL.fullmatch(scsi_device_name):
        return False
    return peripheral_type is None or peripheral_type == _DIRECT_ACCESS_TYPE


def link_from_ancestors(ancestors: Sequence[str], read: ClassAttributeReader) -> Link | None:
    """The transport of a SCSI device from the names of its parent directories in the
    device tree (nearest first), as multipath-tools finds it (reference 1.5): an ancestor
    `sessionN` is iSCSI, `rport-H:C-N` is FC. None for other transports (SAS, local)."""
    for name in ancestors:
        session = _SESSION.fullmatch(name)
        if session:
            connection = f"connection{session.group(1)}:0"
            # HW-offload drivers may not export persistent_*; the live address is second best.
            address = (read("iscsi_connection", connection, "persistent_address")
                       or read("iscsi_connection", connection, "address"))
            port = (read("iscsi_connection", connection, "persistent_port")
                    or read("iscsi_connection", connection, "port"))
            return IscsiLink(session=name,
                             target=read("iscsi_session", name, "targetname"),
                             address=address,
                             port=int(port) if port and port.isdigit() else None)
        if _RPORT.fullmatch(name):
            return FcLink(rport=name,
                          node_name=read("fc_remote_ports", name, "node_name"),
                          port_name=read("fc_remote_ports", name, "port_name"))
    return None
