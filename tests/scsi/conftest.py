"""Fixtures of the sg transport tests (helpers in sg_lab.py)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.lab.nexus import NexusServer
from stonewall.lab.shim import ShimDevice, build_shim, shim_environment, write_device_map

from .sg_lab import ScriptedNexus, ScriptedTarget


@pytest.fixture(scope="session")
def shim_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fakesg shim, compiled once per test session."""
    return build_shim(tmp_path_factory.mktemp("shim"))


@pytest.fixture
def scripted_nexus(tmp_path: Path, shim_library: Path) -> Iterator[ScriptedNexus]:
    """A nexus server in this process whose target answers as the test sets it, mapped as a
    fake sg device, a fake block device, and a path with no server behind it."""
    target = ScriptedTarget()
    socket_path = tmp_path / "nexus.sock"
    server = NexusServer(socket_path, {"lun1": target})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    sg_path, block_path = str(tmp_path / "dev" / "sg3"), str(tmp_path / "dev" / "sdc")
    unserved = str(tmp_path / "dev" / "sdz")
    device_map = write_device_map(tmp_path / "fakesg-map.json", [
        ShimDevice(sg_path, "sg", str(socket_path), "lun1", 3),
        ShimDevice(block_path, "block", str(socket_path), "lun1", 2),
        ShimDevice(unserved, "block", str(tmp_path / "nobody.sock"), "lun1", 25)])
    try:
        yield ScriptedNexus(target, shim_environment(shim_library, device_map), sg_path,
                            block_path, unserved)
    finally:
        target.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
