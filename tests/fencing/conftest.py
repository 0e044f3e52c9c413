"""Fencing tests: the shared two-node lab (tests/lab_fixtures.py) with DRBD resources and
node addresses; a test module may override `lab_extra` (power levels, BMCs, delays)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from stonewall.lab.bmc_process import BmcProcess
from stonewall.lab.tgtd import Tgtd

from ..lab_fixtures import Lab, observer, running_lab  # noqa: F401  (pytest fixtures)
from .drbd_calls import install_programs, lab_config_extra


@pytest.fixture
def lab_extra() -> dict[str, Any]:
    """Config keys added to the lab: DRBD resources r0..r2, storage fencing only."""
    return lab_config_extra()


@pytest.fixture
def lab(tgtd: Tgtd, tmp_path: Path, lab_extra: dict[str, Any]) -> Iterator[Lab]:
    """node-a runs web1 (its guest LUN web1-disk, in no DRBD resource, carries node-a's key
    from the moment node-a's holder joined)."""
    with running_lab(tgtd, tmp_path / "lab", lab_extra,
                     guest_runs={"web1-disk": "node-a"}) as started:
        yield started


@pytest.fixture
def programs(tmp_path: Path) -> dict[str, Path]:
    """handler name -> the stonewall-drbd-<handler> program."""
    return install_programs(tmp_path / "bin")


@pytest.fixture
def bmcs(tmp_path: Path) -> Iterator[dict[str, BmcProcess]]:
    """A running lab BMC per node, powered on; stopped by PID at teardown."""
    started: dict[str, BmcProcess] = {}
    try:
        for node in ("node-a", "node-b"):
            started[node] = BmcProcess(tmp_path / f"bmc-{node}").start()
        yield started
    finally:
        for bmc in started.values():
            bmc.stop()
