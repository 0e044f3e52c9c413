"""The self-fencing service's decision logic: prove ownership, pet only while proven.

Two threads, as sbd's servants and inquisitor and sanlock's renewal thread and wdmd:
- the CHECKER calls the injected `check(deadline)` every `interval` (it may hang: an I/O
  to a dead SAN cannot be cancelled);
- the PETTER never does storage I/O: each tick it looks at the AGE of the newest good
  check and pets the device only while that age is below min(grace, check_deadline).
So a hung, crashed or slow checker, like lost storage, ends in "no fresh proof" and the
watchdog fires; a check that finds the key gone self-fences at once. Self-fencing is
final: guests are stopped through `on_fenced`, petting never resumes, the key is never
re-registered, and a clean stop is refused. The bounds are in timing.py.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.model import WatchdogSettings
from stonewall.watchdog.device import WatchdogDevice
from stonewall.watchdog.errors import (
    DisarmFailed,
    GuestsStillRunning,
    KeyNotRegistered,
    OwnershipUnverified,
    SelfFencingInProgress,
    WatchdogError,
)
from stonewall.watchdog.systemd import ServiceNotifier
from stonewall.config.timing import pet_period, petting_limit

LOG = logging.getLogger("stonewall.watchdog")


class CheckOutcome(str, Enum):
    OWNED = "owned"  # my key is registered on my LUNs
    FENCED = "fenced"  # my key is gone: someone preempted me
    UNREACHABLE = "unreachable"  # could not tell (errors, timeouts)


@dataclass(frozen=True)
class CheckResult:
    """One ownership check's answer; `detail` says which LUN/path and why, for the log."""

    outcome: CheckOutcome
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.outcome.value}: {self.detail}" if self.detail else self.outcome.value


class LoopState(str, Enum):
    STOPPED = "stopped"  # not armed (never started, refused, or cleanly disarmed)
    ARMED = "armed"  # armed after a good first check, first keepalive not yet sent
    PETTING = "petting"
    SELF_FENCING = "self-fencing"  # petting stopped for good; the reset is coming


@dataclass(frozen=True)
class Evidence:
    """What the checker has learned so far, as the petter judges it (monotonic times)."""

    last_owned_at: float  # start of the newest good check
    last_result: CheckResult  # the newest answer of any outcome


def self_fence_reason(now: float, evidence: Evidence, settings: WatchdogSettings) -> str | None:
    """Why this node must self-fence now, or None while it may keep petting."""
    if evidence.last_result.outcome is CheckOutcome.FENCED:
        return f"key gone ({evidence.last_result.detail or 'preempted'})"
    age = now - evidence.last_owned_at
    limit = petting_limit(settings)
    if age < limit:
        return None
    if evidence.last_result.outcome is CheckOutcome.UNREACHABLE:
        return (f"ownership unverified for {age:.1f}s (limit {limit:g}s): "
                f"{evidence.last_result.detail or 'storage unreachable'}")
    return (f"no check result for {age:.1f}s (limit {limit:g}s): "
            "the checker is hung or dead")


def judge(result: CheckResult, started: float, finished: float,
          settings: WatchdogSettings) -> CheckResult:
    """A good answer that came after its io_deadline does not count: the proof is stale
    and the storage is too slow to rely on. A late "key gone" is still a fact."""
    took = finished - started
    if result.outcome is CheckOutcome.OWNED and took > settings.io_deadline:
        return CheckResult(CheckOutcome.UNREACHABLE,
                           f"check answered after {took:.2f}s, beyond io_deadline "
                           f"{settings.io_deadline:g}s")
    return result


@dataclass(frozen=True)
class WatchdogStatus:
    """A snapshot for `stonewall watchdog status` (times: wall = epoch, monotonic = ours)."""

    state: LoopState
    device: str
    timeout: float
    petting_limit: float
    last_check_wall: float | None  # start of the newest good check
    last_check_monotonic: float | None
    last_check_age: float | None
    margin_left: float | None  # seconds before petting stops without a new good check
    last_result: str | None
    last_keepalive_monotonic: float | None
    keepalive_error: str | None
    checker_alive: bool
    self_fencing_reason: str | None
    guest_stop_error: str | None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


