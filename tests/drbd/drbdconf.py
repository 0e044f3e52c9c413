"""Real drbdadm (Debian package drbd-utils) for tests: write a resource file, run drbdadm.

drbdadm parses drbd.conf and runs handlers without the DRBD kernel module, so the second hop of
DRBD's handler chain (drbdadm -> /bin/sh -> handler) runs for real; the kernel's first hop is
simulated by the environment the test hands to drbdadm.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from stonewall.storage.drbd.env import DrbdVersion

# drbd-utils installs the 8.4 drbdadm beside the 9 one (the 9 drbdadm hands off to it when
# the loaded module is 8.4; here no module is loaded, so we call it directly).
_DRBDADM = {DrbdVersion.V9: "/usr/sbin/drbdadm", DrbdVersion.V8_4: "/usr/lib/drbd/drbdadm-84"}

# drbdadm picks "our" `on` section by the node name, exactly like on a cluster node.
THIS_HOST = os.uname().nodename
PEER_HOST = "kvm-b"
MY_ADDRESS, PEER_ADDRESS = "127.0.0.1", "127.0.0.2"  # never contacted: drbdadm only parses

# What DRBD's kernel always passes to a helper (drbd_khelper()).
KERNEL_BASE = {"HOME": "/", "TERM": "linux", "PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}


def drbdadm(version: DrbdVersion) -> str:
    """Path of the drbdadm for `version`; skips the test when drbd-utils is not installed."""
    path = _DRBDADM[version]
    if not os.access(path, os.X_OK):
        pytest.skip("drbdadm is not installed (Debian package drbd-utils)")
    return path


def write_resource(directory: Path, version: DrbdVersion, name: str, minors: Sequence[int],
                   inner: str, hosts: tuple[str, str] = (THIS_HOST, PEER_HOST)) -> Path:
    """A two-node resource file with `inner` pasted into the resource section; `hosts`: the
    names of its `on` sections (this host first)."""
    volumes = "\n".join(
        f"    volume {number} {{ device /dev/drbd{minor}; disk /dev/vg/{name}-{number}; "
        "meta-disk internal; }" for number, minor in enumerate(minors))
    # DRBD 9 needs node ids; 8.4 has none.
    my_id, peer_id = ("node-id 0; ", "node-id 1; ") if version is DrbdVersion.V9 else ("", "")
    text = (f"resource {name} {{\n"
            + "".join(f"    {line}\n" if line else "\n" for line in inner.splitlines())
            + f"{volumes}\n"
            f"    on {hosts[0]} {{ address {MY_ADDRESS}:7789; {my_id}}}\n"
            f"    on {hosts[1]} {{ address {PEER_ADDRESS}:7789; {peer_id}}}\n"
            "}\n")
    path = directory / f"{name}.res"
    path.write_text(text)
    return path


def run_drbdadm(version: DrbdVersion, config: Path, args: Sequence[str],
                environ: Mapping[str, str] = KERNEL_BASE) -> subprocess.CompletedProcess[str]:
    """`drbdadm -c CONFIG ARGS...` with exactly `environ`, bounded in time."""
    return subprocess.run([drbdadm(version), "-c", str(config), *args], env=dict(environ),
                          capture_output=True, text=True, timeout=60, check=False)
