"""udev discovery with the real pyudev and libudev.

This container runs no udevd, so each test builds a host tree (sysfs plus udev database
from the reference's `udevadm info` samples) and runs discovery in a child process with a
private mount namespace where the tree is mounted at /sys and /run/udev. libudev then reads
it exactly as it reads a host's.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .mpath_host_tree import HostTree, build_reference_host
from stonewall.storage.multipath.errors import UdevUnavailable
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.multipath.udev import discover_udev

PROBE = Path(__file__).parent / "mpath_udev_probe.py"


@pytest.fixture(scope="module")
def private_mounts() -> None:
    """Skip unless this process may create a private mount namespace (root, unshare(1))."""
    try:
        subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"no private mount namespace here: {error}")


def discover_in_namespace(tree: HostTree, mode: str = "with-udev") -> dict[str, Any]:
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, str(PROBE),
         str(tree.root), mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(value)))


@pytest.mark.usefixtures("private_mounts")
def test_udev_finds_what_sysfs_finds_on_the_reference_host(tmp_path: Path) -> None:
    tree = build_reference_host(tmp_path)
    through_udev = discover_in_namespace(tree)["discovery"]
    direct = as_json(discover_sysfs(tree.sys))
    assert through_udev.pop("source") == "udev"
    direct.pop("source")
    assert through_udev == direct
    assert [m["name"] for m in through_udev["maps"]] == [
        "mpatha", "3600507670880813290000000000003f4"]
    assert [p["sg"] for p in through_udev["maps"][0]["paths"]] == ["sg5", "sg7", "sg8", "sg6"]


@pytest.mark.usefixtures("private_mounts")
def test_udev_supplies_id_serial_where_sysfs_has_no_vpd_attributes(tmp_path: Path) -> None:
    # Older kernels export neither vpd_pg83 nor wwid; udev's sg_inq-based ID_SERIAL is
    # what multipath used, so only udev discovery can name the path's LUN.
    tree = build_reference_host(tmp_path)
    scsi = (tree.sys / "block" / "sdb" / "device").resolve()
    (scsi / "vpd_pg83").unlink()
    (scsi / "wwid").unlink()
    through_udev = discover_in_namespace(tree)["discovery"]
    sdb_udev = through_udev["maps"][1]["paths"][0]
    assert sdb_udev["name"] == "sdb"
    assert sdb_udev["wwid"] == {"kind": "3", "value": "600507670880813290000000000003f4"}
    assert discover_sysfs(tree.sys).maps[1].paths[0].wwid is None


@pytest.mark.usefixtures("private_mounts")
def test_map_name_comes_from_the_udev_database(tmp_path: Path) -> None:
    # DM_NAME from the udev record (reference 2.2 sample: mpatha) even where the dm/name
    # attribute cannot be read.
    tree = build_reference_host(tmp_path)
    (tree.sys / "block" / "dm-0" / "dm" / "name").unlink()
    through_udev = discover_in_namespace(tree)["discovery"]
    assert through_udev["maps"][0]["name"] == "mpatha"
    # sysfs alone takes a map without a readable name for one being removed.
    assert [m.dm_name for m in discover_sysfs(tree.sys).maps] == ["dm-29"]


@pytest.mark.usefixtures("private_mounts")
def test_without_a_udev_database_udev_is_reported_unavailable(tmp_path: Path) -> None:
    outcome = discover_in_namespace(build_reference_host(tmp_path), "without-udev")
    assert "udev database /run/udev/data does not exist" in outcome["unavailable"]


def test_on_this_machine_udev_is_used_or_reported_unavailable() -> None:
    if os.path.isdir("/run/udev/data"):
        assert discover_udev().source == "udev"
    else:
        with pytest.raises(UdevUnavailable, match="udevd is not running"):
            discover_udev()
