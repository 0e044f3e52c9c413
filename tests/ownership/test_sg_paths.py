"""sg-transport LUNs in a node's paths: the kernel's path devices of the LUN's WWID, found in
a sysfs tree, driven with the real sg_persist (through the fakesg shim and the nexus
stand-in) against tgtd, next to a node that reaches the same LUN through libiscsi."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import (
    IscsiLocation, Lun, LunRole, Portal, SgBackend, Transport)
from stonewall.lab.identities import ARRAY_IQN, NODE_A_IQN, NODE_B_IQN
from stonewall.lab.kernel_standin import device_id_page as kernel_device_id_page
from stonewall.lab.nexus import FakeDevice, NexusStandIn
from stonewall.lab.tgtd import Tgtd
from stonewall.storage import ownership
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.multipath.types import Discovery
from stonewall.storage.multipath.wwid import device_wwid
from stonewall.storage.paths import (KernelRoots,
                                     PathSet, PathSetupError, close_paths, connect_paths,
                                     plan_paths)
from stonewall.storage.scsi.sg import SgPersistDevice, SgRunner

from ..multipath.mpath_host_tree import HostTree

KEY_A, KEY_B = 0x5354570000000001, 0x5354570000000002



def soon() -> Deadline:
    return Deadline.after(10)


@dataclass(frozen=True)
class KernelPath:
    """One SCSI disk of the LUN as the kernel would show it."""

    name: str
    sg: str
    state: str
    portal: str


def device_id_page(tgtd: Tgtd, lun: int) -> bytes:
    """tgtd's own VPD page 0x83 of `lun`, so the sysfs tree carries the target's identity."""
    return kernel_device_id_page(tgtd.portals[0], ARRAY_IQN, lun, soon())


def build_host(root: Path, page: bytes, paths: list[KernelPath]) -> HostTree:
    """A host whose iSCSI initiator has one session per path and a multipath map over them."""
    tree = HostTree(root)
    wwid = device_wwid(page, None)
    assert wwid is not None, "tgtd's page 0x83 names the LUN"
    for index, path in enumerate(paths):
        host_number = 10 + index
        address, port = path.portal.rsplit(":", 1)
        session = tree.iscsi_session(tree.scsi_host(f"devices/platform/host{host_number}"),
                                     index + 1, ARRAY_IQN, address, int(port))
        tree.scsi_disk(path.name, f"{session}/target{host_number}:0:0/{host_number}:0:0:1",
                       major=8, minor=16 * (index + 1), state=path.state, sg=path.sg,
                       inquiry={"vendor": "IET     ", "model": "VIRTUAL-DISK    ",
                                "vpd_pg83": page})
    tree.dm_device("dm-3", name="arbiter0", uuid=f"mpath-{wwid}",
                   slaves=tuple(p.name for p in paths), major=253, minor=3)
    return tree


def sg_lun(wwid: str | None) -> Lun:
    return Lun(name="arbiter0", role=LunRole.ARBITER, transport=Transport.SG, order=0,
               wwid=wwid, sg_backend=SgBackend.SG_PERSIST)


def wwid_of(tree: HostTree) -> str:
    discovery = discover_sysfs(tree.sys)
    return str(discovery.maps[0].wwid)


@dataclass
class SgNode:
    """node-a: LUN 1 of tgtd through two kernel path devices (/…/dev/sg7, /…/dev/sg8)."""

    lun: Lun
    roots: KernelRoots
    runner: SgRunner
    environment: dict[str, str]


@pytest.fixture
def sg_node(tgtd: Tgtd, tmp_path: Path) -> Iterator[SgNode]:
    page = device_id_page(tgtd, 1)
    paths = [KernelPath("sdk", "sg7", "running", tgtd.portals[0]),
             KernelPath("sdl", "sg8", "running", tgtd.portals[1])]
    tree = build_host(tmp_path / "host", page, paths)
    dev = tmp_path / "dev"
    nexus = NexusStandIn(tmp_path / "nexus", [
        FakeDevice(str(dev / p.sg), p.portal, ARRAY_IQN, 1, NODE_A_IQN) for p in paths])
    nexus.start(Deadline.after(15))
    try:
        yield SgNode(sg_lun(wwid_of(tree)), KernelRoots(str(tree.sys), str(dev)),
                     SgRunner(nexus.environment), nexus.environment)
    finally:
        nexus.stop()


@pytest.fixture
def iscsi_node_b(tgtd: Tgtd) -> Iterator[tuple[Lun, PathSet]]:
    """node-b: the same LUN through libiscsi sessions on both portals."""
    portals = [portal.rsplit(":", 1) for portal in tgtd.portals[:2]]
    lun = Lun(name="arbiter0", role=LunRole.ARBITER, transport=Transport.ISCSI, order=0,
              iscsi=IscsiLocation(ARRAY_IQN, 1, tuple(Portal(host, int(port))
                                                      for host, port in portals)))
    paths = plan_paths([lun], NODE_B_IQN, role="holder")
    connect_paths(paths, soon())
    try:
        yield lun, paths
    finally:
        close_paths(paths)


def test_sg_paths_are_the_kernels_path_devices_and_a_peer_fences_them(
        sg_node: SgNode, iscsi_node_b: tuple[Lun, PathSet]):
    paths = plan_paths([sg_node.lun], None, role="holder", discovery=sg_node.roots.discover,
                       runner=sg_node.runner, dev_root=sg_node.roots.dev)
    connect_paths(paths, soon())  # nothing to log in: the kernel holds these nexuses
    a_paths = paths["arbiter0"]
    assert [p.name for p in a_paths] == [f"{sg_node.roots.dev}/sg7", f"{sg_node.roots.dev}/sg8"]
    assert all(p.up and p.session is None and isinstance(p.device, SgPersistDevice)
               for p in a_paths)

    joined = ownership.register_paths(paths, KEY_A, soon(), SYSTEM_CLOCK)
    assert joined.ok and [o.detail for o in joined.outcomes] == ["registered", "registered"]
    reserved = ownership.reserve_unreserved(paths, KEY_A, soon(), SYSTEM_CLOCK)
    assert reserved.ok, reserved
    view = ownership.read_views(paths, soon(), SYSTEM_CLOCK)["arbiter0"]
    assert [p.path for p in view.paths] == [p.name for p in a_paths]
    assert view.registered_everywhere(KEY_A) and view.reservation().holder == KEY_A

    b_lun, b_paths = iscsi_node_b
    assert ownership.register_paths(b_paths, KEY_B, soon(), SYSTEM_CLOCK).ok
    fenced = ownership.preempt_peer(b_paths, [b_lun], KEY_B, KEY_A, soon(), SYSTEM_CLOCK,
                                    ownership.AbortSupport())
    assert fenced.ok and fenced.luns[0].action == "preempt", fenced

    # node-a's own kernel paths prove it: its key is gone from every nexus it had.
    proof = ownership.verify(paths, KEY_A, present=False, deadline=soon(), clock=SYSTEM_CLOCK)
    assert proof.proven, proof
    assert proof.checks[0].paths_up == 2
    after = ownership.read_views(paths, soon(), SYSTEM_CLOCK)["arbiter0"]
    assert after.reservation().holder == KEY_B


def test_status_reads_an_sg_lun_through_the_sysfs_and_dev_hooks(sg_node: SgNode,
                                                                  tmp_path: Path):
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({
        "cluster": "sgpaths",
        "paths": {"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run"),
                  "sysfs": sg_node.roots.sysfs, "dev": sg_node.roots.dev},
        "nodes": [{"name": "node-a", "id": 1}, {"name": "node-b", "id": 2}],
        "luns": [{"name": "arbiter0", "role": "arbiter", "order": 0, "transport": "sg",
                  "wwid": sg_node.lun.wwid, "sg_backend": "sg_persist"}],
        "fencing": [{"level": "storage", "timeout": 10}],
    }))
    config.chmod(0o600)
    node_a_key = load_config(str(config)).node("node-a").key
    paths = plan_paths([sg_node.lun], None, role="holder", discovery=sg_node.roots.discover,
                       runner=sg_node.runner, dev_root=sg_node.roots.dev)
    assert ownership.register_paths(paths, node_a_key, soon(), SYSTEM_CLOCK).ok

    environment = {**os.environ, **sg_node.environment}
    shown = subprocess.run([sys.executable, "-m", "stonewall", "--config", str(config),
                            "status", "--direct", "--paths", "--node", "node-a"],
                           capture_output=True, text=True, timeout=60, env=environment)
    assert shown.returncode == 1, shown.stdout + shown.stderr  # node-b is not registered
    arbiter = next(line for line in shown.stdout.splitlines() if line.startswith("arbiter0"))
    assert "node-ax2" in arbiter and "2/2 up" in arbiter
    assert all(f"{sg_node.roots.dev}/{sg}" in shown.stdout for sg in ("sg7", "sg8"))


# -- planning alone (no target needed) -----------------------------------------------------
PAGE = bytes([0, 0x83, 0, 20, 1, 3, 0, 16]) + bytes.fromhex("60014050000000000000000000000001")


@pytest.fixture
def host_with_a_down_path(tmp_path: Path) -> HostTree:
    return build_host(tmp_path, PAGE, [KernelPath("sdk", "sg7", "running", "127.0.0.1:3260"),
                                       KernelPath("sdl", "sg8", "offline", "127.0.0.1:3261")])


def test_a_path_the_kernel_reports_offline_is_planned_down_with_its_reason(
        host_with_a_down_path: HostTree):
    roots = KernelRoots(str(host_with_a_down_path.sys))
    paths = plan_paths([sg_lun(wwid_of(host_with_a_down_path))], None, role="reader",
                       discovery=roots.discover)
    connect_paths(paths, soon())  # must not bring the down sg path back up
    up, down = paths["arbiter0"]
    assert (up.name, up.up, up.error) == ("/dev/sg7", True, None)
    assert (down.name, down.up, down.session) == ("/dev/sg8", False, None)
    assert down.error == "sdl is down (device state offline)"
    report = ownership.register_paths({"arbiter0": [down]}, KEY_A, soon(), SYSTEM_CLOCK)
    assert not report.ok and report.failures()[0].detail.startswith("down: sdl is down")


def test_an_sg_lun_missing_on_this_host_is_a_setup_error_naming_what_was_sought(
        host_with_a_down_path: HostTree):
    roots = KernelRoots(str(host_with_a_down_path.sys))
    with pytest.raises(PathSetupError) as raised:
        plan_paths([sg_lun("36001405ffffffffffffffffffffffff")], None, role="reader",
                   discovery=roots.discover)
    message = str(raised.value)
    assert "36001405ffffffffffffffffffffffff" in message and str(roots.sysfs) in message


def test_a_map_without_path_devices_is_a_setup_error(tmp_path: Path):
    tree = build_host(tmp_path, PAGE, [])
    with pytest.raises(PathSetupError, match="/dev/mapper/arbiter0 has no path device"):
        plan_paths([sg_lun(wwid_of(tree))], None, role="reader",
                   discovery=KernelRoots(str(tree.sys)).discover)


def test_a_missing_sysfs_is_a_setup_error(tmp_path: Path):
    with pytest.raises(PathSetupError, match="arbiter0"):
        plan_paths([sg_lun("36001405ffffffffffffffffffffffff")], None, role="reader",
                   discovery=KernelRoots(str(tmp_path / "nosys")).discover)


def test_discovery_runs_once_and_only_when_an_sg_lun_is_planned(
        host_with_a_down_path: HostTree):
    calls: list[Discovery] = []

    def counted() -> Discovery:
        calls.append(discover_sysfs(host_with_a_down_path.sys))
        return calls[-1]

    iscsi = Lun(name="data0", role=LunRole.SHARED, transport=Transport.ISCSI,
                iscsi=IscsiLocation(ARRAY_IQN, 3, (Portal("127.0.0.1", 3260),)))
    close_paths(plan_paths([iscsi], NODE_A_IQN, role="reader", discovery=counted))
    assert calls == []
    lun = sg_lun(wwid_of(host_with_a_down_path))
    paths = plan_paths([lun, replace(lun, name="arbiter1", order=1)], NODE_A_IQN,
                       role="reader", discovery=counted)
    assert len(calls) == 1 and [len(ps) for ps in paths.values()] == [2, 2]


def test_kernel_roots_come_from_the_configuration(tmp_path: Path):
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({
        "cluster": "sgpaths", "paths": {"sysfs": "/lab/sys", "dev": "/lab/dev"},
        "nodes": [{"name": "node-a", "id": 1}],
        "luns": [{"name": "arbiter0", "role": "arbiter", "transport": "sg",
                  "wwid": "36001405ffffffffffffffffffffffff0"}],
        "fencing": [{"level": "storage", "timeout": 10}]}))
    assert KernelRoots.of(load_config(str(config)).paths) == KernelRoots("/lab/sys", "/lab/dev")
    assert KernelRoots() == KernelRoots("/sys", "/dev")
