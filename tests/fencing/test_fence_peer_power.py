"""fence-peer with a power level after storage: node holders on tgtd, one lab BMC per node on
127.0.0.1. Power runs only when storage could not prove the fence, never after a lost race,
and only a BMC that reads back "off" counts."""
from __future__ import annotations

from typing import Any

import pytest

from stonewall.eventlog import read_events
from stonewall.lab.bmc_process import BmcProcess
from stonewall.power.protocol import PowerState

from .drbd_calls import drbd9_env, lab_config_extra
from .test_fence_peer_storage import FENCED_BY_STORAGE, FROZEN, fence

POWERED_OFF = 7  # DRBD's P_FENCING: "peer was stonithed"
STORAGE_TIMEOUT, POWER_TIMEOUT, POWER_DELAY = 4.0, 8.0, 1.0
# Process start, config load and the holder's own reconnect attempt, on a loaded CI machine.
SLACK = 6.0


@pytest.fixture
def lab_extra(bmcs: dict[str, BmcProcess]) -> dict[str, Any]:
    return lab_config_extra(bmcs=bmcs, power_delay={"node-b": POWER_DELAY}, fencing=[
        {"level": "storage", "timeout": STORAGE_TIMEOUT},
        {"level": "power", "timeout": POWER_TIMEOUT}])


def cut_node_b_from_the_array(lab, tgtd) -> None:
    """Every path of node-b goes down: the portals close and its sessions are dropped."""
    for portal in list(tgtd.portals):
        tgtd.remove_portal(portal)
    assert tgtd.drop_connections(1, lab.cluster.initiator("node-b")) > 0


def test_all_storage_paths_down_falls_back_to_power_and_exits_7(lab, programs, tgtd, bmcs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    cut_node_b_from_the_array(lab, tgtd)
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == POWERED_OFF, run.stderr
    assert "node-a powered-off" in run.stderr and "exit 7 (PEER_STONITHED)" in run.stderr
    assert bmcs["node-a"].state().power is PowerState.OFF
    assert bmcs["node-b"].state().power is PowerState.ON
    storage, power, after = read_events(lab.config("node-b").paths.event_log)[-1]["details"][
        "levels"]
    assert (storage["level"], storage["verified"]) == ("storage", False)
    assert "no path answered" in storage["reason"]
    assert (power["level"], power["verified"], power["delay"]) == ("power", True, POWER_DELAY)
    # node-b's power delay passed between the storage level and the power level.
    assert power["duration"] >= POWER_DELAY
    # Storage after power: node-a is off, but node-b cannot reach the array to preempt its
    # key; that is recorded with what is left to do, and the fence stands.
    assert (after["level"], after["follow_up"], after["verified"]) == (
        "storage", "after-power", False)
    assert "left to do" in after["reason"] and after["left"]


def test_mute_bmc_fails_within_the_deadline_and_keeps_io_frozen(lab, programs, tgtd, bmcs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    cut_node_b_from_the_array(lab, tgtd)
    bmcs["node-a"].set_mute()
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FROZEN, run.stderr
    assert "NOT fenced" in run.stderr and "BMC unreachable" in run.stderr
    assert run.elapsed < STORAGE_TIMEOUT + POWER_DELAY + POWER_TIMEOUT + SLACK
    assert bmcs["node-a"].state().power is PowerState.ON


def test_the_loser_of_a_fence_race_never_powers_the_winner_off(lab, programs, bmcs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    first = fence(lab, programs, "node-a", drbd9_env("node-a", "node-b", "r0"))
    assert first.exit_code == FENCED_BY_STORAGE, first.stderr
    # node-b lost: its key is gone, so its fence of node-a stops at the storage level.
    loser = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert loser.exit_code == FROZEN and "lost-race" in loser.stderr
    assert [level["level"] for level in read_events(
        lab.config("node-b").paths.event_log)[-1]["details"]["levels"]] == ["storage"]
    for node in ("node-a", "node-b"):
        state = bmcs[node].state()
        assert (state.power, state.off_commands) == (PowerState.ON, 0), node
