"""Start and stop guests so that a guest runs only where its storage is owned.

- `start_guest`: claim the guest LUNs through the node's holder (register on every path,
  all-registrants reservation), check `may_run` on views read afterwards, start through
  libvirt; on failure give back what this call claimed.
- `stop_guest`: shut down (or destroy) within a time limit, then unregister from its LUNs.
- `destroy_guests_for_lost_ownership`: the node lost its storage (its key was preempted), so
  its guests must die now: destroy, never a graceful shutdown, never a resume (a paused guest
  whose storage moved would write with stale state), retried until the deadline.

Decisions take the holder, the libvirt connection and a deadline (with its clock) as
parameters and return reports; they never print or exit. A registration is given back only
while the guest is known to be off: releasing a running guest's LUN would let the other node
start a second copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, Lun, Node
from stonewall.holder.api import Holder, HolderFailure
from stonewall.storage.view import LunView
from stonewall.bounded import map_bounded
from stonewall.vm import guest_registration as registration
from stonewall.vm.disks import DomainXmlError
from stonewall.vm.guest_registration import LunResult
from stonewall.vm.libvirt_conn import (
    DestroyFailed, DestroyTimeout, DomainAlreadyRunning, DomainNotFound, DomainState,
    LibvirtConnection, LibvirtError, LibvirtUnavailable, StopOutcome)
from stonewall.vm.mapping import GuestStorage, UnknownGuest, guest_luns
from stonewall.vm.placement import LunState, Placement, may_run

DEFAULT_RELEASE_TIMEOUT = 10.0  # seconds to give registrations back after a stop
SHUTDOWN_POLL_INTERVAL = 0.5  # seconds between state reads while a guest shuts down
DESTROY_RETRY_INTERVAL = 0.5  # seconds between destroy attempts of a guest that survived one



# -- start ------------------------------------------------------------------------------------
class StartOutcome(Enum):
    STARTED = "started"
    ALREADY_RUNNING = "already running on this node"
    NOT_DEFINED = "not defined on this node"
    UNMAPPABLE = "a disk maps to no configured LUN"
    REFUSED = "this node does not own the guest's storage"
    CLAIM_FAILED = "a guest LUN could not be claimed"
    HOLDER_UNAVAILABLE = "the node's holder did not answer or refused"
    START_FAILED = "libvirt did not start it"
    CANNOT_TELL = "libvirt could not tell the guest's state"

    @property
    def running(self) -> bool:
        """The guest runs on this node now."""
        return self in (StartOutcome.STARTED, StartOutcome.ALREADY_RUNNING)


@dataclass(frozen=True)
class StartReport:
    guest: str
    node: str
    outcome: StartOutcome
    taken: tuple[str, ...] = ()  # guest LUNs this call claimed (kept while the guest runs)
    released: tuple[LunResult, ...] = ()  # of those, given back after a failure
    placement: Placement | None = None  # may_run as judged last
    details: tuple[str, ...] = ()  # one line each for an operator

    @property
    def reasons(self) -> tuple[str, ...]:
        """The details, then why placement refused, then releases that failed."""
        refused = self.placement.reasons if self.placement and not self.placement.allowed else ()
        kept = tuple(f"LUN {r.lun}: {r.detail}" for r in self.released if not r.ok)
        return self.details + refused + kept


def start_guest(guest: str, node: Node, config: ClusterConfig, holder: Holder,
                conn: LibvirtConnection, deadline: Deadline) -> StartReport:
    """Start `guest` on `node` (this node) if, after claiming its guest LUNs, the
    SAN shows that `node` owns all of its LUNs. A guest already running here is left alone."""
    def report(outcome: StartOutcome, *details: str) -> StartReport:
        return StartReport(guest, node.name, outcome, details=details)

    try:
        state = conn.state(guest)
        if state.active is None:
            return report(StartOutcome.CANNOT_TELL, f"libvirt on {conn.uri} reports no state")
        if state.active:
            return report(StartOutcome.ALREADY_RUNNING, f"state: {state.value}")
        storage = guest_luns(config, guest, conn.xml(guest, inactive=True))
    except DomainNotFound:
        return report(StartOutcome.NOT_DEFINED, f"libvirt on {conn.uri} has no domain {guest}")
    except DomainXmlError as error:
        return report(StartOutcome.UNMAPPABLE, f"domain XML: {error}")
    except LibvirtError as error:
        return report(StartOutcome.CANNOT_TELL, str(error))
    if storage.unidentified:
        return report(StartOutcome.UNMAPPABLE, *(d.describe() for d in storage.unidentified))
    return _Start(guest, node, config, holder, conn, deadline, storage).run()


class _Start:
    """One start: what it claimed so far, so that every failure gives back the same set."""

    def __init__(self, guest: str, node: Node, config: ClusterConfig, holder: Holder,
                 conn: LibvirtConnection, deadline: Deadline, storage: GuestStorage) -> None:
        self.guest, self.node, self.config = guest, node, config
        self.holder, self.conn, self.deadline, self.storage = holder, conn, deadline, storage
        self.taken: list[Lun] = []
        self._views: dict[str, LunView] = {}

    def run(self) -> StartReport:
        try:
            placement = self._judge()
            guest_luns = registration.guest_role_luns(self.config, self.storage)
            claimable = {lun.name for lun in guest_luns}
            if any(not (c.state is LunState.OWNED or c.state.claimable and c.lun in claimable)
                   for c in placement.checks):
                return self._report(StartOutcome.REFUSED, placement=placement)
            for lun in guest_luns:
                # Claimed even when the SAN lists our key already: after a takeover only the
                # fencer's control path is registered, and the guest writes through the data
                # path. Only what was not ours before is given back on a failure.
                ours = self._owned(placement, lun.name)
                result = registration.claim(self.holder, lun, self.deadline)
                if not result.ok:
                    return self._give_back(StartOutcome.CLAIM_FAILED,
                                           f"LUN {lun.name}: {result.detail}")
                if not ours:
                    self.taken.append(lun)
            placement = self._judge()  # fresh views: what the SAN shows now decides
            if not placement.allowed:
                return self._give_back(StartOutcome.REFUSED, placement=placement)
        except HolderFailure as error:
            return self._give_back(StartOutcome.HOLDER_UNAVAILABLE, str(error))
        return self._start(placement)

    @staticmethod
    def _owned(placement: Placement, lun: str) -> bool:
        return any(c.lun == lun and c.state is LunState.OWNED for c in placement.checks)

    def _judge(self) -> Placement:
        self._views = registration.read_views(self.holder, self.storage.luns, self.deadline)
        return may_run(self.storage, self.node, self._views, self.config)

    def _start(self, placement: Placement) -> StartReport:
        try:
            self.conn.start(self.guest)
        except DomainAlreadyRunning as error:  # started meanwhile: it needs the registrations
            return self._report(StartOutcome.ALREADY_RUNNING, str(error), placement=placement)
        except LibvirtError as error:
            # A hook's veto (StartRefusedByHook) is a failed start like any other refusal.
            outcome = (StartOutcome.CANNOT_TELL if isinstance(error, LibvirtUnavailable)
                       else StartOutcome.START_FAILED)
            if self._known_off():
                return self._give_back(outcome, str(error), placement=placement)
            return self._report(outcome, str(error), "the guest may be running: its "
                                "registrations are kept", placement=placement)
        return self._report(StartOutcome.STARTED, placement=placement)

    def _known_off(self) -> bool:
        try:
            return self.conn.state(self.guest) is DomainState.SHUT_OFF
        except DomainNotFound:
            return True
        except LibvirtError:
            return False

    def _give_back(self, outcome: StartOutcome, *details: str,
                   placement: Placement | None = None) -> StartReport:
        released: tuple[LunResult, ...] = ()
        if self.taken:
            release_deadline = Deadline.after(DEFAULT_RELEASE_TIMEOUT, self.deadline.clock)
            try:
                released = registration.release(self.holder, self.taken, release_deadline)
            except HolderFailure as error:
                released = tuple(LunResult(lun.name, False, f"not released: {error}")
                                 for lun in self.taken)
        return StartReport(self.guest, self.node.name, outcome, (), released, placement,
                           details)

    def _report(self, outcome: StartOutcome, *details: str,
                placement: Placement | None = None) -> StartReport:
        return StartReport(self.guest, self.node.name, outcome,
                           tuple(lun.name for lun in self.taken), (), placement, details)


# -- stop -------------------------------------------------------------------------------------
class StopResult(Enum):
    STOPPED = "stopped"
    WAS_NOT_RUNNING = "was not running"
    STILL_RUNNING = "still running at the time limit"
    DESTROY_FAILED = "destroy failed: it may still run"
    CANNOT_TELL = "libvirt could not tell the guest's state"

    @property
    def off(self) -> bool:
        return self in (StopResult.STOPPED, StopResult.WAS_NOT_RUNNING)


@dataclass(frozen=True)
class StopReport:
    guest: str
    node: str
    result: StopResult
    released: tuple[LunResult, ...] = ()
    details: tuple[str, ...] = ()

    @property
    def release_failures(self) -> tuple[LunResult, ...]:
        return tuple(r for r in self.released if not r.ok)


def stop_guest(guest: str, node: Node, config: ClusterConfig, holder: Holder,
               conn: LibvirtConnection, stop_deadline: Deadline, *, destroy: bool = False,
               release_timeout: float = DEFAULT_RELEASE_TIMEOUT) -> StopReport:
    """Shut `guest` down (ACPI; `destroy` kills it instead) before `stop_deadline`, then, once
    it is known to be off, unregister this node from its guest LUNs."""
    try:
        storage = _storage_for_stop(guest, config, conn)
    except UnknownGuest:
        return StopReport(guest, node.name, StopResult.WAS_NOT_RUNNING,
                          details=(f"libvirt on {conn.uri} has no domain {guest} and the "
                                   "configuration does not name it",))
    except (DomainXmlError, LibvirtError) as error:
        return StopReport(guest, node.name, StopResult.CANNOT_TELL, details=(str(error),))
    result, details = _stop(guest, conn, stop_deadline, destroy)
    if not result.off:
        return StopReport(guest, node.name, result, details=details)
    release_deadline = Deadline.after(release_timeout, stop_deadline.clock)
    try:
        released = registration.release(holder, registration.guest_role_luns(config, storage),
                                        release_deadline)
    except HolderFailure as error:
        released = tuple(LunResult(lun.name, False, f"not released: {error}")
                         for lun in registration.guest_role_luns(config, storage))
    return StopReport(guest, node.name, result, released, details)


def _storage_for_stop(guest: str, config: ClusterConfig, conn: LibvirtConnection) -> GuestStorage:
    try:
        xml: str | None = conn.xml(guest)
    except DomainNotFound:
        xml = None  # not here: its configured LUNs may still carry our registration
    return guest_luns(config, guest, xml)


def _stop(guest: str, conn: LibvirtConnection, deadline: Deadline,
          destroy: bool) -> tuple[StopResult, tuple[str, ...]]:
    try:
        if destroy:
            return _from_outcome(conn.destroy(guest, deadline)), ()
        if conn.shutdown(guest) is StopOutcome.WAS_NOT_RUNNING:
            return StopResult.WAS_NOT_RUNNING, ()
    except DestroyTimeout as error:
        return StopResult.CANNOT_TELL, (str(error),)
    except DestroyFailed as error:
        return StopResult.DESTROY_FAILED, (str(error),)
    except LibvirtError as error:
        return StopResult.CANNOT_TELL, (str(error),)
    return _wait_off(guest, conn, deadline)


def _wait_off(guest: str, conn: LibvirtConnection,
              deadline: Deadline) -> tuple[StopResult, tuple[str, ...]]:
    """Poll the state until the guest is off or `deadline` passes."""
    clock = deadline.clock
    while True:
        try:
            state = conn.state(guest)
        except DomainNotFound:
            return StopResult.STOPPED, ("the transient domain is gone",)
        if state is DomainState.SHUT_OFF:
            return StopResult.STOPPED, ()
        if deadline.remaining() <= 0:
            if state is DomainState.UNKNOWN:
                return StopResult.CANNOT_TELL, ("libvirt reports no state",)
            return StopResult.STILL_RUNNING, (f"state: {state.value}; stop it with --destroy",)
        clock.sleep(min(SHUTDOWN_POLL_INTERVAL, deadline.remaining()))


def _from_outcome(outcome: StopOutcome) -> StopResult:
    return StopResult.WAS_NOT_RUNNING if outcome is StopOutcome.WAS_NOT_RUNNING \
        else StopResult.STOPPED


# -- lost ownership ---------------------------------------------------------------------------
class Eviction(Enum):
    DESTROYED = "destroyed"
    NOT_RUNNING = "was not running"
    MAY_STILL_RUN = "destroy failed on every attempt: it may still run"
    CANNOT_TELL = "libvirt did not answer: it may still run"

    @property
    def off(self) -> bool:
        return self in (Eviction.DESTROYED, Eviction.NOT_RUNNING)


@dataclass(frozen=True)
class GuestEviction:
    guest: str
    outcome: Eviction
    attempts: int
    detail: str = ""


@dataclass(frozen=True)
class EvictionReport:
    guests: tuple[GuestEviction, ...] = field(default_factory=tuple)

    @property
    def all_off(self) -> bool:
        """Every guest is known to be off. When False the caller escalates (the watchdog
        service stops petting, so the node is reset)."""
        return all(g.outcome.off for g in self.guests)

    @property
    def not_off(self) -> tuple[GuestEviction, ...]:
        return tuple(g for g in self.guests if not g.outcome.off)


def destroy_guests_for_lost_ownership(conn: LibvirtConnection, guests: Sequence[str],
                                      deadline: Deadline, *,
                                      retry_interval: float = DESTROY_RETRY_INTERVAL
                                      ) -> EvictionReport:
    """Destroy every one of `guests` on this node before `deadline`, all at once.

    No graceful shutdown (the guest would keep writing while it shuts down) and no resume: a
    paused guest is destroyed like a running one. A destroy that fails is retried until the
    deadline; a libvirt that does not answer is "cannot tell", never "stopped"."""
    results = map_bounded(lambda name: _destroy_until_off(conn, name, deadline, retry_interval),
                          list(guests), deadline)
    return EvictionReport(tuple(
        result if isinstance(result, GuestEviction)
        else GuestEviction(name, Eviction.CANNOT_TELL, 0, f"{type(result).__name__}: {result}")
        for name, result in zip(guests, results)))


def _destroy_until_off(conn: LibvirtConnection, guest: str, deadline: Deadline,
                       retry_interval: float) -> GuestEviction:
    attempts = 0
    while True:
        attempts += 1
        try:
            outcome = conn.destroy(guest, deadline)
            return GuestEviction(guest, Eviction.NOT_RUNNING if outcome is
                                 StopOutcome.WAS_NOT_RUNNING else Eviction.DESTROYED, attempts)
        except (DestroyTimeout, LibvirtUnavailable) as error:
            # The connection is unusable from here on (a hung call still owns it).
            return GuestEviction(guest, Eviction.CANNOT_TELL, attempts, str(error))
        except LibvirtError as error:  # DestroyFailed: e.g. QEMU in D state; try again
            last = str(error)
        try:
            state = conn.state(guest)
        except DomainNotFound:  # a transient domain vanished as it stopped
            return GuestEviction(guest, Eviction.NOT_RUNNING, attempts, last)
        if state is DomainState.UNKNOWN:
            # The adapter reports a dead connection as a failed destroy; retrying it is futile.
            return GuestEviction(guest, Eviction.CANNOT_TELL, attempts, last)
        if deadline.remaining() <= retry_interval:
            return GuestEviction(guest, Eviction.MAY_STILL_RUN, attempts, last)
        deadline.clock.sleep(retry_interval)
