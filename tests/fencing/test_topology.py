"""The topology's decisions on a simulated clock: level order, the power delay, what the
wait-t-safe level needs, and the per-peer lock. Storage is the real holder client (with no
holder behind its socket), the lock a real flock; the BMC is an in-memory stand-in that
powers off when told, driven by the real verified power-off."""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import yaml

from stonewall.holder.api import StorageFenceOutcome
from stonewall.storage.reports import LunCheck, LunFence, PreemptReport, VerifyReport
from stonewall.clock import Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import ClusterConfig, FenceLevel, FenceLevelKind, IpmiSettings, Node, Secret
from stonewall.fencing.lock import peer_lock
from stonewall.fencing.topology import FenceAdapters, FenceVerdict, fence_budget, fence_peer
from stonewall.holder.client import HolderClient
from stonewall.power.fence import power_off_verified
from stonewall.power.protocol import PowerState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multipath-cluster.yaml"
STORAGE = FenceLevel(FenceLevelKind.STORAGE, 5.0)
POWER = FenceLevel(FenceLevelKind.POWER, 10.0)
T_SAFE_LEVEL = FenceLevel(FenceLevelKind.WAIT_T_SAFE, 30.0)
PEER = Node("node-a", 1, 0x1, ipmi=IpmiSettings("127.0.0.1", "admin", Secret(env="X")))

from ..sim_clock import SimClock


class StandInBmc:
    """A BMC that answers at once and powers off when told (and logs when, in sim time)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.state = PowerState.ON
        self.off_at: float | None = None

    def power_state(self, deadline: Deadline) -> PowerState:
        return self.state

    def power_off(self, deadline: Deadline) -> None:
        self.state, self.off_at = PowerState.OFF, self.clock.now

    def power_on(self, deadline: Deadline) -> None:
        self.state = PowerState.ON


def config_without_holder(tmp_path: Path) -> ClusterConfig:
    """The example configuration, its runtime directory in `tmp_path`: no holder there."""
    document = yaml.safe_load(EXAMPLE.read_text())
    document["paths"]["runtime_dir"] = str(tmp_path / "run")
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_config(str(path))


def adapters(tmp_path: Path, clock: SimClock, bmc: StandInBmc | None) -> FenceAdapters:
    power = None if bmc is None else (
        lambda node, deadline: power_off_verified(bmc, deadline, clock, 0.5))
    return FenceAdapters(storage=HolderClient(config_without_holder(tmp_path)),
                         power_off=power, sleep=clock.sleep,
                         serialise=partial(peer_lock, str(tmp_path / "run"), clock=clock))


def test_storage_that_cannot_act_falls_through_to_power_after_the_delay(tmp_path):
    clock = SimClock()
    bmc = StandInBmc(clock)
    start = clock.now
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, POWER], adapters(tmp_path, clock, bmc),
                        clock, power_delay=3.0)
    assert result.verdict is FenceVerdict.POWERED_OFF and result.fenced
    storage, power, after = result.attempts
    assert (storage.kind, storage.verified) == (FenceLevelKind.STORAGE, False)
    assert "holder unavailable" in storage.reason
    assert (power.kind, power.verified) == (FenceLevelKind.POWER, True)
    assert bmc.off_at == start + 3.0  # the delay came first, then the command
    assert "after a 3 s power delay" in power.reason
    # Storage after power: the holder is still not there, so the key stays, and says so.
    assert (after.kind, after.follow_up, after.verified) == (
        FenceLevelKind.STORAGE, "after-power", False)
    assert "holder unavailable" in after.reason and "left to do" in after.reason


def test_no_level_verified_is_failed_with_every_reason(tmp_path):
    clock = SimClock()
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, POWER], adapters(tmp_path, clock, None),
                        clock)
    assert result.verdict is FenceVerdict.FAILED and not result.fenced
    assert [a.reason for a in result.attempts][1] == "no power adapter on this node"
    assert "NOT fenced" in result.summary() and "holder unavailable" in result.summary()


def test_wait_t_safe_proves_nothing_without_a_preempt(tmp_path):
    clock = SimClock()
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, T_SAFE_LEVEL],
                        adapters(tmp_path, clock, None), clock, t_safe=17.0)
    assert result.verdict is FenceVerdict.FAILED
    assert "its watchdog need not fire" in result.attempts[1].reason
    assert clock.slept == []  # it did not wait for nothing


def test_wait_t_safe_needs_t_safe(tmp_path):
    clock = SimClock()
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, T_SAFE_LEVEL],
                        adapters(tmp_path, clock, None), clock)
    assert result.attempts[1].reason == "T_safe is not known here"


def test_a_fence_of_the_same_peer_in_progress_blocks_until_the_budget_passes(tmp_path):
    clock = SimClock()
    bmc = StandInBmc(clock)
    with peer_lock(str(tmp_path / "run"), PEER.name, Deadline.after(1, clock), clock):
        result = fence_peer(PEER, ["arbiter0"], [STORAGE, POWER],
                            adapters(tmp_path, clock, bmc), clock, power_delay=2.0)
    assert result.verdict is FenceVerdict.FAILED and result.attempts == ()
    assert "PeerLockTimeout" in result.reason
    # every level, the delay, and the preempt after a power-only fence (the storage timeout)
    assert result.elapsed >= fence_budget([STORAGE, POWER], 2.0) == 5 + 10 + 2 + 5
    assert bmc.state is PowerState.ON


def test_levels_and_delays_are_checked(tmp_path):
    clock = SimClock()
    with pytest.raises(ValueError, match="no fencing levels"):
        fence_peer(PEER, ["arbiter0"], [], adapters(tmp_path, clock, None), clock)
    with pytest.raises(ValueError, match="power_delay"):
        fence_peer(PEER, ["arbiter0"], [STORAGE], adapters(tmp_path, clock, None),
                   clock, power_delay=-1)


class StandInHolder:
    """A holder whose preempt always proves the key gone (the SAN side is tested elsewhere)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str] | None]] = []

    def preempt(self, victim_node, lun_names, deadline) -> StorageFenceOutcome:
        self.calls.append((victim_node, lun_names))
        luns = tuple(lun_names or ["arbiter0", "web1-disk"])
        return StorageFenceOutcome(victim_node, luns,
                            PreemptReport([LunFence(n, "preempt", "p0", True) for n in luns]),
                            VerifyReport(luns, tuple(LunCheck(n, True, 1, ()) for n in luns)))