class OwnershipWatchdog:
    """Runs once: start() proves ownership and arms, stop() disarms when nothing depends
    on the LUNs any more. Adapters and clock are parameters so scenario tests drive it."""

    def __init__(self, *, device: WatchdogDevice, settings: WatchdogSettings,
                 check: Callable[[Deadline], CheckResult],
                 on_fenced: Callable[[str], None],
                 guests_running: Callable[[], bool],
                 notifier: ServiceNotifier | None = None,
                 clock: Clock = SYSTEM_CLOCK,
                 log: logging.Logger = LOG) -> None:
        self.device = device
        self.settings = settings
        self.check = check
        self.on_fenced = on_fenced
        self.guests_running = guests_running
        self.notifier = notifier
        self.clock = clock
        self.log = log
        self._lock = threading.Lock()
        self._first_result = threading.Event()
        self._halt = threading.Event()  # ends both threads (clean stop, or start refused)
        self._self_fencing = threading.Event()
        self._state = LoopState.STOPPED
        self._armed_timeout = settings.timeout
        self._last_owned_at: float | None = None
        self._last_owned_wall: float | None = None
        self._last_result: CheckResult | None = None
        self._last_keepalive_at: float | None = None
        self._keepalive_error: str | None = None
        self._reason: str | None = None
        self._guest_stop_error: str | None = None
        self._checker = threading.Thread(target=self._check_loop, name="stonewall-checker",
                                         daemon=True)
        self._petter = threading.Thread(target=self._pet_loop, name="stonewall-petter",
                                        daemon=True)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Arm only after a good check: wait up to io_deadline for the first answer.
        Otherwise raise KeyNotRegistered / OwnershipUnverified (or the device's error) with
        nothing armed; guests already running here are then unprotected, so they are
        stopped through on_fenced first."""
        if self._checker.ident is not None:
            raise WatchdogError("an OwnershipWatchdog runs once; make a new one")
        self._checker.start()
        try:
            self._arm_after_first_check(Deadline.after(self.settings.io_deadline, self.clock))
        except BaseException as exc:
            self._halt.set()
            if self._guests_may_run():
                self._call_on_fenced(f"start refused ({exc}) while guests run")
            raise
        # READY=1 before the petter's first STATUS: systemd (and the test) read them in order
        self._notify(lambda n: n.ready())
        self._petter.start()

    def _arm_after_first_check(self, first_check_deadline: Deadline) -> None:
        if not self._first_result.wait(first_check_deadline.remaining()):
            raise OwnershipUnverified(
                f"first ownership check did not answer within {self.settings.io_deadline:g}s")
        with self._lock:
            result = self._last_result
            assert result is not None
            if result.outcome is CheckOutcome.FENCED:
                raise KeyNotRegistered(f"not arming: {result}")
            if result.outcome is not CheckOutcome.OWNED:
                raise OwnershipUnverified(f"not arming: {result}")
            self._armed_timeout = self.device.arm(self.settings.timeout)
            self._state = LoopState.ARMED
        self.log.info("watchdog %s armed (%gs) after check: %s", self.device.name,
                      self._armed_timeout, result)

    def stop(self, join_deadline: Deadline) -> None:
        """Clean stop: magic close, only when no guest depends on the LUNs (else raise
        GuestsStillRunning and keep petting). Never while self-fencing. Threads get until
        `join_deadline` to end."""
        with self._lock:
            self._refuse_stop_if_self_fencing()
            if self._state is LoopState.STOPPED:
                return
        if self._guests_may_run():
            raise GuestsStillRunning("guests that depend on the LUNs still run here; "
                                     "the watchdog stays armed")
        with self._lock:
            self._refuse_stop_if_self_fencing()  # the checker may have found the key gone
            try:
                self.device.disarm()
            except DisarmFailed as exc:
                self._begin_self_fencing(f"clean stop failed: {exc}")
                raise
            self._state = LoopState.STOPPED
        self._halt.set()
        self.log.info("watchdog %s disarmed (clean stop, no guests)", self.device.name)
        self._notify(lambda n: n.status("stopped: watchdog disarmed, no guests"))
        self._join_threads(join_deadline)

    def abandon(self, join_deadline: Deadline) -> None:
        """Exit without a clean stop: self-fence if armed (guests stopped, petting ends),
        end both threads and release the device WITHOUT the magic character, so the
        watchdog still fires. The kernel pings once on such a close, so the reset may come
        up to `timeout` after this call; a service should rather stay alive while
        self-fencing (timing.py)."""
        with self._lock:
            if self._state in (LoopState.ARMED, LoopState.PETTING):
                self._begin_self_fencing("the service is exiting without a clean stop")
            self._halt.set()
            if self._state is LoopState.SELF_FENCING:
                try:
                    self.device.close()
                except WatchdogError as exc:  # already released, or the stand-in is gone
                    self.log.warning("releasing %s: %s", self.device.name, exc)
        self._join_threads(join_deadline)

    def _join_threads(self, deadline: Deadline) -> None:
        # A checker hung in I/O cannot be cancelled; it is a daemon thread, left behind.
        for thread in (self._petter, self._checker):
            if thread.ident is not None:
                thread.join(deadline.remaining())

    def wait_self_fencing(self, deadline: Deadline) -> bool:
        """Block until the node is self-fencing or `deadline`; True if it is."""
        return self._self_fencing.wait(deadline.remaining())

    def status(self) -> WatchdogStatus:
        """A consistent snapshot of the loop's state."""
        with self._lock:
            now = self.clock.monotonic()
            limit = petting_limit(self.settings)
            age = None if self._last_owned_at is None else now - self._last_owned_at
            return WatchdogStatus(
                state=self._state,
                device=self.device.name,
                timeout=self._armed_timeout,
                petting_limit=limit,
                last_check_wall=self._last_owned_wall,
                last_check_monotonic=self._last_owned_at,
                last_check_age=age,
                margin_left=None if age is None else limit - age,
                last_result=None if self._last_result is None else str(self._last_result),
                last_keepalive_monotonic=self._last_keepalive_at,
                keepalive_error=self._keepalive_error,
                checker_alive=self._checker.is_alive(),
                self_fencing_reason=self._reason,
                guest_stop_error=self._guest_stop_error,
            )

    # --- checker thread ----------------------------------------------------------------------

    def _check_loop(self) -> None:
        next_start = self.clock.monotonic()
        while not self._halt.wait(max(0.0, next_start - self.clock.monotonic())):
            if self._self_fencing.is_set():
                return  # nothing left to prove; and we never re-register
            started, started_wall = self.clock.monotonic(), self.clock.wall()
            try:
                result = self.check(Deadline.after(self.settings.io_deadline, self.clock))
            except Exception as exc:  # a check adapter's bug must not look like "owned"
                result = CheckResult(CheckOutcome.UNREACHABLE, f"check raised {exc!r}")
            finished = self.clock.monotonic()
            self._record(judge(result, started, finished, self.settings), started, started_wall)
            # Checks never overlap: a slow one delays the next instead of piling up threads.
            next_start = max(started + self.settings.interval, finished)

    def _record(self, result: CheckResult, started: float, started_wall: float) -> None:
        with self._lock:
            self._last_result = result
            if result.outcome is CheckOutcome.OWNED:
                self._last_owned_at, self._last_owned_wall = started, started_wall
            if self._state in (LoopState.ARMED, LoopState.PETTING):
                if result.outcome is not CheckOutcome.OWNED:
                    self.log.warning("ownership check: %s", result)
                self._self_fence_if_due()  # a "key gone" acts now, not at the next tick
        self._first_result.set()

    # --- petter thread -----------------------------------------------------------------------

    def _pet_loop(self) -> None:
        period = pet_period(self.settings)
        while True:
            self._pet_once()
            # systemd hears from us on every tick, self-fencing included: if it killed us
            # then, the kernel's close-ping would postpone the reset by a whole timeout.
            self._notify(lambda n: n.watchdog())
            if self._halt.wait(period):
                return

    def _pet_once(self) -> None:
        with self._lock:
            if self._state not in (LoopState.ARMED, LoopState.PETTING) or \
                    self._self_fence_if_due():
                return
            try:
                self.device.keepalive()
            except WatchdogError as exc:
                # Nothing better to do than to try again next tick; if the device stays
                # broken, the reset it was meant to give may or may not come.
                self._keepalive_error = str(exc)
                self.log.error("keepalive on %s failed: %s", self.device.name, exc)
                return
            self._last_keepalive_at, self._keepalive_error = self.clock.monotonic(), None
            if self._state is LoopState.ARMED:
                self._state = LoopState.PETTING
                self._notify(lambda n: n.status(f"petting {self.device.name}"))

    # --- self-fencing ------------------------------------------------------------------------

    def _self_fence_if_due(self) -> bool:
        """Called with the lock held while armed: judge the evidence, act on it."""
        assert self._last_owned_at is not None and self._last_result is not None
        evidence = Evidence(self._last_owned_at, self._last_result)
        reason = self_fence_reason(self.clock.monotonic(), evidence, self.settings)
        if reason is not None:
            self._begin_self_fencing(reason)
        return reason is not None

    def _begin_self_fencing(self, reason: str) -> None:
        """Called with the lock held: stop petting for good, then stop the guests (in a
        thread of their own, so a stuck libvirt delays nobody; the reset comes anyway)."""
        if self._state is LoopState.SELF_FENCING:
            return
        self._state, self._reason = LoopState.SELF_FENCING, reason
        self._self_fencing.set()
        self.log.critical("SELF-FENCING: %s; petting stopped, guests being stopped, the "
                          "watchdog %s resets this node within %gs", reason, self.device.name,
                          self._armed_timeout)
        self._notify(lambda n: n.status(f"SELF-FENCING: {reason}"))
        threading.Thread(target=self._call_on_fenced, args=(reason,),
                         name="stonewall-stop-guests", daemon=True).start()

    def _call_on_fenced(self, reason: str) -> None:
        try:
            self.on_fenced(reason)
        except Exception as exc:
            with self._lock:
                self._guest_stop_error = repr(exc)
            self.log.critical("stopping guests failed: %r", exc)

    def _refuse_stop_if_self_fencing(self) -> None:
        if self._state is LoopState.SELF_FENCING:
            raise SelfFencingInProgress(f"self-fencing ({self._reason}); only a reset ends it")

    def _guests_may_run(self) -> bool:
        try:
            return self.guests_running()
        except Exception as exc:  # cannot tell -> assume they run (the safe answer)
            self.log.error("cannot tell whether guests run (%r): assuming they do", exc)
            return True

    def _notify(self, send: Callable[[ServiceNotifier], None]) -> None:
        if self.notifier is None:
            return
        try:
            send(self.notifier)
        except Exception as exc:  # the service manager's trouble must not stop the loop
            self.log.warning("service notification failed: %r", exc)
