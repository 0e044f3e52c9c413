"""Fence a peer through an ordered topology of levels: storage, power, wait-t-safe.

A level succeeds only when its effect was verified (the peer's key read back gone on every
LUN; the BMC read back "off"; T_safe passed after a preempt the peer's watchdog must see).
The next level runs when the previous one failed or could not verify. One exception: when
the storage level finds our own key gone we lost a fence race against the peer, and we stop
at once without touching the peer's power: the winner owns the storage and we self-fence
through our watchdog (DESIGN section 4.2).

The decision takes its adapters (the holder, a verified power-off, a sleeper, the per-peer
lock) and clock as parameters; it never prints, logs or exits. The result records every
level tried with its timing and the reason it did or did not verify.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from stonewall.clock import Clock, Deadline
from stonewall.config.model import FenceLevel, FenceLevelKind, Node
from stonewall.fencing.agent_level import GroupOff
from stonewall.fencing.after_power import preempt_after_power
from stonewall.fencing.lock import PeerLockError, PeerLockTimeout
from stonewall.holder.api import Holder, HolderError, HolderUnavailable, HolderUntrusted
from stonewall.power.fence import PowerFenceResult


class PowerAdapterError(Exception):
    """The power adapter could not even try (unreadable secret, unusable IPMI settings)."""


# power_off(peer, deadline) -> a result whose `verified` says a status read reported OFF.
PowerOff = Callable[[Node, Deadline], PowerFenceResult]
Sleeper = Callable[[float], None]
# serialise(peer_name, deadline) -> a context holding the peer's fence lock, yielding the
# seconds spent waiting (stonewall.fencing.lock.peer_lock with the directory bound).
Serialiser = Callable[[str, Deadline], AbstractContextManager[float]]


@dataclass(frozen=True)
class FenceAdapters:
    """The outside world the decision acts on."""

    storage: Holder  # the node's holder; only `preempt` is used here
    power_off: PowerOff | None  # None: no BMC adapter here, a power level cannot verify
    sleep: Sleeper
    serialise: Serialiser
    # None: no fence-agents adapter here, an agent or fabric level cannot verify
    agent_off: GroupOff | None = None


class FenceVerdict(str, Enum):
    """How a fence ended."""

    FENCED_BY_STORAGE = "fenced-by-storage"  # key verified gone on every LUN
    POWERED_OFF = "powered-off"  # BMC, or every device of an agent level, verified off
    FABRIC_FENCED = "fenced-by-fabric"  # every SAN port of the peer verified down
    T_SAFE_ELAPSED = "t-safe-elapsed"  # key preempted somewhere, T_safe waited out
    LOST_RACE = "lost-race"  # our own key was gone: the peer fenced us first
    FAILED = "failed"  # no level verified

    @property
    def fenced(self) -> bool:
        return self in (FenceVerdict.FENCED_BY_STORAGE, FenceVerdict.POWERED_OFF,
                        FenceVerdict.T_SAFE_ELAPSED, FenceVerdict.FABRIC_FENCED)


_VERDICT_OF_LEVEL = {
    FenceLevelKind.STORAGE: FenceVerdict.FENCED_BY_STORAGE,
    FenceLevelKind.POWER: FenceVerdict.POWERED_OFF,
    FenceLevelKind.WAIT_T_SAFE: FenceVerdict.T_SAFE_ELAPSED,
    FenceLevelKind.AGENT: FenceVerdict.POWERED_OFF,
    FenceLevelKind.FABRIC: FenceVerdict.FABRIC_FENCED,
}
# Levels that take the acting node's power delay: they cut the peer off, and the peer may be
# cutting us off at the same moment.
_DELAYED = (FenceLevelKind.POWER, FenceLevelKind.AGENT, FenceLevelKind.FABRIC)
DEFAULT_AFTER_POWER_TIMEOUT = 10.0  # without a storage level to take the timeout from


@dataclass(frozen=True)
class LevelAttempt:
    """One level tried: when (seconds after the fence began), how long, and why."""

    kind: FenceLevelKind
    started: float
    duration: float
    verified: bool
    reason: str  # what was verified, or why it was not
    details: Mapping[str, Any] = field(default_factory=dict)
    devices: str | None = None  # agent and fabric levels: the device group
    # why a level ran after the fence was already verified: "after-storage" (a power-off on
    # top of a storage fence), "after-power" (preempting a powered-off peer's key)
    follow_up: str | None = None

    def describe(self) -> str:
        state = "verified" if self.verified else "not verified"
        name = f"{self.kind.value} {self.devices}" if self.devices else self.kind.value
        after = f" ({self.follow_up})" if self.follow_up else ""
        return f"{name}{after} {state} in {self.duration:.3f} s: {self.reason}"


@dataclass(frozen=True)
class FenceResult:
    """What fencing `peer` did and proved."""

    peer: str
    luns: tuple[str, ...]
    verdict: FenceVerdict
    attempts: tuple[LevelAttempt, ...]
    lock_wait: float  # seconds spent waiting for another fence of the same peer
    started_at: float  # wall clock
    elapsed: float
    reason: str = ""  # why nothing was tried (lock timeout), when no attempt explains it

    @property
    def fenced(self) -> bool:
        return self.verdict.fenced

    def summary(self) -> str:
        """One log line."""
        head = (f"{self.peer} {self.verdict.value}" if self.fenced
                else f"{self.peer} NOT fenced ({self.verdict.value})")
        parts = [a.describe() for a in self.attempts] + ([self.reason] if self.reason else [])
        waited = f", waited {self.lock_wait:.2f} s for the peer lock" if self.lock_wait >= 0.01 \
            else ""
        return f"{head} after {self.elapsed:.3f} s{waited}; " + "; ".join(parts)

    def to_jsonable(self) -> dict[str, Any]:
        """The record of this fence (event log), the same for every entry point."""
        return {
            "verdict": self.verdict.value,
            "luns": list(self.luns),
            "elapsed": round(self.elapsed, 3),
            "lock_wait": round(self.lock_wait, 3),
            "reason": self.reason,
            "levels": [{"level": a.kind.value, "devices": a.devices, "follow_up": a.follow_up,
                        "started": round(a.started, 3), "duration": round(a.duration, 3),
                        "verified": a.verified, "reason": a.reason, **a.details}
                       for a in self.attempts],
        }


def fence_budget(levels: Sequence[FenceLevel], power_delay: float) -> float:
    """The longest one fence can take: every level's timeout, the power delay, and the
    preempt that follows a power-only fence."""
    has_power = any(level.kind in _DELAYED for level in levels)
    powers_off = any(level.kind in (FenceLevelKind.POWER, FenceLevelKind.AGENT)
                     for level in levels)
    return sum(level.timeout for level in levels) + (power_delay if has_power else 0.0) + (
        after_power_timeout(levels) if powers_off else 0.0)


def after_power_timeout(levels: Sequence[FenceLevel]) -> float:
    """The deadline of the preempt after a power-only fence: the storage level's timeout."""
    return next((level.timeout for level in levels if level.kind is FenceLevelKind.STORAGE),
                DEFAULT_AFTER_POWER_TIMEOUT)


