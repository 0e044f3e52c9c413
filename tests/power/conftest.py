"""Fixtures: lab BMC processes on 127.0.0.1 and a "lab node" process group to power off."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from stonewall.lab.bmc_process import BmcProcess

from .support import BmcFactory, process_exists


@pytest.fixture
def bmc_factory(tmp_path: Path) -> Iterator[BmcFactory]:
    """start(**BmcProcess options) -> a running lab BMC; every one is stopped at teardown."""
    started: list[BmcProcess] = []

    def start(**options: Any) -> BmcProcess:
        bmc = BmcProcess(tmp_path / f"bmc{len(started)}", **options)
        started.append(bmc)
        return bmc.start()

    yield start
    for bmc in started:
        bmc.stop()


@pytest.fixture
def bmc(bmc_factory: BmcFactory) -> BmcProcess:
    """A lab BMC whose node is on."""
    return bmc_factory()


@pytest.fixture
def lab_node() -> Iterator[subprocess.Popen[bytes]]:
    """A process group standing in for a node's running system (its leader's PID = PGID)."""
    node = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield node
    if process_exists(node.pid):
        node.kill()
    node.wait(timeout=5)
