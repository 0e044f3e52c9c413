"""A domain XML's disks, as references to the storage they name.

Only what the XML says is read here; which configured LUN a reference means is decided in
`stonewall.vm.mapping`. Disk forms (reference vm.md section 4, multipath.md sections 1.2-2.1):
block disks on multipath maps, by-id links, by-path iSCSI links and DRBD devices; iSCSI
network disks; everything else (files, pool volumes, other network protocols, empty drives)
is storage stonewall does not fence.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from stonewall.config.model import Portal
from stonewall.messages import quoted

ISCSI_DEFAULT_PORT = 3260


class DomainXmlError(ValueError):
    """The text is not a libvirt domain definition we can read."""


@dataclass(frozen=True)
class MapperName:
    """/dev/mapper/NAME or /dev/disk/by-id/dm-name-NAME: a multipath alias, or the WWID itself
    when user_friendly_names is off."""

    name: str


@dataclass(frozen=True)
class WwidLink:
    """A /dev/disk/by-id link that spells the LUN's WWID: `dm-uuid-mpath-<wwid>`,
    `scsi-<wwid>` or `wwn-0x<hex>` (partition suffixes and kpartx `partN-` prefixes removed).
    `stonewall.storage.multipath.wwid` reads the spelling."""

    link: str


@dataclass(frozen=True)
class DrbdMinor:
    """/dev/drbdN."""

    minor: int


@dataclass(frozen=True)
class DrbdVolume:
    """/dev/drbd/by-res/RESOURCE/VOLUME (or /dev/drbd/by-res/RESOURCE, DRBD 8.3 style)."""

    resource: str
    volume: int | None


@dataclass(frozen=True)
class IscsiLun:
    """An iSCSI LUN, from a network disk or a /dev/disk/by-path/ip-...-iscsi-... link."""

    target: str
    lun: int
    portals: tuple[Portal, ...]


@dataclass(frozen=True)
class OtherBlock:
    """A block device path whose name says nothing about the LUN behind it (/dev/sdb,
    /dev/vg0/lv, /dev/disk/by-uuid/...)."""

    path: str


@dataclass(frozen=True)
class NotFenced:
    """Storage stonewall does not fence: a file, a pool volume, another network protocol, or a
    drive without medium. `kind` names which ("file", "volume", "network:rbd", "empty")."""

    kind: str
    location: str


DiskSource = MapperName | WwidLink | DrbdMinor | DrbdVolume | IscsiLun | OtherBlock | NotFenced


@dataclass(frozen=True)
class DiskRef:
    """One `<disk>` of a domain."""

    target: str  # guest-side name (vda, sda) or "disk#N" when the XML has no target
    device: str  # disk | lun | cdrom | floppy
    location: str  # the source as written: a path, "IQN/LUN", a file name
    source: DiskSource
    readonly: bool = False
    shareable: bool = False
    # `<reservations>` on the source: the guest issues SCSI PR itself through qemu-pr-helper
    # (managed='yes') or an external helper (managed='no'); reference vm.md section 4.
    guest_reservations: bool = False

    @property
    def passthrough(self) -> bool:
        """device='lun': the guest's SCSI commands reach the LUN unfiltered."""
        return self.device == "lun"

    def describe(self) -> str:
        return f"{self.target} ({self.location})"


@dataclass(frozen=True)
class DomainDisks:
    name: str
    uuid: str | None
    disks: tuple[DiskRef, ...]


# re.ASCII: `\d` would also match other scripts' digits ("٣"), which int() reads as numbers,
# but which no device name the kernel or udev makes ever contains.
_PARTITION_SUFFIX = re.compile(r"-part\d+$", re.ASCII)
_DRBD_MINOR = re.compile(r"^/dev/drbd(\d{1,10})$", re.ASCII)
_DRBD_BY_RES = re.compile(r"^/dev/drbd/by-res/([^/]+)(?:/(\d{1,10}))?$", re.ASCII)
_BY_PATH_ISCSI = re.compile(
    r"^ip-(?P<host>.+):(?P<port>\d{1,5})-iscsi-(?P<target>.+)-lun-(?P<lun>\d{1,10})$", re.ASCII)
# kpartx partition maps of a multipath map carry a "partN-" prefix (multipath.md 1.2).
_DM_UUID_PARTITION = re.compile(r"^dm-uuid-part\d+-mpath-", re.ASCII)
_NUMBER = re.compile(r"[0-9]{1,10}")  # a LUN or port as libvirt writes it; int() refuses 4301+ digits