def fence_peer(peer: Node, lun_names: Sequence[str], levels: Sequence[FenceLevel],
               adapters: FenceAdapters, clock: Clock, *, power_delay: float = 0.0,
               t_safe: float | None = None) -> FenceResult:
    """Fence `peer` through `levels` in order, under the peer's lock; never raises for a
    failed level (the result says why).

    `power_delay` is the ACTING node's `Node.power_delay`, slept before the power level, so
    two nodes that lost each other do not power each other off at the same moment.
    `t_safe` (stonewall.config.timing.t_safe) enables the wait-t-safe level."""
    if not levels:
        raise ValueError("no fencing levels: a peer cannot be proven fenced")
    if power_delay < 0:
        raise ValueError(f"power_delay must not be negative, not {power_delay}")
    luns = tuple(lun_names)
    start, started_at = clock.monotonic(), clock.wall()
    budget = fence_budget(levels, power_delay)

    def finish(verdict: FenceVerdict, attempts: list[LevelAttempt], lock_wait: float,
               reason: str = "") -> FenceResult:
        return FenceResult(peer.name, luns, verdict, tuple(attempts), lock_wait, started_at,
                           clock.monotonic() - start, reason)

    # Waiting as long as one whole fence lets the first caller finish; the waiter then
    # finds the peer fenced at once, since preempting an absent key only verifies.
    try:
        with adapters.serialise(peer.name, Deadline.after(budget, clock)) as lock_wait:
            run = _Run(peer, luns, adapters, clock, start, power_delay, t_safe,
                       after_power_timeout(levels))
            for index, level in enumerate(levels):
                attempt = run.level(level)
                run.attempts.append(attempt)
                if run.lost_race:
                    return finish(FenceVerdict.LOST_RACE, run.attempts, lock_wait)
                if attempt.verified:
                    return finish(run.follow_up(level, levels[index + 1:]), run.attempts,
                                  lock_wait)
            return finish(FenceVerdict.FAILED, run.attempts, lock_wait)
    except (PeerLockTimeout, PeerLockError) as err:
        return finish(FenceVerdict.FAILED, [], clock.monotonic() - start,
                      f"peer lock: {type(err).__name__}: {err}")


