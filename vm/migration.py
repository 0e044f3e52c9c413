"""`stonewall vm migrate`: a live migration whose storage handoff the SAN enforces (DESIGN 10).

No libvirt hook runs between the source pausing and the destination resuming (measured,
reference vm.md "Live migration, measured"), so this command makes that window itself:
1. the source (this node) runs the guest and owns every LUN of it; the destination's holder
   answers, has joined in this boot and was not fenced in it;
2. the destination's holder issues a single-use, short-lived permit for this one incoming
   migration, and this node's holder notes the outgoing one (a second migration of the guest
   is refused on either side while this one is in flight);
3. libvirt migrates with VIR_MIGRATE_LIVE | VIR_MIGRATE_PAUSED (persistent guests also
   PERSIST_DEST | UNDEFINE_SOURCE); the destination's hook consumes the permit at `migrate
   begin` and `prepare begin`; `migrate()` returns once the source QEMU is gone, with the
   destination still paused;
4. the source QEMU is confirmed gone;
5. the destination's holder registers on every data path of each guest LUN (the permit lets
   the source's key stay meanwhile, so the all-registrants reservation never lapses), this
   node's holder unregisters and reads its key gone, and the destination's views must show it
   the owner (may_run) with no other key;
6. only then does the destination resume.

`--handoff-at finish` (HandoffPoint.FINISH) runs steps 5 and 6 before step 4: as soon as the
destination finished receiving and the source is paused by the migration, which saves the
seconds libvirt spends tearing the source QEMU down (measured), and confirms it gone after.

Failures end with one owner: before the switchover libvirt keeps the guest running here and
the destination never registered; after it, the destination stays paused until the handoff
is proven (a source that dies there is fenced through the ordinary path, DESIGN 10).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum

import libvirt

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, Lun, LunRole, Node
from stonewall.holder.api import Holder, HolderFailure, HolderRefused
from stonewall.holder.handoffs import MAX_TTL, Direction, Stage
from stonewall.vm import guest_registration as registration
from stonewall.vm.disks import DomainXmlError
from stonewall.vm.guest_registration import LunResult
from stonewall.vm.libvirt_conn import (
    DomainNotFound, DomainState, LibvirtConnection, LibvirtError, MigrationStats)
from stonewall.vm.mapping import GuestStorage, guest_luns
from stonewall.vm.placement import Placement, may_run

FINISH_POLL = 0.002  # seconds between state reads while waiting for the destination's Finish


class HandoffPoint(Enum):
    """When the LUNs move (the destination resumes right after, either way)."""

    # migrate() returned: the source QEMU is gone. libvirt's Confirm step tears it down
    # first, which took 1.6-3.2 s here (benchmarks/migration.py), all of it guest pause.
    SOURCE_GONE = "source-gone"
    # The destination finished receiving (paused, reason "user") and the source is paused
    # by the migration: QEMU has stopped its CPUs and inactivated its disks, and once its
    # key is read gone the SAN refuses its writes even if it ran again. Its QEMU is
    # confirmed gone after the resume. Measured: 3 ms after the switchover.
    FINISH = "finish"

LIVE_PAUSED = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PAUSED
PERSISTENT = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE


class MigrationOutcome(Enum):
    MIGRATED = "migrated"
    NOT_RUNNING_HERE = "the guest does not run on this node"
    UNMAPPABLE = "a disk maps to no configured LUN"
    NOT_OWNED_HERE = "this node does not own the guest's storage"
    DESTINATION_UNAVAILABLE = "the destination's holder did not answer"
    REFUSED = "the migration was refused"
    MIGRATION_FAILED = "libvirt's migration failed: the guest stays here"
    SOURCE_NOT_GONE = "the source QEMU is not confirmed gone: the destination stays paused"
    HANDOFF_FAILED = "the LUNs were not handed over: the destination stays paused"
    RESUME_FAILED = "the LUNs were handed over, but the destination did not resume"
    CANNOT_TELL = "libvirt or the holder could not tell"

    @property
    def runs_on_destination(self) -> bool:
        return self is MigrationOutcome.MIGRATED


@dataclass(frozen=True)
class Step:
    name: str
    at: float  # seconds since the command began


@dataclass(frozen=True)
class MigrationReport:
    guest: str
    source: str
    destination: str
    outcome: MigrationOutcome
    steps: tuple[Step, ...] = ()
    stats: MigrationStats | None = None  # libvirt's job statistics
    claimed: tuple[LunResult, ...] = ()  # the destination's registrations
    released: tuple[LunResult, ...] = ()  # this node's, given up
    placement: Placement | None = None  # the destination's, read back before the resume
    details: tuple[str, ...] = ()
    began_wall: float = 0.0  # wall-clock time the command began (steps are relative to it)

    def at(self, step: str) -> float | None:
        return next((s.at for s in self.steps if s.name == step), None)

    def wall(self, step: str) -> float | None:
        """The wall-clock time of `step` (for comparing with stamped writes)."""
        at = self.at(step)
        return None if at is None else self.began_wall + at

    def to_jsonable(self) -> dict[str, object]:
        return {"guest": self.guest, "source": self.source, "destination": self.destination,
                "outcome": self.outcome.name.lower(), "began_wall": self.began_wall,
                "steps": [{"step": s.name, "at": round(s.at, 6)} for s in self.steps],
                "libvirt_downtime_ms": self.stats.downtime_ms if self.stats else None,
                "libvirt_elapsed_ms": self.stats.elapsed_ms if self.stats else None,
                "handoff_ms": self.handoff_ms, "reasons": list(self.reasons)}

    @property
    def handoff_ms(self) -> float | None:
        """From the handoff's start (migrate() returned, or the destination finished) to the
        resume: the pause this command adds after libvirt's own steps."""
        began = self.at("destination finished")
        if began is None:
            began = self.at("migrated")
        resumed = self.at("resumed")
        return None if began is None or resumed is None else 1000 * (resumed - began)

    @property
    def reasons(self) -> tuple[str, ...]:
        failed = tuple(f"LUN {r.lun}: {r.detail}" for r in self.claimed + self.released
                       if not r.ok)
        refused = self.placement.reasons if self.placement and not self.placement.allowed \
            else ()
        return self.details + failed + refused