def parse_domain_disks(domain_xml: str) -> DomainDisks:
    """Read the name, UUID and disks of a domain definition."""
    try:
        root = ElementTree.fromstring(domain_xml)
    except ElementTree.ParseError as error:
        raise DomainXmlError(f"domain XML does not parse: {error}") from error
    if root.tag != "domain":
        raise DomainXmlError(f"expected a <domain> document, got <{root.tag}>")
    name = (root.findtext("name") or "").strip()
    if not name:
        raise DomainXmlError("domain XML has no <name>")
    uuid = (root.findtext("uuid") or "").strip() or None
    disks = tuple(_disk(element, index) for index, element in enumerate(root.findall("devices/disk")))
    return DomainDisks(name, uuid, disks)


def classify_block_path(path: str) -> DiskSource:
    """What a block device path names. Partitions count as their whole LUN."""
    if path.startswith("/dev/mapper/"):
        return MapperName(_PARTITION_SUFFIX.sub("", path.removeprefix("/dev/mapper/")))
    if (match := _DRBD_MINOR.match(path)) is not None:
        return DrbdMinor(int(match.group(1)))
    if (match := _DRBD_BY_RES.match(path)) is not None:
        volume = match.group(2)
        return DrbdVolume(match.group(1), int(volume) if volume is not None else None)
    if path.startswith("/dev/disk/by-id/"):
        return _by_id(_PARTITION_SUFFIX.sub("", path.removeprefix("/dev/disk/by-id/")), path)
    if path.startswith("/dev/disk/by-path/"):
        link = _PARTITION_SUFFIX.sub("", path.removeprefix("/dev/disk/by-path/"))
        if (match := _BY_PATH_ISCSI.match(link)) is not None:
            portal = Portal(match.group("host").strip("[]"), int(match.group("port")))
            return IscsiLun(match.group("target"), int(match.group("lun")), (portal,))
    return OtherBlock(path)


def _by_id(link: str, path: str) -> DiskSource:
    if link.startswith("dm-name-"):
        return MapperName(link.removeprefix("dm-name-"))
    link = _DM_UUID_PARTITION.sub("dm-uuid-mpath-", link)
    if link.startswith(("dm-uuid-mpath-", "scsi-", "wwn-")):
        return WwidLink(link)
    return OtherBlock(path)


def _disk(element: ElementTree.Element, index: int) -> DiskRef:
    disk_type = element.get("type", "file")
    device = element.get("device", "disk")
    target = element.find("target")
    target_name = target.get("dev") if target is not None and target.get("dev") else f"disk#{index}"
    source = element.find("source")
    flags = {
        "readonly": element.find("readonly") is not None,
        "shareable": element.find("shareable") is not None,
        "guest_reservations": source is not None and source.find("reservations") is not None,
    }
    location, kind = _source(disk_type, source)
    return DiskRef(target_name, device, location, kind, **flags)


def _source(disk_type: str, source: ElementTree.Element | None) -> tuple[str, DiskSource]:
    if source is None:
        return "(no medium)", NotFenced("empty", "(no medium)")
    if disk_type == "block":
        path = source.get("dev")
        if not path:
            raise DomainXmlError("a type='block' disk has a <source> without dev=")
        return path, classify_block_path(path)
    if disk_type == "network":
        return _network_source(source)
    if disk_type == "volume":
        location = f"{source.get('pool', '?')}/{source.get('volume', '?')}"
        return location, NotFenced("volume", location)
    location = source.get("file") or source.get("dir") or source.get("dev") or "(no path)"
    return location, NotFenced(disk_type, location)


def _network_source(source: ElementTree.Element) -> tuple[str, DiskSource]:
    protocol = source.get("protocol", "")
    name = source.get("name", "")
    if protocol != "iscsi":
        return name, NotFenced(f"network:{protocol or '?'}", name)
    target, slash, lun_text = name.partition("/")
    if not target:
        raise DomainXmlError(f"iSCSI disk source name {quoted(name)} has no target IQN")
    # libvirt formatdomain: "If not specified, the default LUN is zero."
    if slash and not _NUMBER.fullmatch(lun_text):
        raise DomainXmlError(f"iSCSI disk source name {quoted(name)}: LUN {quoted(lun_text)} "
                             "is not a number")
    lun = int(lun_text) if slash else 0
    portals = tuple(Portal(host.get("name", ""), _port(host.get("port")))
                    for host in source.findall("host"))
    return name, IscsiLun(target, lun, portals)


def _port(text: str | None) -> int:
    if text is None:
        return ISCSI_DEFAULT_PORT
    if not _NUMBER.fullmatch(text):
        raise DomainXmlError(f"iSCSI host port {quoted(text)} is not a number")
    return int(text)
