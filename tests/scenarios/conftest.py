"""The failover lab for scenario tests: a whole two-node cluster from real parts (tgtd,
watchdog stand-ins, lab BMCs, libvirt test hypervisors, the DRBD handler run as drbdadm
runs it). Each scenario runs with several timing seeds: the first in the default suite, the
others in the slow tier."""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.lab.scenario import LabGuest, ScenarioLab

SEEDS = [pytest.param(seed, marks=[pytest.mark.slow] if seed else [], id=f"seed{seed}")
         for seed in range(5)]
# One guest per node that may start at once after a storage fence; web1 waits T_safe.
GUESTS = (LabGuest("api1", "node-a", 3, "immediate"), LabGuest("db1", "node-b", 4,
                                                                    "immediate"))


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[ScenarioLab]:
    if shutil.which("tgtd") is None and not Path("/usr/sbin/tgtd").exists():
        pytest.skip("tgtd is not installed (Debian package tgt)")
    lab = ScenarioLab(tmp_path / "lab", guests=GUESTS, log=print)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(params=SEEDS)
def jitter(request: pytest.FixtureRequest) -> random.Random:
    """Timing jitter for a scenario: where in the guests' write cycle the fault lands."""
    return random.Random(request.param)
