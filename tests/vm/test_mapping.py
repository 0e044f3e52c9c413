"""Domain XML -> disk references -> configured LUNs. The XML is what libvirt's test driver
gives back after defining the guest, so every disk form here is one libvirt accepts."""
from __future__ import annotations

import pytest

from stonewall.config.model import ClusterConfig, Portal
from stonewall.vm.disks import (
    DomainXmlError, DrbdMinor, DrbdVolume, IscsiLun, MapperName, NotFenced, OtherBlock, WwidLink,
    classify_block_path, parse_domain_disks)
from stonewall.vm.mapping import UnknownGuest, UnmappedReason, guest_luns

from stonewall.vm.libvirt_conn import LibvirtConnection

from .conftest import ARRAY, DATA0_WWID, DB1_WWID, block_disk, domain_xml, file_disk, iscsi_disk

DB1_HEX = DB1_WWID[1:]


def defined_xml(fresh_host: LibvirtConnection, name: str, disks: list[str]) -> str:
    """Define the guest in a test-driver host and return libvirt's XML of it."""
    conn = fresh_host
    conn.define(domain_xml(name, disks))
    return conn.xml(name)


@pytest.mark.parametrize("path, expected", [
    ("/dev/mapper/db1", MapperName("db1")),
    ("/dev/mapper/db1-part2", MapperName("db1")),
    ("/dev/disk/by-id/dm-name-db1", MapperName("db1")),
    (f"/dev/disk/by-id/dm-uuid-mpath-{DB1_WWID}", WwidLink(f"dm-uuid-mpath-{DB1_WWID}")),
    (f"/dev/disk/by-id/dm-uuid-part1-mpath-{DB1_WWID}", WwidLink(f"dm-uuid-mpath-{DB1_WWID}")),
    (f"/dev/disk/by-id/scsi-{DB1_WWID}", WwidLink(f"scsi-{DB1_WWID}")),
    (f"/dev/disk/by-id/wwn-0x{DB1_HEX}-part1", WwidLink(f"wwn-0x{DB1_HEX}")),
    ("/dev/drbd0", DrbdMinor(0)),
    ("/dev/drbd/by-res/r0/0", DrbdVolume("r0", 0)),
    ("/dev/drbd/by-res/r0", DrbdVolume("r0", None)),
    (f"/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-{ARRAY}-lun-2",
     IscsiLun(ARRAY, 2, (Portal("127.0.0.1", 3260),))),
    ("/dev/vg0/scratch", OtherBlock("/dev/vg0/scratch")),
    ("/dev/disk/by-uuid/0bff3b54", OtherBlock("/dev/disk/by-uuid/0bff3b54")),
])
def test_block_paths_name_what_they_point_at(path: str, expected: object) -> None:
    assert classify_block_path(path) == expected


def test_every_disk_form_of_a_defined_guest_is_read(fresh_host: LibvirtConnection) -> None:
    xml = defined_xml(fresh_host, "mixed", [
        block_disk("/dev/mapper/db1", "vda"),
        block_disk(f"/dev/disk/by-id/dm-uuid-mpath-{DB1_WWID}", "sda", device="lun", reservations=True),
        block_disk("/dev/drbd0", "vdb", shareable=True),
        iscsi_disk(f"{ARRAY}/2", "vdc", ("127.0.0.1:3260", "127.0.0.2:3261")),
        file_disk("/var/lib/libvirt/images/scratch.qcow2", "vdd"),
    ])
    domain = parse_domain_disks(xml)
    assert domain.name == "mixed" and domain.uuid
    by_target = {d.target: d for d in domain.disks}
    assert by_target["vda"].source == MapperName("db1") and not by_target["vda"].passthrough
    lun = by_target["sda"]
    assert lun.passthrough and lun.guest_reservations
    assert by_target["vdb"].shareable and by_target["vdb"].source == DrbdMinor(0)
    assert by_target["vdc"].source == IscsiLun(
        ARRAY, 2, (Portal("127.0.0.1", 3260), Portal("127.0.0.2", 3261)))
    assert by_target["vdd"].source == NotFenced("file", "/var/lib/libvirt/images/scratch.qcow2")


