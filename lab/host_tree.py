"""A host's sysfs and udev database in a directory, shaped as the kernel and udevd lay them
out (reference/multipath.md sections 1-2): what the lab's kernel stand-in shows its node's
service, and what the multipath tests build their hosts with.

Layout, as on a real host: device directories live under sys/devices/ with a `uevent`
file and a relative `subsystem` link; sys/block/, sys/class/<class>/ and sys/bus/scsi/
hold relative links to them; udev's database is run/udev/data/b<major>:<minor> with
`S:` (links), `E:` (properties), `G:` (tags), `I:` (initialised) lines. So the tree can be
read by stonewall's sysfs code directly and by libudev once bind-mounted at /sys and
/run/udev.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Properties the kernel puts in `uevent`, not udev in its database.
_KERNEL_KEYS = {"DEVPATH", "DEVNAME", "DEVTYPE", "MAJOR", "MINOR", "SUBSYSTEM", "DISKSEQ",
                "USEC_INITIALIZED", "DEVLINKS", "TAGS", "CURRENT_TAGS"}
# Directories that group a device's class children; they are not devices (no uevent).
_CONTAINERS = {"block", "scsi_generic", "iscsi_session", "iscsi_connection",
               "fc_remote_ports"}


@dataclass(frozen=True)
class UdevRecord:
    """What `udevadm info` printed for one device."""

    devpath: str
    links: tuple[str, ...]
    properties: dict[str, str]


def vpd_pg83(*designators: tuple[int, int, int, bytes]) -> bytes:
    """A VPD page 0x83 (SPC-4 7.8.6) from (code set, association, type, payload)."""
    body = b"".join(bytes([code_set, (association << 4) | designator_type, 0, len(payload)])
                    + payload for code_set, association, designator_type, payload in designators)
    return bytes([0, 0x83]) + len(body).to_bytes(2, "big") + body


def naa_designator(hex_digits: str) -> tuple[int, int, int, bytes]:
    return 1, 0, 3, bytes.fromhex(hex_digits)  # binary code set, LUN association, NAA


def t10_designator(text: str) -> tuple[int, int, int, bytes]:
    return 2, 0, 1, text.encode("ascii")  # ASCII code set, LUN association, T10 vendor id


def target_port_designator(port: int) -> tuple[int, int, int, bytes]:
    # Relative target port (type 4) of association 1 (target port): not a LUN identity.
    return 1, 1, 4, port.to_bytes(4, "big")


class HostTree:
    """sys/ and run/udev/ of one host under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sys = root / "sys"
        self.udev_data = root / "run" / "udev" / "data"
        for directory in ("block", "class/block", "bus/scsi/devices", "devices"):
            (self.sys / directory).mkdir(parents=True, exist_ok=True)
        self.udev_data.mkdir(parents=True, exist_ok=True)

    # ---- building blocks ------------------------------------------------------------
    def node(self, devpath: str, *, subsystem: str | None = None, bus: bool = False,
             uevent: dict[str, str] | None = None) -> Path:
        """A device directory (parents get an empty uevent, as every kernel device has)."""
        directory = self.sys / devpath.strip("/")
        parent = directory.parent
        while parent != self.sys / "devices" and parent != self.sys:
            parent.mkdir(parents=True, exist_ok=True)
            if parent.name not in _CONTAINERS:
                (parent / "uevent").touch()
            parent = parent.parent
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "uevent").write_text("".join(f"{k}={v}\n" for k, v in (uevent or {}).items()))
        if subsystem:
            home = self.sys / ("bus" if bus else "class") / subsystem
            listing = home / "devices" if bus else home
            listing.mkdir(parents=True, exist_ok=True)
            relative_link(directory / "subsystem", home)
            relative_link(listing / directory.name, directory)
        return directory

    def attributes(self, directory: Path, values: dict[str, str | bytes]) -> None:
        for name, value in values.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            # sysfs text attributes end with a newline; binary ones (vpd_pg83) do not.
            path.write_bytes(value if isinstance(value, bytes) else (value + "\n").encode())

    def udev_record(self, major: int, minor: int, links: tuple[str, ...],
                    properties: dict[str, str]) -> None:
        lines = [f"S:{link}" for link in links]
        lines += [f"E:{k}={v}" for k, v in properties.items() if k not in _KERNEL_KEYS]
        lines += ["I:1000000", "G:systemd", "Q:systemd", "V:1"]
        (self.udev_data / f"b{major}:{minor}").write_text("\n".join(lines) + "\n")

    # ---- devices --------------------------------------------------------------------
    def scsi_disk(self, name: str, scsi_devpath: str, *, major: int, minor: int,
                  state: str, sg: str | None, inquiry: dict[str, str | bytes],
                  peripheral_type: str = "0", udev: dict[str, str] | None = None,
                  links: tuple[str, ...] = ()) -> Path:
        """A SCSI device H:C:T:L at `scsi_devpath` (its target directory above it) with its
        sd block device `name` and optional sg node."""
        target = scsi_devpath.rstrip("/").rsplit("/", 1)[0]
        self.node(target, subsystem="scsi", bus=True, uevent={"DEVTYPE": "scsi_target"})
        scsi = self.node(scsi_devpath, subsystem="scsi", bus=True,
                         uevent={"DEVTYPE": "scsi_device", "DRIVER": "sd"})
        self.attributes(scsi, {"state": state, "type": peripheral_type, **inquiry})
        if sg:
            sg_minor = int(sg[2:])
            sg_dir = self.node(f"{scsi_devpath}/scsi_generic/{sg}", subsystem="scsi_generic",
                               uevent={"MAJOR": "21", "MINOR": str(sg_minor), "DEVNAME": sg})
            self.attributes(sg_dir, {"dev": f"21:{sg_minor}"})
        block = self.node(f"{scsi_devpath}/block/{name}", subsystem="block", uevent={
            "MAJOR": str(major), "MINOR": str(minor), "DEVNAME": name, "DEVTYPE": "disk"})
        self.attributes(block, {"dev": f"{major}:{minor}"})
        (block / "holders").mkdir(exist_ok=True)
        relative_link(block / "device", scsi)
        relative_link(self.sys / "block" / name, block)
        if udev is not None:
            self.udev_record(major, minor, links, udev)
        return block

    def dm_device(self, dm_name: str, *, name: str, uuid: str, slaves: tuple[str, ...],
                  major: int, minor: int, udev: UdevRecord | None = None) -> Path:
        block = self.node(f"devices/virtual/block/{dm_name}", subsystem="block", uevent={
            "MAJOR": str(major), "MINOR": str(minor), "DEVNAME": dm_name, "DEVTYPE": "disk"})
        self.attributes(block, {"dev": f"{major}:{minor}", "dm/name": name, "dm/uuid": uuid,
                                "dm/suspended": "0", "dm/use_blk_mq": "1"})
        (block / "slaves").mkdir(exist_ok=True)
        for slave in slaves:
            slave_dir = (self.sys / "block" / slave).resolve()
            relative_link(block / "slaves" / slave, slave_dir)
            (slave_dir / "holders").mkdir(exist_ok=True)
            relative_link(slave_dir / "holders" / dm_name, block)
        relative_link(self.sys / "block" / dm_name, block)
        if udev is not None:
            self.udev_record(major, minor, udev.links, udev.properties)
        return block

    def iscsi_session(self, host_devpath: str, sid: int, target: str, address: str,
                      port: int) -> str:
        """An iSCSI session under a SCSI host; returns its devpath (parent of targets)."""
        session = f"{host_devpath}/session{sid}"
        self.node(session)
        self.attributes(self.node(f"{session}/iscsi_session/session{sid}",
                                  subsystem="iscsi_session"),
                        {"targetname": target, "tpgt": "1", "recovery_tmo": "5"})
        connection = f"connection{sid}:0"
        self.attributes(self.node(f"{session}/{connection}/iscsi_connection/{connection}",
                                  subsystem="iscsi_connection"),
                        {"persistent_address": address, "persistent_port": str(port),
                         "address": address, "port": str(port)})
        return session

    def fc_rport(self, host_devpath: str, rport: str, node_name: str, port_name: str) -> str:
        """An FC remote port under a SCSI host; returns its devpath (parent of targets)."""
        devpath = f"{host_devpath}/{rport}"
        self.node(devpath)
        self.attributes(self.node(f"{devpath}/fc_remote_ports/{rport}",
                                  subsystem="fc_remote_ports"),
                        {"node_name": node_name, "port_name": port_name,
                         "port_state": "Online"})
        return devpath

    def scsi_host(self, devpath: str) -> str:
        self.node(devpath, subsystem="scsi", bus=True, uevent={"DEVTYPE": "scsi_host"})
        return devpath


def relative_link(link: Path, target: Path) -> None:
    """A relative symlink, as sysfs has: it must still resolve once the tree is /sys."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(os.path.relpath(target, link.parent))