def test_power_after_storage_turns_a_storage_fence_into_a_power_off(tmp_path):
    clock = SimClock()
    bmc = StandInBmc(clock)
    holder = StandInHolder()
    after_storage = FenceLevel(FenceLevelKind.POWER, 10.0, also_after_storage=True)
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, after_storage],
                        replace(adapters(tmp_path, clock, bmc), storage=holder), clock)
    assert result.verdict is FenceVerdict.POWERED_OFF
    storage, power = result.attempts
    assert storage.verified and (power.follow_up, power.verified) == ("after-storage", True)
    assert bmc.state is PowerState.OFF
    assert holder.calls == [("node-a", ["arbiter0"])]  # no second preempt: the key is gone


def test_a_power_level_without_the_flag_does_not_run_after_storage(tmp_path):
    clock = SimClock()
    bmc = StandInBmc(clock)
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, POWER],
                        replace(adapters(tmp_path, clock, bmc), storage=StandInHolder()), clock)
    assert result.verdict is FenceVerdict.FENCED_BY_STORAGE and len(result.attempts) == 1
    assert bmc.state is PowerState.ON


def test_power_after_storage_that_fails_leaves_the_storage_verdict(tmp_path):
    clock = SimClock()
    after_storage = FenceLevel(FenceLevelKind.POWER, 10.0, also_after_storage=True)
    result = fence_peer(PEER, ["arbiter0"], [STORAGE, after_storage],
                        replace(adapters(tmp_path, clock, None), storage=StandInHolder()), clock)
    assert result.verdict is FenceVerdict.FENCED_BY_STORAGE
    assert result.attempts[1].reason == "no power adapter on this node"


def test_after_a_power_only_fence_the_key_is_preempted_on_every_lun(tmp_path):
    clock = SimClock()
    holder = StandInHolder()
    result = fence_peer(PEER, ["arbiter0"], [POWER],
                        replace(adapters(tmp_path, clock, StandInBmc(clock)), storage=holder),
                        clock)
    assert result.verdict is FenceVerdict.POWERED_OFF
    assert holder.calls == [("node-a", None)]  # None: every LUN, guest LUNs included
    assert result.attempts[-1].verified and result.attempts[-1].follow_up == "after-power"
