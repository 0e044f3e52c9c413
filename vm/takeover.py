"""After a fence: start the fenced peer's guests on this node (DESIGN section 6).

Which guests are the peer's is decided from the storage's evidence (vm/peer_guests.py): those
whose guest LUNs held its key when this node preempted it, and those whose `home` it is.

Storage fencing makes the peer's disks safe at once, but its guests may still be alive in
memory and on the network (same MAC and IP) until its watchdog resets it. So each guest's
`start_policy` decides when it may start:

- `safe` (default): once the peer's power-off was verified, or T_safe after the storage fence
  was verified (the peer's watchdog has reset it by then: stonewall.config.timing);
- `immediate` (opt-in): as soon as storage fencing is verified.

Guests start one after another in `order` (a dependency order: an `immediate` guest listed
after a `safe` one waits for it). Each goes through `start_guest`, which claims its guest LUNs:
the fence already preempted the peer's key there and left this node registered (the
all-registrants reservation stays with the survivor), so the claim finds the LUN its own. A
guest already running here is left alone, so running the takeover twice starts nothing twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stonewall.clock import Clock, Deadline
from stonewall.config.model import ClusterConfig, Guest, Node, StartPolicy
from stonewall.holder.api import Holder, HolderFailure
from stonewall.holder.fence_records import PreemptRecord
from stonewall.fencing.after_power import AfterPowerPreempt, preempt_after_power
from stonewall.vm.control import StartReport, start_guest
from stonewall.vm.libvirt_conn import LibvirtConnection
from stonewall.vm.peer_guests import (
    PeerGuest, choice_basis, guest_storages, peers_guests, registered_elsewhere)

DEFAULT_START_TIMEOUT = 30.0  # seconds for one guest's claim and start


@dataclass(frozen=True)
class FenceEvidence:
    """What the fence proved about the peer.

    `storage_verified_at` is the `clock.monotonic()` time by which the peer's key was verified
    gone on every LUN (None: storage fencing was not verified). A later time than the actual
    PREEMPT only makes the T_safe wait longer, never shorter."""

    power_verified: bool
    storage_verified_at: float | None

    @property
    def fenced(self) -> bool:
        return self.power_verified or self.storage_verified_at is not None


class Skipped(Enum):
    """Why a guest was not even tried."""

    PEER_NOT_FENCED = "the peer is not proven fenced"
    T_SAFE_AFTER_DEADLINE = "T_safe ends after the takeover's deadline"
    RUNS_ELSEWHERE = "another node is registered on its LUNs: it runs, or may run, there"


@dataclass(frozen=True)
class GuestTakeover:
    taken: PeerGuest  # the guest, and why it counts as the peer's
    waited: float  # seconds this guest waited for its start condition
    at: float  # clock.monotonic() when it was started (or skipped)
    start: StartReport | None = None  # None when skipped
    skipped: Skipped | None = None
    others: tuple[str, ...] = ()  # RUNS_ELSEWHERE: the nodes registered on its LUNs

    @property
    def guest(self) -> str:
        return self.taken.guest.name

    @property
    def policy(self) -> StartPolicy:
        return self.taken.guest.start_policy

    @property
    def running(self) -> bool:
        return self.start is not None and self.start.outcome.running

    def describe(self) -> str:
        """One line: the guest, why it is the peer's, what happened."""
        head = f"{self.guest} ({self.taken.why})"
        if self.start is None:
            assert self.skipped is not None
            where = f" ({', '.join(self.others)})" if self.others else ""
            return f"{head}: not started: {self.skipped.value}{where}"
        reasons = "; ".join(self.start.reasons)
        waited = f" after waiting {self.waited:.1f} s" if self.waited > 0 else ""
        return (f"{head}: {self.start.outcome.value}{waited}"
                + (f" ({reasons})" if reasons else ""))


@dataclass(frozen=True)
class TakeoverReport:
    peer: str
    node: str
    guests: tuple[GuestTakeover, ...]
    basis: str = ""  # which evidence chose the guests (vm/peer_guests.py), one line
    record: PreemptRecord | None = None  # this node's record of the fence, if any

    @property
    def all_running(self) -> bool:
        """Every guest of the peer runs here now (True when there were none); a guest that
        runs, or may run, on another node is not the peer's to take."""
        return all(g.running for g in self.guests if g.skipped is not Skipped.RUNS_ELSEWHERE)