def migrate_guest(guest: str, config: ClusterConfig, source: Node, destination: Node,
                  holder: Holder, peer: Holder, conn: LibvirtConnection,
                  destination_conn: LibvirtConnection, deadline: Deadline, *,
                  migrate_uri: str | None = None,
                  handoff_at: HandoffPoint = HandoffPoint.SOURCE_GONE) -> MigrationReport:
    """Live-migrate `guest` from `source` (this node, `holder`, `conn`) to `destination`
    (`peer`: its holder, `destination_conn`: its libvirt) with the handoff above, at
    `handoff_at`, all before `deadline` (the permit lives as long, at most MAX_TTL)."""
    return _Migration(guest, config, source, destination, holder, peer, conn,
                      destination_conn, deadline, migrate_uri, handoff_at).run()


class _Migration:
    def __init__(self, guest: str, config: ClusterConfig, source: Node, destination: Node,
                 holder: Holder, peer: Holder, conn: LibvirtConnection,
                 destination_conn: LibvirtConnection, deadline: Deadline,
                 migrate_uri: str | None, handoff_at: HandoffPoint) -> None:
        self.guest, self.config = guest, config
        self.source, self.destination = source, destination
        self.holder, self.peer = holder, peer
        self.conn, self.destination_conn = conn, destination_conn
        self.deadline, self.migrate_uri, self.handoff_at = deadline, migrate_uri, handoff_at
        # A permit no longer than the command: it cannot outlive the migration it admits.
        self.permit_ttl = min(MAX_TTL, max(1.0, deadline.remaining()))
        self.clock = deadline.clock
        self.began = self.clock.monotonic()
        self.began_wall = self.clock.wall()
        self.steps: list[Step] = []
        self.stats: MigrationStats | None = None
        self.claimed: list[LunResult] = []
        self.released: tuple[LunResult, ...] = ()
        self.opened: list[Holder] = []  # whose handoff record this command opened
        self.failure: str | None = None  # why the handoff stopped, when no result says it

    def step(self, name: str) -> None:
        self.steps.append(Step(name, self.clock.monotonic() - self.began))

    def report(self, outcome: MigrationOutcome, *details: str,
               placement: Placement | None = None) -> MigrationReport:
        return MigrationReport(self.guest, self.source.name, self.destination.name, outcome,
                               tuple(self.steps), self.stats, tuple(self.claimed),
                               self.released, placement, details, self.began_wall)

    def run(self) -> MigrationReport:
        if self.destination.name == self.source.name:
            return self.report(MigrationOutcome.REFUSED, "the destination is this node")
        try:
            checked = self._check_source()
        except DomainNotFound:
            return self.report(MigrationOutcome.NOT_RUNNING_HERE,
                               f"libvirt on {self.conn.uri} has no domain {self.guest}")
        except DomainXmlError as error:
            return self.report(MigrationOutcome.UNMAPPABLE, f"domain XML: {error}")
        except (LibvirtError, HolderFailure) as error:
            return self.report(MigrationOutcome.CANNOT_TELL, str(error))
        if isinstance(checked, MigrationReport):
            return checked
        storage, persistent = checked
        luns = registration.guest_role_luns(self.config, storage)
        refused = self._open_handoffs(luns)
        if refused is not None:
            return refused
        return self._migrate(storage, luns, persistent)

    # -- 1. the source runs and owns it; the destination's holder answers -----------------
    def _check_source(self) -> MigrationReport | tuple[GuestStorage, bool]:
        state = self.conn.state(self.guest)
        if state is not DomainState.RUNNING:
            return self.report(MigrationOutcome.NOT_RUNNING_HERE, f"state: {state.value}")
        storage = guest_luns(self.config, self.guest, self.conn.xml(self.guest))
        if storage.unidentified:
            return self.report(MigrationOutcome.UNMAPPABLE,
                               *(d.describe() for d in storage.unidentified))
        views = registration.read_views(self.holder, storage.luns, self.deadline)
        placement = may_run(storage, self.source, views, self.config)
        if not placement.allowed:
            return self.report(MigrationOutcome.NOT_OWNED_HERE, placement=placement)
        self.step("source owns it")
        try:
            peer_state = self.peer.state(self.deadline)
        except HolderFailure as error:
            return self.report(MigrationOutcome.DESTINATION_UNAVAILABLE, str(error))
        if peer_state.node != self.destination.name:
            return self.report(MigrationOutcome.DESTINATION_UNAVAILABLE,
                               f"the holder that answered serves {peer_state.node}")
        if peer_state.fenced_in_this_boot or not peer_state.joined_in_this_boot:
            return self.report(MigrationOutcome.REFUSED, f"{self.destination.name} has not "
                               "joined in this boot, or was fenced in it")
        self.step("destination answers")
        persistent = any(d.name == self.guest and d.persistent
                         for d in self.conn.list_domains())
        return storage, persistent

    # -- 2. the permit and the note -------------------------------------------------------
    def _open_handoffs(self, luns: tuple[Lun, ...]) -> MigrationReport | None:
        names = [lun.name for lun in luns]
        for holder, peer, direction in (
                (self.holder, self.destination.name, Direction.OUTGOING),
                (self.peer, self.source.name, Direction.INCOMING)):
            try:
                holder.open_handoff(self.guest, peer, direction, names, self.permit_ttl,
                                    self.deadline)
            except HolderRefused as error:
                self._close_handoffs()
                return self.report(MigrationOutcome.REFUSED, str(error))
            except HolderFailure as error:
                self._close_handoffs()
                outcome = (MigrationOutcome.DESTINATION_UNAVAILABLE if holder is self.peer
                           else MigrationOutcome.CANNOT_TELL)
                return self.report(outcome, str(error))
            self.opened.append(holder)
        self.step("permit held")
        return None

    def _close_handoffs(self) -> None:
        for holder in self.opened:
            try:
                holder.close_handoff(self.guest, self.deadline)
            except HolderFailure:
                pass  # a record left behind expires with its permit's lifetime
        self.opened.clear()

    # -- 3.-6. --------------------------------------------------------------------------------
    def _migrate(self, storage: GuestStorage, luns: tuple[Lun, ...],
                 persistent: bool) -> MigrationReport:
        flags = LIVE_PAUSED | (PERSISTENT if persistent else 0)
        if self.handoff_at is HandoffPoint.FINISH:
            return self._migrate_handing_over_at_finish(storage, luns, flags)
        try:
            self.stats = self.conn.migrate(self.guest, self.destination_conn, flags,
                                           self.migrate_uri, self.deadline)
        except LibvirtError as error:
            self._close_handoffs()
            state = self._state_here()
            return self.report(MigrationOutcome.MIGRATION_FAILED, str(error),
                               f"the guest is {state} on {self.source.name}")
        self.step("migrated")
        try:
            gone = not self.conn.is_active(self.guest)
        except LibvirtError as error:
            return self.report(MigrationOutcome.SOURCE_NOT_GONE, str(error))
        if not gone:
            return self.report(MigrationOutcome.SOURCE_NOT_GONE,
                               f"libvirt on {self.source.name} still shows {self.guest} active")
        self.step("source QEMU gone")
        placement = self._hand_over(storage, luns)
        if placement is None or not placement.allowed:
            return self.report(MigrationOutcome.HANDOFF_FAILED,
                               *((self.failure,) if self.failure else ()), placement=placement)
        self.step("handed over")
        try:
            self.destination_conn.resume(self.guest)
        except LibvirtError as error:
            return self.report(MigrationOutcome.RESUME_FAILED, str(error), placement=placement)
        self.step("resumed")
        self._close_handoffs()
        return self.report(MigrationOutcome.MIGRATED, placement=placement)

    def _migrate_handing_over_at_finish(self, storage: GuestStorage, luns: tuple[Lun, ...],
                                        flags: int) -> MigrationReport:
        """HandoffPoint.FINISH: migrate() runs in a thread while the destination is watched;
        the LUNs move once it finished receiving and the source is paused by the migration."""
        outcome: dict[str, object] = {}
        # Second connections to both daemons: calls on the ones migrate() uses may wait until
        # migrate() returns (measured: the destination showed "paused, user" 2.2 s before a
        # state read on migrate()'s connection answered), and the point is not to wait.
        try:
            watch = LibvirtConnection.open(self.destination_conn.uri, self.deadline)
        except LibvirtError as error:
            self._close_handoffs()
            return self.report(MigrationOutcome.DESTINATION_UNAVAILABLE, str(error))
        try:
            watch_source = LibvirtConnection.open(self.conn.uri, self.deadline)
        except LibvirtError as error:
            watch.close()
            self._close_handoffs()
            return self.report(MigrationOutcome.CANNOT_TELL, str(error))
        with watch, watch_source:
            return self._handing_over_at_finish(storage, luns, flags, watch, watch_source,
                                                outcome)

    def _handing_over_at_finish(self, storage: GuestStorage, luns: tuple[Lun, ...], flags: int,
                                watch: LibvirtConnection, watch_source: LibvirtConnection,
                                outcome: dict[str, object]) -> MigrationReport:
        def run() -> None:
            try:
                outcome["stats"] = self.conn.migrate(self.guest, self.destination_conn, flags,
                                                     self.migrate_uri, self.deadline)
            except LibvirtError as error:
                outcome["error"] = error
        worker = threading.Thread(target=run, name=f"migrate-{self.guest}", daemon=True)
        worker.start()
        try:
            while not watch.incoming_finished_paused(self.guest):
                if not worker.is_alive() or self.deadline.remaining() <= 0:
                    break
                self.clock.sleep(FINISH_POLL)
            finished = watch.incoming_finished_paused(self.guest)
            source_stopped = finished and (watch_source.paused_for_migration(self.guest)
                                           or not watch_source.is_active(self.guest))
        except LibvirtError as error:
            worker.join(self.deadline.remaining())
            return self.report(MigrationOutcome.CANNOT_TELL, str(error))
        if not finished or not source_stopped:
            worker.join(max(0.0, self.deadline.remaining()))
            if "error" in outcome or not finished:
                self._close_handoffs()
                return self.report(MigrationOutcome.MIGRATION_FAILED,
                                   str(outcome.get("error", "the destination never finished")),
                                   f"the guest is {self._state_here()} on {self.source.name}")
            return self.report(MigrationOutcome.SOURCE_NOT_GONE,
                               "the source was not paused by the migration at its end")
        self.step("destination finished")
        placement = self._hand_over(storage, luns)
        if placement is None or not placement.allowed:
            worker.join(max(0.0, self.deadline.remaining()))
            return self.report(MigrationOutcome.HANDOFF_FAILED,
                               *((self.failure,) if self.failure else ()), placement=placement)
        self.step("handed over")
        try:
            watch.resume(self.guest)
        except LibvirtError as error:
            return self.report(MigrationOutcome.RESUME_FAILED, str(error), placement=placement)
        self.step("resumed")
        worker.join(max(0.0, self.deadline.remaining()))
        stats = outcome.get("stats")
        self.stats = stats if isinstance(stats, MigrationStats) else None
        self.step("migrated")
        try:
            gone = not worker.is_alive() and not self.conn.is_active(self.guest)
        except LibvirtError:
            gone = False
        if not gone:
            # Its key is gone from every path already: it cannot write, but it must go.
            return self.report(MigrationOutcome.SOURCE_NOT_GONE, "the guest runs on "
                               f"{self.destination.name}; libvirt on {self.source.name} did not "
                               "confirm the source QEMU gone", placement=placement)
        self.step("source QEMU gone")
        self._close_handoffs()
        return self.report(MigrationOutcome.MIGRATED, placement=placement)

    def _hand_over(self, storage: GuestStorage, luns: tuple[Lun, ...]) -> Placement | None:
        """The destination registers, this node unregisters, the destination's views prove
        it the only registrant. None when a step failed (its result says why)."""
        try:
            for lun in luns:
                claimed = self.peer.claim(lun.name, self.deadline, self.source.name)
                self.claimed.append(LunResult(lun.name, claimed.ok, claimed.detail))
                if not claimed.ok:
                    return None
            self.step("destination registered")
            self.released = registration.release(self.holder, luns, self.deadline)
            if not all(r.ok for r in self.released):
                return None
            self.step("source unregistered")
            views = registration.read_views(self.peer, storage.luns, self.deadline)
        except HolderFailure as error:
            self.failure = f"a holder did not answer during the handoff: {error}"
            return None
        placement = may_run(storage, self.destination, views, self.config)
        self.step("read back")
        return placement

    def _state_here(self) -> str:
        try:
            return self.conn.state(self.guest).value
        except DomainNotFound:
            return "not defined"


