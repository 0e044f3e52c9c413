"""End to end: a real libvirtd (QEMU driver, private mount namespace) runs the installed hook
from qemu.d/ on `virDomainCreate`; the guest's disk is a real iSCSI LUN on tgtd that QEMU opens
when it is allowed to start. The double start is refused by libvirt with the hook's message;
the owner's start really runs QEMU; an operator's own `qemu` hook keeps running beside ours."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import libvirt
import pytest

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig
from stonewall.lab.tgtd import Tgtd
from stonewall.vm.hook_install import InstallAction, install_hook
from stonewall.vm.libvirt_conn import DomainState, LibvirtConnection, StartRefusedByHook, StopOutcome

from .conftest import ARRAY, iscsi_disk, owned_by
from .libvirtd import PrivateLibvirtd, libvirtd_unavailable
from .views_files import write_views

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).with_name("hook_runner.py")


def web1_domain(portal: str) -> str:
    """A small TCG guest whose only disk is LUN 2 of the lab array (web1-disk in the config)."""
    return (f"<domain type='qemu'><name>web1</name><memory unit='MiB'>64</memory>"
            "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
            "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
            f"{iscsi_disk(f'{ARRAY}/2', 'vda', (portal,))}</devices></domain>")


@pytest.fixture
def kvm_b(tmp_path: Path, config_path: Path) -> Iterator[PrivateLibvirtd]:
    """Node kvm-b's libvirtd with the stonewall hook in qemu.d/ and an operator's own qemu hook."""
    reason = libvirtd_unavailable()
    if reason:
        pytest.skip(reason)
    daemon = PrivateLibvirtd(tmp_path / "kvm-b")
    daemon.hooks_dir.mkdir(parents=True)
    operator_hook = daemon.hooks_dir / "qemu"
    operator_hook.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/operator-hook.calls\nexit 0\n")
    operator_hook.chmod(0o755)
    installed = install_hook(
        daemon.hooks_dir, [sys.executable, str(RUNNER), "vm", "hook", "run", "--timeout", "3"],
        libvirt_version=libvirt.getVersion(),
        # libvirtd hands hooks only LC_ALL, PATH and HOME: the rest must be in the script.
        environment={"STONEWALL_CONFIG": str(config_path), "STONEWALL_NODE": "kvm-b",
                     "STONEWALL_TEST_VIEWS": str(tmp_path / "views")})
    assert installed.action is InstallAction.CREATED and installed.path.parent.name == "qemu.d"
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def test_libvirt_refuses_a_double_start_and_lets_the_owner_start(
        tmp_path: Path, config: ClusterConfig, tgtd: Tgtd, kvm_b: PrivateLibvirtd) -> None:
    conn = LibvirtConnection.open(kvm_b.uri, Deadline.after(30))
    try:
        conn.define(web1_domain(tgtd.portals[0]))
        write_views(tmp_path / "views", owned_by(config, "kvm-a", "kvm-b").values())
        with pytest.raises(StartRefusedByHook) as refused:
            conn.start("web1")
        assert refused.value.code == libvirt.VIR_ERR_HOOK_SCRIPT_FAILED
        assert ("stonewall: refusing to start web1 on kvm-b: LUN web1-disk is registered by "
                "kvm-a: the guest runs, or may run, there") in str(refused.value)
        assert conn.state("web1") is DomainState.SHUT_OFF

        # After a takeover kvm-b holds the reservation: the same start goes through, and QEMU
        # really runs on the iSCSI LUN.
        write_views(tmp_path / "views", owned_by(config, "kvm-b").values())
        conn.start("web1")
        assert conn.state("web1") is DomainState.RUNNING
        assert conn.destroy("web1", Deadline.after(30)) is StopOutcome.DESTROYED
    finally:
        conn.close()
    calls = (tmp_path / "operator-hook.calls").read_text().splitlines()
    assert calls.count("web1 prepare begin -") == 2  # the operator's hook ran both times