def test_an_iscsi_name_without_a_lun_means_lun_0() -> None:
    domain = parse_domain_disks(domain_xml("g", [iscsi_disk(ARRAY, "sda")]))
    assert domain.disks[0].source == IscsiLun(ARRAY, 0, (Portal("127.0.0.1", 3260),))


@pytest.mark.parametrize("text, complaint", [
    ("<domain", "does not parse"),
    ("<node/>", "expected a <domain>"),
    ("<domain><devices/></domain>", "no <name>"),
    ("<domain><name>g</name><devices><disk type='block'><source/></disk></devices></domain>", "dev="),
    (domain_xml("g", [iscsi_disk(f"{ARRAY}/x", "sda")]), "not a number"),
    # found by tests/fuzz: int() of 4301+ digits was a bare ValueError, and int("٣") is 3
    (domain_xml("g", [iscsi_disk(f"{ARRAY}/{'1' * 5000}", "sda")]), "not a number"),
    (domain_xml("g", [iscsi_disk(f"{ARRAY}/٣", "sda")]), "not a number"),
    (domain_xml("g", [iscsi_disk(ARRAY, "sda", hosts=("127.0.0.1:" + "3" * 5000,))]),
     r"port .3333+.\.\.\. \(5000 characters\) is not a number"),
])
def test_unreadable_domain_xml_is_a_typed_error(text: str, complaint: str) -> None:
    with pytest.raises(DomainXmlError, match=complaint):
        parse_domain_disks(text)


@pytest.mark.parametrize("path", [
    "/dev/mapper/db1",  # alias
    f"/dev/mapper/{DB1_WWID}",  # map named after its WWID (user_friendly_names off)
    f"/dev/disk/by-id/dm-uuid-mpath-{DB1_WWID}",
    f"/dev/disk/by-id/scsi-{DB1_WWID}",
    f"/dev/disk/by-id/wwn-0x{DB1_HEX}",  # the spelling without the NAA type digit
    "/dev/disk/by-id/dm-name-db1",
])
def test_every_spelling_of_a_multipath_lun_maps_to_it(
        config: ClusterConfig, fresh_host: LibvirtConnection, path: str) -> None:
    xml = defined_xml(fresh_host, "db1", [block_disk(path, "vda")])
    storage = guest_luns(config, "db1", xml)
    assert storage.luns == ("db1-disk",)
    assert [m.luns for m in storage.mapped] == [("db1-disk",)] and not storage.unmapped