def complete_incoming(guest: str, config: ClusterConfig, node: Node, holder: Holder,
                      conn: LibvirtConnection, deadline: Deadline) -> MigrationReport:
    """On the destination: resume a guest whose source died after the switchover, before
    the handoff (DESIGN 10). Only when this node's hook admitted the migration (a prepared
    permit), libvirt finished receiving it here (paused, reason "user"), and the source is
    proven fenced: its key read gone from every arbiter and guest LUN of the guest (the
    ordinary fence path removed it). Then this node claims the guest LUNs, reads them back
    and resumes."""
    began, began_wall = deadline.clock.monotonic(), deadline.clock.wall()
    steps: list[Step] = []

    def report(outcome: MigrationOutcome, source: str, *details: str,
               placement: Placement | None = None,
               claimed: tuple[LunResult, ...] = ()) -> MigrationReport:
        return MigrationReport(guest, source, node.name, outcome, tuple(steps), None, claimed,
                               (), placement, details, began_wall)

    try:
        state = holder.state(deadline)
        handoff = next((h for h in state.handoffs if h.guest == guest
                        and h.direction is Direction.INCOMING), None)
        if handoff is None or handoff.stage is not Stage.PREPARED:
            return report(MigrationOutcome.REFUSED, "-", f"{node.name}'s holder admitted no "
                          f"incoming migration of {guest} (or it expired)")
        if not conn.incoming_finished_paused(guest):
            return report(MigrationOutcome.REFUSED, handoff.source, f"libvirt on {node.name} "
                          f"did not finish receiving {guest}: its memory is not all here")
        storage = guest_luns(config, guest, conn.xml(guest))
        luns = registration.guest_role_luns(config, storage)
        arbiters = [lun.name for lun in config.luns_in_arbiter_order()
                    if lun.role is LunRole.ARBITER]
        fenced = holder.verify(handoff.source, arbiters + [lun.name for lun in luns], False,
                               deadline)
        if not fenced.proven:
            return report(MigrationOutcome.REFUSED, handoff.source, f"{handoff.source} is "
                          "not proven fenced: fence it first (stonewall's fence agent or "
                          "fence-peer handler), the guest stays paused here")
        steps.append(Step("source proven fenced", deadline.clock.monotonic() - began))
        claimed = []
        for lun in luns:
            answer = holder.claim(lun.name, deadline, handoff.source)
            claimed.append(LunResult(lun.name, answer.ok, answer.detail))
            if not answer.ok:
                return report(MigrationOutcome.HANDOFF_FAILED, handoff.source,
                              claimed=tuple(claimed))
        placement = may_run(storage, node, registration.read_views(holder, storage.luns,
                                                                   deadline), config)
        if not placement.allowed:
            return report(MigrationOutcome.HANDOFF_FAILED, handoff.source,
                          placement=placement, claimed=tuple(claimed))
        steps.append(Step("handed over", deadline.clock.monotonic() - began))
        conn.resume(guest)
        steps.append(Step("resumed", deadline.clock.monotonic() - began))
        holder.close_handoff(guest, deadline)
    except (HolderFailure, LibvirtError, DomainXmlError) as error:
        return report(MigrationOutcome.CANNOT_TELL, "-", str(error))
    return report(MigrationOutcome.MIGRATED, handoff.source, placement=placement,
                  claimed=tuple(claimed))