class _Run:
    """The state one fence carries from level to level."""

    def __init__(self, peer: Node, luns: tuple[str, ...], adapters: FenceAdapters, clock: Clock,
                 start: float, power_delay: float, t_safe: float | None,
                 after_power_timeout: float) -> None:
        self.peer, self.luns, self.adapters, self.clock = peer, luns, adapters, clock
        self.start, self.power_delay, self.t_safe = start, power_delay, t_safe
        self.after_power_timeout = after_power_timeout
        self.attempts: list[LevelAttempt] = []
        self.lost_race = False
        # Monotonic time by which some LUN had the peer's key removed: the peer's watchdog
        # checks every LUN, so from then on it stops petting within T_safe.
        self.preempted_by: float | None = None
        self.delayed = False  # the power delay is slept once per fence

    def level(self, level: FenceLevel, follow_up: str | None = None) -> LevelAttempt:
        began = self.clock.monotonic()
        verified, reason, details = {
            FenceLevelKind.STORAGE: self._storage,
            FenceLevelKind.POWER: self._power,
            FenceLevelKind.WAIT_T_SAFE: self._wait_t_safe,
            FenceLevelKind.AGENT: self._agents,
            FenceLevelKind.FABRIC: self._agents,
        }[level.kind](level)
        return LevelAttempt(level.kind, began - self.start, self.clock.monotonic() - began,
                            verified, reason, details, level.devices, follow_up)

    # -- after the fence verified -------------------------------------------------------------
    def follow_up(self, verified: FenceLevel, rest: Sequence[FenceLevel]) -> FenceVerdict:
        """The verdict of a fence `verified` proved, after the work it asks for next.

        After a storage fence, the later levels marked `also_after_storage` power the peer
        off too (DESIGN 4.4): a storage-fenced peer may run on, its guests' MAC and IP on the
        network, until its watchdog fires; once it is verified off, `safe` guests need not
        wait T_safe, and the verdict says "powered off". After a power-only fence the
        peer's key is still registered: it is preempted on every LUN (it cannot race us
        now), and what could not be done is recorded; the power verdict stands."""
        if verified.kind is FenceLevelKind.STORAGE:
            for level in rest:
                if level.also_after_storage:
                    attempt = self.level(level, "after-storage")
                    self.attempts.append(attempt)
                    if attempt.verified:
                        return FenceVerdict.POWERED_OFF
            return FenceVerdict.FENCED_BY_STORAGE
        verdict = _VERDICT_OF_LEVEL[verified.kind]
        if verdict is FenceVerdict.POWERED_OFF and self.luns:
            began = self.clock.monotonic()
            outcome = preempt_after_power(self.adapters.storage, self.peer.name,
                                          Deadline.after(self.after_power_timeout, self.clock))
            self.attempts.append(LevelAttempt(
                FenceLevelKind.STORAGE, began - self.start, self.clock.monotonic() - began,
                outcome.done, outcome.describe(), outcome.details(), None, "after-power"))
        return verdict

    # -- agent and fabric ---------------------------------------------------------------------
    def _agents(self, level: FenceLevel) -> tuple[bool, str, dict[str, Any]]:
        assert level.devices is not None
        if self.adapters.agent_off is None:
            return False, "no fence-agents adapter on this node", {}
        if not self.peer.devices(level.devices):
            return False, f"{self.peer.name} has no fence_devices.{level.devices}", {}
        details: dict[str, Any] = {"delay": self._delay()}
        result = self.adapters.agent_off(self.peer, level.devices,
                                         Deadline.after(level.timeout, self.clock))
        details["results"] = [
            {"device": device.device, "verified": device.verified,
             "failure": device.failure.value if device.failure else None,
             "detail": device.detail,
             "calls": [{"action": call.action.value, "exit": call.returncode,
                        "killed_at_deadline": call.returncode is None,
                        "duration": round(call.duration, 3), "stderr": call.stderr,
                        "stdout": call.stdout} for call in device.calls]}
            for device in result.devices]
        return result.verified, result.summary(), details

    def _delay(self) -> float:
        """Sleep the power delay, the first time a level that cuts the peer off runs."""
        if self.delayed or self.power_delay <= 0:
            return 0.0
        self.delayed = True
        self.adapters.sleep(self.power_delay)
        return self.power_delay

    # -- storage ------------------------------------------------------------------------------
    def _storage(self, level: FenceLevel) -> tuple[bool, str, dict[str, Any]]:
        if not self.luns:
            # The holder reads an empty LUN list as "every LUN": never the intent here.
            return False, "no LUNs arbitrate for this resource", {}
        deadline = Deadline.after(level.timeout, self.clock)
        try:
            outcome = self.adapters.storage.preempt(self.peer.name, list(self.luns), deadline)
        except HolderUnavailable as err:
            return False, f"holder unavailable: {err}", {}
        except HolderUntrusted as err:
            return False, f"holder untrusted: {err}", {"holder_error": type(err).__name__}
        except HolderError as err:
            return False, f"holder refused: {err}", {"holder_error": type(err).__name__}
        details = {"preempt": outcome.preempt.to_jsonable(),
                   "verification": outcome.verification.to_jsonable()}
        if outcome.preempt.lost_race:
            self.lost_race = True
            return False, ("lost the fence race, our own key is gone: "
                           f"{outcome.preempt.lost_detail or 'no detail'}"), details
        if any(item.ok for item in outcome.preempt.luns):
            self.preempted_by = self.clock.monotonic()
        if outcome.fenced:
            return True, f"key gone on every path that answered, LUNs {', '.join(self.luns)}", \
                details
        return False, "; ".join(outcome.shortfall()) or "the holder did not prove it", details

    # -- power --------------------------------------------------------------------------------
    def _power(self, level: FenceLevel) -> tuple[bool, str, dict[str, Any]]:
        if self.adapters.power_off is None:
            return False, "no power adapter on this node", {}
        if self.peer.ipmi is None:
            return False, f"{self.peer.name} has no ipmi settings", {}
        details: dict[str, Any] = {"delay": self._delay()}
        try:
            result = self.adapters.power_off(self.peer, Deadline.after(level.timeout,
                                                                       self.clock))
        except PowerAdapterError as err:
            return False, f"cannot use the BMC: {err}", details
        details.update(attempts=[a.describe() for a in result.attempts],
                       reason=result.reason.value if result.reason else None)
        delayed = f" (after a {details['delay']:g} s power delay)" if details["delay"] else ""
        return result.verified, f"{result.summary()}{delayed}", details

    # -- wait-t-safe --------------------------------------------------------------------------
    def _wait_t_safe(self, level: FenceLevel) -> tuple[bool, str, dict[str, Any]]:
        if self.t_safe is None:
            return False, "T_safe is not known here", {}
        if self.preempted_by is None:
            # Without a preempt the peer's watchdog has no reason to fire: time proves nothing.
            return False, "no LUN had the peer's key removed, so its watchdog need not fire", {}
        wait = max(0.0, self.preempted_by + self.t_safe - self.clock.monotonic())
        details = {"t_safe": self.t_safe, "wait": wait}
        if wait > level.timeout:
            return False, (f"T_safe ({self.t_safe:g} s) needs {wait:.2f} s more, longer than "
                           f"the level's timeout ({level.timeout:g} s)"), details
        self.adapters.sleep(wait)
        return True, (f"T_safe ({self.t_safe:g} s) passed since the peer's key was "
                      "preempted: its watchdog has reset it"), details
