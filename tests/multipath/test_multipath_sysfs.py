"""sysfs discovery on a host tree built from the reference samples (mpath_host_tree.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .mpath_host_tree import (ISCSI_TARGET, HostTree, build_reference_host, naa_designator,
                              vpd_pg83)
from stonewall.storage.multipath.errors import SysfsUnavailable
from stonewall.storage.multipath.sysfs import discover_sysfs, read_path_device
from stonewall.storage.multipath.types import FcLink, IscsiLink, PathState
from stonewall.storage.multipath.wwid import Wwid, WwidKind

FC_WWID = "3620000007355abb3b8950167b5790928"
ISCSI_WWID = "3600507670880813290000000000003f4"


@pytest.fixture
def host(tmp_path: Path) -> HostTree:
    return build_reference_host(tmp_path)


def test_finds_both_maps_with_friendly_name_on_and_off(host: HostTree) -> None:
    found = discover_sysfs(host.sys)
    assert [(m.name, str(m.wwid), m.dm_name) for m in found.maps] == [
        ("mpatha", FC_WWID, "dm-0"),
        (ISCSI_WWID, ISCSI_WWID, "dm-29"),  # user_friendly_names no: the name is the WWID
    ]
    assert found.maps[0].device == "/dev/mapper/mpatha"
    assert found.maps[1].dm_device == "/dev/dm-29"
    assert found.source == f"sysfs:{host.sys}"


def test_fc_map_has_four_paths_with_sg_nodes_read_not_derived(host: HostTree) -> None:
    mpatha = discover_sysfs(host.sys).maps[0]
    assert [(p.name, p.hctl, p.sg, p.device_state) for p in mpatha.paths] == [
        ("sdf", "2:0:0:2", "sg5", "running"),
        ("sdg", "3:0:0:2", "sg7", "running"),  # the reference's attribute walk, verbatim
        ("sdh", "3:0:1:2", "sg8", "running"),
        ("sdi", "2:0:1:2", "sg6", "offline"),
    ]
    assert all(p.wwid == Wwid(WwidKind.NAA, FC_WWID[1:]) for p in mpatha.paths)
    assert mpatha.paths[1].link == FcLink(rport="rport-3:0-4", node_name="0x20000024ff7a0001",
                                          port_name="0x21000024ff7a0001")
    assert mpatha.paths[1].sg_device == "/dev/sg7"
    assert mpatha.suspended is False


def test_an_offline_path_is_down_and_the_others_up(host: HostTree) -> None:
    mpatha = discover_sysfs(host.sys).maps[0]
    assert [p.state for p in mpatha.paths] == [PathState.UP, PathState.UP, PathState.UP,
                                               PathState.DOWN]


def test_iscsi_paths_name_their_session_target_and_portal(host: HostTree) -> None:
    by_wwid = discover_sysfs(host.sys).maps[1]
    assert [(p.name, p.hctl, p.sg, p.link) for p in by_wwid.paths] == [
        ("sdb", "7:0:0:0", "sg2", IscsiLink("session1", ISCSI_TARGET, "192.0.2.10", 3260)),
        ("sdc", "8:0:0:0", "sg1", IscsiLink("session2", ISCSI_TARGET, "192.0.2.11", 3260)),
    ]


def test_plain_disk_is_listed_and_cdrom_virtio_lvm_partition_are_not(host: HostTree) -> None:
    found = discover_sysfs(host.sys)
    assert [(d.name, d.hctl, d.sg, str(d.wwid)) for d in found.disks] == [
        ("sda", "0:0:0:0", "sg0", "1ATA_QEMU_HARDDISK_QM00001")]
    names = {m.dm_name for m in found.maps} | {d.name for d in found.disks}
    assert not names & {"sr0", "vda", "dm-1", "dm-30"}
    assert (host.sys / "block" / "dm-30" / "dm" / "uuid").read_text().startswith("part1-mpath-")


def test_a_path_whose_device_vanished_mid_scan_is_kept_with_unknown_state(
        host: HostTree) -> None:
    # slaves/ still lists sdh but its block directory is gone (hot removal in progress).
    shutil.rmtree((host.sys / "block" / "sdh").resolve())
    (host.sys / "block" / "sdh").unlink()
    sdh = discover_sysfs(host.sys).maps[0].paths[2]
    assert (sdh.name, sdh.hctl, sdh.device_state, sdh.sg, sdh.wwid) == (
        "sdh", None, None, None, None)
    assert sdh.state is PathState.UNKNOWN


def test_a_path_without_vpd_page_takes_the_kernel_wwid_text(host: HostTree) -> None:
    (host.sys / "block" / "sdb" / "device" / "vpd_pg83").unlink()
    assert str(read_path_device(host.sys, "sdb").wwid) == ISCSI_WWID


def test_vpd_page_wins_over_the_kernel_text(tmp_path: Path) -> None:
    # The kernel and multipath rank designators differently; the map's WWID is multipath's.
    tree = HostTree(tmp_path)
    host = tree.scsi_host("devices/platform/host9")
    tree.scsi_disk("sdz", f"{host}/target9:0:0/9:0:0:0", major=65, minor=144,
                   state="running", sg=None,
                   inquiry={"wwid": "eui.0011223344556677",
                            "vpd_pg83": vpd_pg83(naa_designator("5000c500a1b2c3d4"))})
    disk = discover_sysfs(tree.sys).disks[0]
    assert (str(disk.wwid), disk.sg, disk.link) == ("35000c500a1b2c3d4", None, None)


def test_a_root_without_block_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SysfsUnavailable, match="is sysfs mounted"):
        discover_sysfs(tmp_path)


def test_this_machines_virtio_disk_is_not_taken_for_a_scsi_disk() -> None:
    if not Path("/sys/block/vda/device").exists():
        pytest.skip("this machine has no virtio disk vda")
    found = discover_sysfs("/sys")
    assert found.source == "sysfs:/sys"
    assert "vda" not in {d.name for d in found.disks}
