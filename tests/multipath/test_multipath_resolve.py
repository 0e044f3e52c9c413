"""Configured sg LUN -> map and path devices, on the reference host tree."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .mpath_host_tree import HostTree, build_reference_host
from stonewall.config.model import IscsiLocation, Lun, LunRole, Portal, Transport
from stonewall.storage.multipath.errors import (AliasMismatch, InvalidWwid, NotAnSgLun,
                                                UnknownLun)
from stonewall.storage.multipath.multipathd import parse_maps_json
from stonewall.storage.multipath.resolve import resolve_lun_paths
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.multipath.types import Discovery, PathState

FC_WWID = "3620000007355abb3b8950167b5790928"
ISCSI_WWID = "3600507670880813290000000000003f4"


def sg_lun(wwid: str | None = None, alias: str | None = None) -> Lun:
    return Lun(name="vmstore", role=LunRole.SHARED, transport=Transport.SG, wwid=wwid,
               alias=alias)


@pytest.fixture
def host(tmp_path: Path) -> HostTree:
    return build_reference_host(tmp_path)


@pytest.fixture
def discovery(host: HostTree) -> Discovery:
    return discover_sysfs(host.sys)


def test_lun_by_kernel_wwid_spelling_gets_map_and_every_sg_node(discovery: Discovery) -> None:
    found = resolve_lun_paths(sg_lun(wwid="naa.620000007355abb3b8950167b5790928"), discovery)
    assert (found.lun, str(found.wwid), found.map_device, found.dm_device) == (
        "vmstore", FC_WWID, "/dev/mapper/mpatha", "/dev/dm-0")
    assert [(p.device, p.state, p.in_map) for p in found.paths] == [
        ("/dev/sg5", PathState.UP, True), ("/dev/sg7", PathState.UP, True),
        ("/dev/sg8", PathState.UP, True), ("/dev/sg6", PathState.DOWN, True)]
    assert [p.path.name for p in found.up_paths] == ["sdf", "sdg", "sdh"]


def test_lun_by_alias_alone(discovery: Discovery) -> None:
    found = resolve_lun_paths(sg_lun(alias="mpatha"), discovery)
    assert (str(found.wwid), len(found.paths)) == (FC_WWID, 4)


def test_alias_and_wwid_that_agree(discovery: Discovery) -> None:
    found = resolve_lun_paths(sg_lun(wwid="wwn-0x620000007355abb3b8950167b5790928",
                                     alias="mpatha"), discovery)
    assert found.map is not None and found.map.dm_name == "dm-0"


def test_an_alias_on_another_wwid_is_an_error_not_a_guess(discovery: Discovery) -> None:
    with pytest.raises(AliasMismatch) as raised:
        resolve_lun_paths(sg_lun(wwid=ISCSI_WWID, alias="mpatha"), discovery)
    assert (raised.value.alias, raised.value.configured_wwid, raised.value.actual_wwid) == (
        "mpatha", ISCSI_WWID, FC_WWID)


def test_friendly_names_off_the_map_device_is_named_by_wwid(discovery: Discovery) -> None:
    found = resolve_lun_paths(sg_lun(wwid=ISCSI_WWID), discovery)
    assert found.map_device == f"/dev/mapper/{ISCSI_WWID}"
    assert [p.device for p in found.paths] == ["/dev/sg2", "/dev/sg1"]


def test_the_wwid_decides_when_the_configured_alias_does_not_exist(
        discovery: Discovery) -> None:
    found = resolve_lun_paths(sg_lun(wwid=ISCSI_WWID, alias="vmstore"), discovery)
    assert found.map is not None and found.map.name == ISCSI_WWID


@pytest.mark.parametrize("wwid, alias, named", [
    ("3600140500000000000000000000000aa", None, "wwid 3600140500000000000000000000000aa"),
    (None, "mpathz", "alias mpathz"),
])
def test_a_lun_not_on_this_host_is_unknown_and_says_what_was_sought(
        discovery: Discovery, wwid: str | None, alias: str | None, named: str) -> None:
    with pytest.raises(UnknownLun, match=named) as raised:
        resolve_lun_paths(sg_lun(wwid=wwid, alias=alias), discovery)
    assert (raised.value.wwid, raised.value.alias) == (wwid, alias)


def test_a_misspelt_configured_wwid_is_refused(discovery: Discovery) -> None:
    with pytest.raises(InvalidWwid):
        resolve_lun_paths(sg_lun(wwid=FC_WWID[1:]), discovery)


def test_luns_that_are_not_sg_luns_are_refused(discovery: Discovery) -> None:
    iscsi = Lun(name="arb", role=LunRole.ARBITER, transport=Transport.ISCSI,
                iscsi=IscsiLocation("iqn.2024-01.test:t", 1, (Portal("127.0.0.1"),)))
    with pytest.raises(NotAnSgLun, match="iscsi transport"):
        resolve_lun_paths(iscsi, discovery)
    with pytest.raises(NotAnSgLun, match="neither a wwid nor an alias"):
        resolve_lun_paths(sg_lun(), discovery)


def test_a_lun_on_a_plain_disk_has_no_map(discovery: Discovery) -> None:
    found = resolve_lun_paths(sg_lun(wwid="t10.ATA     QEMU HARDDISK   QM00001"), discovery)
    assert (found.map, found.map_device) == (None, None)
    assert [(p.path.name, p.device, p.in_map) for p in found.paths] == [
        ("sda", "/dev/sg0", False)]


def test_a_path_not_yet_in_the_map_table_is_still_a_path(host: HostTree) -> None:
    # slaves/ lags behind table reloads (reference 1.1): sdh has the WWID but no holder.
    (host.sys / "block" / "dm-0" / "slaves" / "sdh").unlink()
    found = resolve_lun_paths(sg_lun(alias="mpatha"), discover_sysfs(host.sys))
    assert [(p.path.name, p.in_map) for p in found.paths] == [
        ("sdf", True), ("sdg", True), ("sdi", True), ("sdh", False)]


def test_without_an_sg_node_the_block_device_is_used(host: HostTree) -> None:
    sg_dir = (host.sys / "block" / "sdb" / "device" / "scsi_generic").resolve()
    for entry in sg_dir.iterdir():
        (entry / "uevent").unlink()
        (entry / "dev").unlink()
        (entry / "subsystem").unlink()
        entry.rmdir()
    found = resolve_lun_paths(sg_lun(wwid=ISCSI_WWID), discover_sysfs(host.sys))
    assert [p.device for p in found.paths] == ["/dev/sdb", "/dev/sg1"]


def test_multipathd_states_overlay_sysfs_paths(discovery: Discovery) -> None:
    # multipathd's view of the same host: dm failed sdg (checker faulty) although its
    # transport is up, which sysfs alone cannot see.
    def path(dev: str, dm_st: str, chk_st: str, dev_st: str) -> dict[str, str]:
        return {"dev": dev, "dm_st": dm_st, "chk_st": chk_st, "dev_st": dev_st}
    daemon_json = json.dumps({"major_version": 0, "minor_version": 1, "maps": [{
        "name": "mpatha", "uuid": FC_WWID, "sysfs": "dm-0", "dm_st": "active",
        "path_groups": [{"paths": [path("sdf", "active", "ready", "running"),
                                   path("sdg", "failed", "faulty", "running"),
                                   path("sdh", "active", "ready", "running"),
                                   path("sdi", "failed", "faulty", "offline")]}]}]})
    daemon = Discovery.build("multipathd", list(parse_maps_json(daemon_json)), [])
    combined = discovery.with_daemon_states(daemon)
    found = resolve_lun_paths(sg_lun(alias="mpatha"), combined)
    assert combined.source == f"{discovery.source}+multipathd"
    assert [(p.device, p.state) for p in found.paths] == [
        ("/dev/sg5", PathState.UP), ("/dev/sg7", PathState.DOWN),
        ("/dev/sg8", PathState.UP), ("/dev/sg6", PathState.DOWN)]