def test_drbd_devices_map_to_the_luns_of_their_resource(config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    xml = defined_xml(fresh_host, "app1", [block_disk("/dev/drbd0", "vda"),
                                          block_disk("/dev/drbd/by-res/r0/0", "vdb")])
    storage = guest_luns(config, "app1", xml)
    assert storage.luns == ("data0",) and storage.managed and not storage.unmapped


def test_iscsi_disks_map_by_target_and_lun_whatever_the_portal(
        config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    xml = defined_xml(fresh_host, "app1", [
        iscsi_disk(f"{ARRAY.upper()}/2", "sda", ("127.0.0.9:3260",)),  # IQNs are case-insensitive
        block_disk(f"/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-{ARRAY}-lun-1", "vdb"),
    ])
    assert guest_luns(config, "app1", xml).luns == ("web1-disk", "arbiter0")


def test_configured_luns_come_first_and_are_merged_with_the_xml(
        config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    xml = defined_xml(fresh_host, "web1", [iscsi_disk(f"{ARRAY}/2", "vda"), block_disk("/dev/drbd0", "vdb")])
    storage = guest_luns(config, "web1", xml)
    assert storage.luns == ("web1-disk", "data0") and storage.configured


def test_a_disk_that_matches_nothing_is_reported_never_guessed(
        config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    xml = defined_xml(fresh_host, "web1", [
        iscsi_disk(f"{ARRAY}/2", "vda"),
        block_disk("/dev/mapper/mpathz", "vdb"),
        block_disk("/dev/disk/by-id/scsi-36001405000000000000000000000dead", "vdc"),
        block_disk("/dev/drbd7", "vdd"),
        iscsi_disk(f"{ARRAY}/9", "vde"),
        block_disk("/dev/sdc", "vdf"),
        file_disk("/srv/images/cache.qcow2", "vdg"),
    ])
    storage = guest_luns(config, "web1", xml)
    assert storage.luns == ("web1-disk",)
    reasons = {d.disk.target: d.reason for d in storage.unmapped}
    assert reasons == {
        "vdb": UnmappedReason.UNKNOWN_MAP, "vdc": UnmappedReason.UNKNOWN_WWID,
        "vdd": UnmappedReason.UNKNOWN_DRBD, "vde": UnmappedReason.UNKNOWN_ISCSI,
        "vdf": UnmappedReason.UNKNOWN_BLOCK, "vdg": UnmappedReason.NOT_FENCED,
    }
    assert [d.disk.target for d in storage.unidentified] == ["vdb", "vdc", "vdd", "vde", "vdf"]
    assert [d.disk.target for d in storage.not_fenced] == ["vdg"]


def test_a_disk_matching_two_configured_luns_is_ambiguous(config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    twin = config.lun("db1-disk")
    doubled = ClusterConfig(**{**config.__dict__, "luns": config.luns + (
        type(twin)(**{**twin.__dict__, "name": "db1-copy", "alias": "db1-other"}),)})
    xml = defined_xml(fresh_host, "db1", [block_disk(f"/dev/disk/by-id/scsi-{DB1_WWID}", "vda")])
    storage = guest_luns(doubled, "db1", xml)
    assert [d.reason for d in storage.unmapped] == [UnmappedReason.AMBIGUOUS]
    assert storage.luns == ("db1-disk",)  # from its config entry only


def test_a_guest_on_files_only_and_not_configured_is_not_managed(config: ClusterConfig) -> None:
    storage = guest_luns(config, "scratch", domain_xml("scratch", [file_disk("/srv/s.qcow2", "vda")]))
    assert not storage.managed and storage.luns == ()


def test_a_guest_unknown_everywhere_is_an_error(config: ClusterConfig) -> None:
    with pytest.raises(UnknownGuest):
        guest_luns(config, "ghost", None)


def test_without_xml_the_config_entry_is_used(config: ClusterConfig) -> None:
    storage = guest_luns(config, "db1", None)
    assert storage.luns == ("db1-disk",) and storage.configured and not storage.mapped


def test_xml_of_another_guest_is_refused(config: ClusterConfig) -> None:
    with pytest.raises(DomainXmlError, match="describes 'db1'"):
        guest_luns(config, "web1", domain_xml("db1", []))


def test_passthrough_with_guest_reservations_is_reported(config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    xml = defined_xml(fresh_host, "db1", [
        block_disk(f"/dev/disk/by-id/dm-uuid-mpath-{DB1_WWID}", "sda", device="lun", reservations=True),
        block_disk(f"/dev/disk/by-id/dm-uuid-mpath-{DATA0_WWID}", "sdb", device="lun")])
    storage = guest_luns(config, "db1", xml)
    assert storage.guest_reservation_luns == ("db1-disk",)


@pytest.mark.parametrize("path", ["/dev/drbd" + "1" * 5000, "/dev/drbd٣",
                                  f"/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-{ARRAY}-lun-٣"])
def test_device_names_with_huge_or_foreign_digits_name_no_lun(path: str) -> None:
    assert classify_block_path(path) == OtherBlock(path)
