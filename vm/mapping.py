"""Which configured LUNs a guest uses: its domain XML's disks mapped to LUN names, merged with
the LUNs its config entry lists.

A disk is mapped only on an exact match (alias, WWID in any spelling, DRBD minor or resource,
iSCSI target and LUN). A disk that matches nothing, or more than one LUN, is reported as
unmapped with the reason; it is never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stonewall.config.model import ClusterConfig, Lun
from stonewall.storage.multipath.errors import InvalidWwid
from stonewall.storage.multipath.wwid import Wwid, parse_wwid
from stonewall.vm.disks import (
    DiskRef, DomainXmlError, DrbdMinor, DrbdVolume, IscsiLun, MapperName, NotFenced, OtherBlock,
    WwidLink, parse_domain_disks)


class UnknownGuest(KeyError):
    """The guest is neither configured nor described by a domain XML."""


class UnmappedReason(Enum):
    NOT_FENCED = "storage stonewall does not fence"
    UNKNOWN_BLOCK = "block device whose name identifies no LUN"
    UNKNOWN_MAP = "multipath map that is no configured LUN's alias or WWID"
    UNKNOWN_WWID = "WWID of no configured LUN"
    UNKNOWN_DRBD = "DRBD device of no configured resource"
    UNKNOWN_ISCSI = "iSCSI target and LUN of no configured LUN"
    AMBIGUOUS = "matches more than one configured LUN"


@dataclass(frozen=True)
class MappedDisk:
    disk: DiskRef
    luns: tuple[str, ...]  # one LUN, or a DRBD resource's arbitrating LUNs


@dataclass(frozen=True)
class UnmappedDisk:
    disk: DiskRef
    reason: UnmappedReason

    @property
    def may_be_shared(self) -> bool:
        """A block or iSCSI disk we could not identify may be shared storage nobody guards."""
        return self.reason is not UnmappedReason.NOT_FENCED

    def describe(self) -> str:
        return f"disk {self.disk.describe()}: {self.reason.value}"


@dataclass(frozen=True)
class GuestStorage:
    """A guest's LUNs and what could not be mapped."""

    guest: str
    configured: bool  # the guest has an entry in the config
    luns: tuple[str, ...]  # configured LUNs first, then those found in the XML, no repeats
    mapped: tuple[MappedDisk, ...] = ()
    unmapped: tuple[UnmappedDisk, ...] = ()

    @property
    def managed(self) -> bool:
        """stonewall guards this guest: it is configured or one of its disks is a known LUN."""
        return self.configured or bool(self.luns)

    @property
    def unidentified(self) -> tuple[UnmappedDisk, ...]:
        """Unmapped disks that may be shared storage (they make placement "cannot tell")."""
        return tuple(d for d in self.unmapped if d.may_be_shared)

    @property
    def not_fenced(self) -> tuple[UnmappedDisk, ...]:
        """Files, pool volumes and other storage that is not ours to guard."""
        return tuple(d for d in self.unmapped if not d.may_be_shared)

    @property
    def guest_reservation_luns(self) -> tuple[str, ...]:
        """LUNs the guest itself issues SCSI reservations on (device='lun' + <reservations>)."""
        return tuple(dict.fromkeys(
            lun for m in self.mapped if m.disk.guest_reservations for lun in m.luns))


def guest_luns(config: ClusterConfig, guest_name: str, domain_xml: str | None) -> GuestStorage:
    """The LUNs of `guest_name`: its config entry's `luns` merged with its XML's disks."""
    guest = next((g for g in config.guests if g.name == guest_name), None)
    if guest is None and domain_xml is None:
        raise UnknownGuest(guest_name)
    configured = guest.luns if guest is not None else ()
    if domain_xml is None:
        return GuestStorage(guest_name, guest is not None, configured)
    domain = parse_domain_disks(domain_xml)
    if domain.name != guest_name:
        raise DomainXmlError(f"domain XML describes {domain.name!r}, not {guest_name!r}")
    results = [map_disk(config, disk) for disk in domain.disks]
    mapped = tuple(r for r in results if isinstance(r, MappedDisk))
    unmapped = tuple(r for r in results if isinstance(r, UnmappedDisk))
    luns = tuple(dict.fromkeys([*configured, *(lun for m in mapped for lun in m.luns)]))
    return GuestStorage(guest_name, guest is not None, luns, mapped, unmapped)


def map_disk(config: ClusterConfig, disk: DiskRef) -> MappedDisk | UnmappedDisk:
    """The configured LUN(s) one disk uses, or why it has none."""
    source = disk.source
    if isinstance(source, NotFenced):
        return UnmappedDisk(disk, UnmappedReason.NOT_FENCED)
    if isinstance(source, OtherBlock):
        return UnmappedDisk(disk, UnmappedReason.UNKNOWN_BLOCK)
    if isinstance(source, MapperName):
        by_alias = [lun for lun in config.luns if lun.alias == source.name]
        # With user_friendly_names off the map is named after its WWID (multipath.md 2.3).
        candidates = by_alias or _luns_with_wwid(config, source.name)
        return _one_lun(disk, candidates, UnmappedReason.UNKNOWN_MAP)
    if isinstance(source, WwidLink):
        return _one_lun(disk, _luns_with_wwid(config, source.link), UnmappedReason.UNKNOWN_WWID)
    if isinstance(source, IscsiLun):
        return _one_lun(disk, _luns_at_iscsi(config, source), UnmappedReason.UNKNOWN_ISCSI)
    return _drbd(config, disk, source)


def _luns_with_wwid(config: ClusterConfig, spelled: str) -> list[Lun]:
    try:
        wanted = parse_wwid(spelled)
    except InvalidWwid:
        return []
    return [lun for lun in config.luns if lun.wwid and _same_lun(lun.wwid, wanted)]


def _same_lun(configured: str, wanted: Wwid) -> bool:
    try:
        return parse_wwid(configured).matches(wanted)
    except InvalidWwid:
        return False  # config validation reports it; an unreadable WWID matches nothing


def _luns_at_iscsi(config: ClusterConfig, source: IscsiLun) -> list[Lun]:
    # iSCSI names are case-insensitive (RFC 3720 3.2.6.1: normalised to lower case).
    target = source.target.lower()
    return [lun for lun in config.luns
            if lun.iscsi is not None and lun.iscsi.target.lower() == target
            and lun.iscsi.lun == source.lun]


def _one_lun(disk: DiskRef, candidates: list[Lun], reason: UnmappedReason) -> MappedDisk | UnmappedDisk:
    if len(candidates) > 1:
        return UnmappedDisk(disk, UnmappedReason.AMBIGUOUS)
    if not candidates:
        return UnmappedDisk(disk, reason)
    return MappedDisk(disk, (candidates[0].name,))


def _drbd(config: ClusterConfig, disk: DiskRef, source: DrbdMinor | DrbdVolume) -> MappedDisk | UnmappedDisk:
    if isinstance(source, DrbdMinor):
        resources = [r for r in config.drbd_resources if source.minor in r.minors]
    else:
        resources = [r for r in config.drbd_resources if r.name == source.resource]
    if len(resources) > 1:
        return UnmappedDisk(disk, UnmappedReason.AMBIGUOUS)
    if not resources or not resources[0].luns:
        return UnmappedDisk(disk, UnmappedReason.UNKNOWN_DRBD)
    return MappedDisk(disk, resources[0].luns)
