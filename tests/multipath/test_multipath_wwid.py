"""Every layer spells a LUN's WWID its own way; they must all come out as one identity."""
from __future__ import annotations

import pytest

from .mpath_host_tree import (naa_designator, t10_designator, target_port_designator,
                              vpd_pg83)
from stonewall.storage.multipath.errors import InvalidWwid
from stonewall.storage.multipath.wwid import (Wwid, WwidKind, device_wwid, multipath_wwid,
                                              parse_wwid, wwid_from_dm_uuid,
                                              wwid_from_vpd_pg83)

HEX = "620000007355abb3b8950167b5790928"  # reference 2.2 (udevadm info of mpatha)


@pytest.mark.parametrize("spelling", [
    "3620000007355abb3b8950167b5790928",  # multipath, ID_SERIAL, DM_SERIAL
    "naa.620000007355abb3b8950167b5790928",  # kernel device/wwid (reference 2.2 ATTRS{wwid})
    "NAA.620000007355ABB3B8950167B5790928",
    "mpath-3620000007355abb3b8950167b5790928",  # DM_UUID
    "dm-uuid-mpath-3620000007355abb3b8950167b5790928",  # by-id link name
    "/dev/disk/by-id/dm-uuid-mpath-3620000007355abb3b8950167b5790928",
    "scsi-3620000007355abb3b8950167b5790928",
    "/dev/disk/by-id/scsi-3620000007355abb3b8950167b5790928",
    "  3620000007355ABB3B8950167B5790928\n",
])
def test_every_typed_spelling_of_an_naa_lun_is_the_multipath_wwid(spelling: str) -> None:
    wwid = parse_wwid(spelling)
    assert wwid == Wwid(WwidKind.NAA, HEX)
    assert str(wwid) == "3" + HEX


@pytest.mark.parametrize("spelling", [
    "0x620000007355abb3b8950167b5790928",  # ID_WWN_WITH_EXTENSION, DM_WWN
    "wwn-0x620000007355abb3b8950167b5790928",
    "/dev/disk/by-id/wwn-0x620000007355abb3b8950167b5790928",
])
def test_wwn_spellings_lack_the_type_digit_but_match_the_naa_wwid(spelling: str) -> None:
    wwid = parse_wwid(spelling)
    assert wwid.kind is None
    assert wwid.matches(parse_wwid("3" + HEX))
    assert parse_wwid("3" + HEX).matches(wwid)
    assert not wwid.matches(parse_wwid("3" + HEX[:-1] + "9"))


def test_the_truncated_id_wwn_is_not_the_lun() -> None:
    # ID_WWN keeps 16 hex digits ("ID_WWN has max 16 characters"): it is no NAA-6 WWID.
    truncated = parse_wwid("0x" + HEX[:16])
    assert not truncated.matches(parse_wwid("3" + HEX))


def test_eui64_spellings() -> None:
    # reference 2.4: the nimble iSCSI LUN is scsi-2a938c3feb74838096c9ce900595970e0
    by_id = parse_wwid("scsi-2a938c3feb74838096c9ce900595970e0")
    assert by_id == Wwid(WwidKind.EUI64, "a938c3feb74838096c9ce900595970e0")
    assert parse_wwid("eui.a938c3feb74838096c9ce900595970e0") == by_id
    assert not by_id.matches(parse_wwid("3a938c3feb74838096c9ce900595970e0")), \
        "same hex, other designator type: another LUN"


def test_t10_sysfs_padding_and_multipath_underscores_are_the_same_identity() -> None:
    kernel = parse_wwid("t10.ATA     QEMU HARDDISK                           QM00001 ")
    assert kernel == parse_wwid("1ATA_QEMU_HARDDISK_QM00001")
    assert str(kernel) == "1ATA_QEMU_HARDDISK_QM00001"


def test_scsi_name_strings() -> None:
    assert parse_wwid("iqn.2003-01.org.linux-iscsi:t1") == Wwid(
        WwidKind.SCSI_NAME, "iqn.2003-01.org.linux-iscsi:t1")
    assert str(parse_wwid("8iqn.2003-01.org.linux-iscsi:t1")) == "8iqn.2003-01.org.linux-iscsi:t1"


