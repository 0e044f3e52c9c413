"""Losing ownership with a real libvirtd (QEMU driver, private mount namespace) that hangs: a
daemon frozen with SIGSTOP does not answer destroy, and the guest it runs is reported as
"cannot tell" within the deadline, never as stopped. Once the daemon answers again, a new
connection finds the guest off."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.vm.control import Eviction, destroy_guests_for_lost_ownership
from stonewall.vm.libvirt_conn import DomainState, LibvirtConnection

from .libvirtd import PrivateLibvirtd, libvirtd_unavailable

pytestmark = pytest.mark.slow

# A small TCG guest with no disk: enough for a real QEMU process that destroy must kill.
GUEST = ("<domain type='qemu'><name>web1</name><memory unit='MiB'>64</memory>"
         "<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>"
         "<emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>")


@pytest.fixture
def libvirtd(tmp_path: Path) -> Iterator[PrivateLibvirtd]:
    reason = libvirtd_unavailable()
    if reason:
        pytest.skip(reason)
    daemon = PrivateLibvirtd(tmp_path / "node-a")
    daemon.start()
    try:
        yield daemon
    finally:
        os.kill(daemon.pid, signal.SIGCONT)  # a stopped daemon cannot act on SIGTERM
        daemon.stop()


def test_a_hung_libvirtd_is_cannot_tell_never_stopped(libvirtd: PrivateLibvirtd) -> None:
    conn = LibvirtConnection.open(libvirtd.uri, Deadline.after(30))
    conn.define(GUEST)
    conn.start("web1")
    assert conn.state("web1") is DomainState.RUNNING

    os.kill(libvirtd.pid, signal.SIGSTOP)
    began = time.monotonic()
    report = destroy_guests_for_lost_ownership(conn, ["web1"], Deadline.after(2))
    assert time.monotonic() - began < 4  # bounded by its deadline, not by the daemon
    assert [g.outcome for g in report.guests] == [Eviction.CANNOT_TELL]
    assert not report.all_off

    os.kill(libvirtd.pid, signal.SIGCONT)
    with LibvirtConnection.open(libvirtd.uri, Deadline.after(30)) as fresh:
        again = destroy_guests_for_lost_ownership(fresh, ["web1"], Deadline.after(30))
        # The abandoned destroy was queued in the daemon and may run first when it wakes up.
        assert again.guests[0].outcome in (Eviction.DESTROYED, Eviction.NOT_RUNNING)
        assert again.all_off
        assert fresh.state("web1") is DomainState.SHUT_OFF