def start_condition(guest: Guest, fence: FenceEvidence, t_safe: float) -> float | None:
    """The `clock.monotonic()` time from which `guest` may start (None: never, on this
    evidence). A verified power-off satisfies every policy at once."""
    if fence.power_verified:
        return float("-inf")
    if fence.storage_verified_at is None:
        return None
    if guest.start_policy is StartPolicy.IMMEDIATE:
        return fence.storage_verified_at
    return fence.storage_verified_at + t_safe


def take_over(peer: Node, config: ClusterConfig, holder: Holder,
              conn: LibvirtConnection, clock: Clock, fence: FenceEvidence, t_safe: float, *,
              node: Node, deadline: Deadline,
              start_timeout: float = DEFAULT_START_TIMEOUT) -> TakeoverReport:
    """Start `peer`'s guests (vm/peer_guests.py) on `node` (this node), each once its policy
    allows, all before `deadline`; waits (T_safe) go through `clock`. Never raises for one
    guest's failure: the report says, per guest, why it was taken and what happened."""
    if peer.name == node.name:
        raise ValueError("a node does not take over its own guests")
    basis = choice_basis(holder, peer, deadline)
    storages = guest_storages(config, conn)
    chosen = peers_guests(config, peer, basis.record, storages)
    elsewhere = registered_elsewhere(config, holder, chosen, storages, node, deadline)
    results = []
    for taken in chosen:
        guest = taken.guest
        ready_at = start_condition(guest, fence, t_safe)
        now = clock.monotonic()
        if ready_at is None:
            results.append(GuestTakeover(taken, 0.0, now, skipped=Skipped.PEER_NOT_FENCED))
            continue
        if guest.name in elsewhere:
            results.append(GuestTakeover(taken, 0.0, now, skipped=Skipped.RUNS_ELSEWHERE,
                                         others=elsewhere[guest.name]))
            continue
        wait = max(0.0, ready_at - now)
        if wait > 0 and wait >= deadline.remaining():  # no time would be left to start it
            results.append(GuestTakeover(taken, 0.0, now,
                                         skipped=Skipped.T_SAFE_AFTER_DEADLINE))
            continue
        if wait > 0:
            clock.sleep(wait)
        started_at = clock.monotonic()
        report = start_guest(guest.name, node, config, holder, conn,
                             deadline.earlier(start_timeout))
        results.append(GuestTakeover(taken, wait, started_at, report))
    return TakeoverReport(peer.name, node.name, tuple(results), basis.line, basis.record)


@dataclass(frozen=True)
class TakeoverRun:
    """What `vm takeover PEER` did. `report` is None when the peer was not proven fenced:
    then nothing was started, and `problem` says why."""

    peer: str
    fence: FenceEvidence
    report: TakeoverReport | None
    problem: str = ""
    after_power: AfterPowerPreempt | None = None  # the key preempted after a power-off


def take_over_fenced_peer(peer: Node, config: ClusterConfig, holder: Holder,
                          conn: LibvirtConnection, clock: Clock, t_safe: float, *, node: Node,
                          power_off_verified: bool, deadline: Deadline) -> TakeoverRun:
    """Verify `peer`'s key gone on every LUN (the fence happened earlier: verifying now gives
    a later reference point for T_safe, which only makes the wait longer), then start its
    guests here; all of it before `deadline`."""
    if peer.name == node.name:
        raise ValueError("a node does not take over its own guests")
    try:
        verified = holder.verify(peer.name, None, False, deadline).proven
        problem = "" if verified else "its key is not verified gone on every LUN"
    except HolderFailure as err:
        verified, problem = False, f"cannot verify its key gone: {err}"
    after_power = None
    if power_off_verified and not verified:
        # Storage after power (DESIGN 4.4): the peer is off, so preempting its key races
        # nobody; this is the retry a fence-peer that could not reach the SAN asked for.
        after_power = preempt_after_power(holder, peer.name, deadline)
    fence = FenceEvidence(power_off_verified, clock.monotonic() if verified else None)
    if not fence.fenced:
        return TakeoverRun(peer.name, fence, None, problem, after_power)
    return TakeoverRun(peer.name, fence, take_over(peer, config, holder, conn, clock, fence,
                                                   t_safe, node=node, deadline=deadline),
                       problem, after_power)