@pytest.mark.parametrize("typo, reason", [
    ("620000007355abb3b8950167b5790928", "type digit"),  # NAA hex without the leading 3
    ("3620000007355abb3b8950167b579092", "hex digits"),  # one digit short
    ("3620000007355abb3b8950167b579092g", "hex digits"),
    ("naa.6200", "hex digits"),
    ("", "empty"),
    ("wwn-620000007355abb3b8950167b5790928", "0x"),
    ("part1-mpath-3620000007355abb3b8950167b5790928", "partition"),
    ("mpatha", "type digit"),
])
def test_a_misspelt_wwid_is_refused_with_the_reason(typo: str, reason: str) -> None:
    with pytest.raises(InvalidWwid, match=reason):
        parse_wwid(typo)


def test_multipath_takes_any_udev_text_as_wwid() -> None:
    # uid_attribute is whatever udev set; an ATA model_serial is no designator spelling.
    other = multipath_wwid("QEMU_HARDDISK_QM00001")
    assert other == Wwid(WwidKind.OTHER, "QEMU_HARDDISK_QM00001")
    assert str(other) == "QEMU_HARDDISK_QM00001"
    assert not other.matches(Wwid(None, "QEMU_HARDDISK_QM00001"))
    assert multipath_wwid("  ") is None


def test_dm_uuids() -> None:
    # reference 1.2: DM_UUID=mpath-360003ff0430e5e1d8f7a9697e1e8e5b6 (issue #89)
    assert str(wwid_from_dm_uuid("mpath-360003ff0430e5e1d8f7a9697e1e8e5b6")) == \
        "360003ff0430e5e1d8f7a9697e1e8e5b6"
    assert wwid_from_dm_uuid("part1-mpath-360003ff0430e5e1d8f7a9697e1e8e5b6") is None
    assert wwid_from_dm_uuid("LVM-Zb5tW2fR0yBdgQ3Xg1ni2rGx5vN8C1dfKx") is None
    assert wwid_from_dm_uuid("") is None


def test_vpd_page_prefers_naa_and_ignores_target_port_designators() -> None:
    page = vpd_pg83(target_port_designator(1), t10_designator("LIO-ORG 1b2c3d4e"),
                    naa_designator("6001405" + "0" * 25))
    assert wwid_from_vpd_pg83(page) == Wwid(WwidKind.NAA, "6001405" + "0" * 25)


def test_vpd_page_ranks_naa_registered_above_eui64_and_local_naa_last() -> None:
    local_naa = (1, 0, 3, bytes.fromhex("3000000000000001"))
    eui = (1, 0, 2, bytes.fromhex("0011223344556677"))
    registered = (1, 0, 3, bytes.fromhex("5000c500a1b2c3d4"))
    assert wwid_from_vpd_pg83(vpd_pg83(local_naa, eui)).kind is WwidKind.EUI64
    assert str(wwid_from_vpd_pg83(vpd_pg83(eui, registered, local_naa))) == "35000c500a1b2c3d4"


def test_vpd_page_scsi_name_string_naa_becomes_type_3() -> None:
    name = (3, 0, 8, b"naa.6001405ABCDEF0000000000000000001\0\0\0\0")
    assert str(wwid_from_vpd_pg83(vpd_pg83(name))) == "36001405abcdef0000000000000000001"


def test_vpd_page_with_only_a_target_port_names_no_lun() -> None:
    assert wwid_from_vpd_pg83(vpd_pg83(target_port_designator(1))) is None


def test_vpd_page_of_another_page_is_refused() -> None:
    with pytest.raises(InvalidWwid):
        wwid_from_vpd_pg83(bytes([0, 0x80, 0, 4]) + b"SN01")


def test_device_wwid_falls_back_to_the_kernel_text_when_the_page_is_unusable() -> None:
    assert device_wwid(b"\0\x80\0\0", "naa." + HEX) == Wwid(WwidKind.NAA, HEX)
    assert device_wwid(None, None) is None
    assert device_wwid(None, "not-a-wwid") is None
