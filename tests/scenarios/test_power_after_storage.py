"""Power after storage (DESIGN 4.4): the same fence of a live peer, with and without a
power-off on top of the verified storage fence, and when its `safe` guest starts on the
survivor. Without it the guest waits T_safe after the fence (the peer's watchdog must have
fired); with the peer's power verified off it starts at once. Both timelines are printed
(the README's takeover figures)."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.lab.scenario import LabGuest, ScenarioLab
from stonewall.config.timing import t_safe

from .test_failover import assert_one_rule

STORAGE_FENCED, POWERED_OFF = 4, 7
GUESTS = (LabGuest("web1", "node-a", 3, "safe"), LabGuest("db1", "node-b", 4, "immediate"))


@pytest.fixture(params=[False, True], ids=["storage-only", "power-after-storage"])
def scenario(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ScenarioLab]:
    if shutil.which("tgtd") is None and not Path("/usr/sbin/tgtd").exists():
        pytest.skip("tgtd is not installed (Debian package tgt)")
    lab = ScenarioLab(tmp_path / "lab", guests=GUESTS, log=print,
                      power_after_storage=request.param)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def test_a_safe_guest_starts_at_once_only_when_the_peer_is_also_powered_off(scenario):
    time.sleep(0.5)
    fault = time.monotonic()
    record = scenario.drbd_fence_peer("node-b", "node-a")
    safe = t_safe(scenario.config("node-b").watchdog)
    takeover = scenario.take_over("node-b", "node-a", record)
    restored = time.monotonic() - fault
    (web1,) = takeover.guests
    assert web1.running
    if scenario.power_after_storage:
        assert record.exit_code == POWERED_OFF, record.output
        assert scenario.nodes["node-a"].bmc.state().power == "off"
        assert web1.waited < 0.5
    else:
        assert record.exit_code == STORAGE_FENCED, record.output
        assert web1.waited > safe - 1.0  # T_safe after the fence was verified
    print(f"{'power after storage' if scenario.power_after_storage else 'storage only'}: "
          f"fence-peer {record.ended - record.started:.2f}s, web1 waited {web1.waited:.2f}s "
          f"(T_safe {safe:g}s), fence start to web1 running {restored:.2f}s")
    time.sleep(0.3)
    assert_one_rule(scenario, {"web1": ["node-b"], "db1": ["node-b"]})
