"""Fixtures of the kernel tier: a two-node cluster of QEMU TCG guests (lab/kernel/).

What the tier needs: root (QEMU's 9p shares of /usr and the tree, tgtd), qemu-system-x86_64
and the guest image from scripts/build-kernel-guest (scripts/setup builds it). Missing any
of them fails under CI=true and skips with the reason elsewhere: never a silent pass.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.lab.kernel.cluster import KernelCluster
from stonewall.lab.kernel.guest import GuestError, GuestImage, qemu_binary


def _missing() -> str | None:
    if os.geteuid() != 0:
        return ("the kernel tier needs root (tgtd, QEMU's 9p shares): run ./run test --kernel "
                "as root")
    if qemu_binary() is None:
        return "qemu-system-x86_64 not found: install qemu-system-x86 (scripts/setup does)"
    if shutil.which("tgtd") is None and not Path("/usr/sbin/tgtd").exists():
        return "tgtd not found: install tgt (scripts/setup does)"
    try:
        GuestImage.find()
    except GuestError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"kernel tier cannot run in CI: {reason}")
        pytest.skip(f"kernel tier skipped: {reason}")
    return GuestImage.find()


@pytest.fixture
def cluster(guest_image: GuestImage, tmp_path: Path) -> Iterator[KernelCluster]:
    """tgtd + node-a and node-b booted, their agents ready; every QEMU and tgtd stopped by
    PID at the end (a guest the watchdog reset has already exited)."""
    with KernelCluster(tmp_path, guest_image) as running:
        yield running
