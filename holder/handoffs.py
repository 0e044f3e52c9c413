"""Live migrations in flight, as a node's holder keeps them (DESIGN section 10).

The destination's holder holds one single-use, short-lived permit per incoming migration: the
source's `vm migrate` asks for it, the destination's libvirt hook consumes it, once at
`migrate begin` and once at `prepare begin` (libvirt runs both for one incoming migration,
and nothing else admits that guest), and the handoff claim of the guest's LUNs is allowed
only on a permit that went through both. The source's holder keeps a note of the outgoing
migration, so a second migration of the same guest is refused on either side while one is in
flight, and `status` can say "migrating (source -> destination)".

Nothing here is on disk: a holder that restarts forgets its permits, so a migration caught in
a restart fails safe (the hook refuses, the handoff claim is refused).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from stonewall import wire
from stonewall.clock import Clock

MAX_TTL = 600.0  # seconds: a permit outliving this is no longer "short-lived"


class HandoffRefused(Exception):
    """The handoff step is not allowed (no permit, a used or expired one, another in flight)."""


class Direction(Enum):
    INCOMING = "incoming"  # this node is the destination
    OUTGOING = "outgoing"  # this node is the source


class Stage(Enum):
    """How far an incoming permit got; an outgoing note stays ISSUED."""

    ISSUED = "issued"
    ADMITTED = "admitted"  # the hook let `migrate begin` through
    PREPARED = "prepared"  # the hook let `prepare begin` through: the handoff claim may run

    @classmethod
    def parse(cls, text: str) -> "Stage":
        try:
            return cls(text)
        except ValueError:
            raise wire.WireFormatError(f"unknown handoff stage {text!r}") from None


# hook stage -> (stage the permit must be in, stage it moves to)
HOOK_STAGES = {"migrate": (Stage.ISSUED, Stage.ADMITTED),
               "prepare": (Stage.ADMITTED, Stage.PREPARED)}


@dataclass(frozen=True)
class Handoff:
    """One migration in flight as one node's holder knows it."""

    guest: str
    source: str
    destination: str
    direction: Direction
    luns: tuple[str, ...]
    stage: Stage
    expires_in: float  # seconds left when the value was made
    by_hook: bool = False  # opened by this node's hook for a plain `virsh migrate`

    def describe(self) -> str:
        return f"migrating ({self.source} \N{RIGHTWARDS ARROW} {self.destination})"

    def to_jsonable(self) -> dict[str, Any]:
        return {"guest": self.guest, "source": self.source, "destination": self.destination,
                "direction": self.direction.value, "luns": list(self.luns),
                "stage": self.stage.value, "expires_in": round(self.expires_in, 3),
                "by_hook": self.by_hook}

    @classmethod
    def from_json(cls, data: Any) -> "Handoff":
        data = wire.obj(data, "handoff")
        what = f"handoff of {data.get('guest')!r}"
        direction = wire.field(data, "direction", str, what)
        if direction not in ("incoming", "outgoing"):
            raise wire.WireFormatError(f"{what}: direction must be incoming or outgoing")
        expires_in = data.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            raise wire.WireFormatError(f"{what}: expires_in must be a number")
        return cls(wire.field(data, "guest", str, what), wire.field(data, "source", str, what),
                   wire.field(data, "destination", str, what), Direction(direction),
                   wire.strings(data, "luns", what),
                   Stage.parse(wire.field(data, "stage", str, what)), float(expires_in),
                   wire.field(data, "by_hook", bool, what))


@dataclass(frozen=True)
class _Entry:
    handoff: Handoff
    expires_at: float  # on the holder's monotonic clock


class Handoffs:
    """The migrations in flight on one node, at most one per guest; thread-safe."""

    def __init__(self, node: str, clock: Clock) -> None:
        self.node = node
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def open(self, guest: str, peer: str, direction: Direction, luns: tuple[str, ...],
             ttl: float, by_hook: bool = False) -> Handoff:
        """Issue an incoming permit (peer = the source) or note an outgoing migration (peer =
        the destination). Refused while another migration of `guest` is in flight here.
        `by_hook`: the destination's own hook admits a plain `virsh migrate`; its handoff
        claim runs at `migrate begin`, before `prepare begin`."""
        if not 0 < ttl <= MAX_TTL:
            raise HandoffRefused(f"a permit lives between 0 and {MAX_TTL:g} s, not {ttl:g}")
        if peer == self.node:
            raise HandoffRefused("a guest does not migrate to the node it runs on")
        with self._lock:
            current = self._live(guest)
            if current is not None:
                raise HandoffRefused(f"{guest} is already {current.describe()}")
            source, destination = ((peer, self.node) if direction is Direction.INCOMING
                                   else (self.node, peer))
            handoff = Handoff(guest, source, destination, direction, tuple(luns), Stage.ISSUED,
                              ttl, by_hook)
            self._entries[guest] = _Entry(handoff, self.clock.monotonic() + ttl)
            return handoff

    def admit(self, guest: str, hook_stage: str) -> Handoff:
        """The hook consumes the permit for `hook_stage` ("migrate" or "prepare"), once."""
        if hook_stage not in HOOK_STAGES:
            raise HandoffRefused(f"unknown hook stage {hook_stage!r}")
        wanted, after = HOOK_STAGES[hook_stage]
        with self._lock:
            entry = self._incoming(guest)
            if entry.handoff.stage is not wanted:
                raise HandoffRefused(f"the permit for {guest} was used already "
                                     f"({entry.handoff.stage.value}); it admits one "
                                     f"`{hook_stage} begin`")
            self._entries[guest] = replace(entry, handoff=replace(entry.handoff, stage=after))
            return self._view(self._entries[guest])

    def for_claim(self, lun: str, source: str) -> Handoff:
        """The prepared incoming permit covering guest LUN `lun`, from `source`."""
        with self._lock:
            for guest in list(self._entries):
                entry = self._entries[guest]
                handoff = entry.handoff
                if handoff.direction is Direction.INCOMING and lun in handoff.luns:
                    entry = self._incoming(guest)
                    if handoff.source != source:
                        raise HandoffRefused(f"the permit for {guest} is for a migration from "
                                             f"{handoff.source}, not from {source}")
                    ready = Stage.ADMITTED if handoff.by_hook else Stage.PREPARED
                    if handoff.stage is not ready:
                        raise HandoffRefused(f"the migration of {guest} was not admitted by "
                                             f"this node's hook ({handoff.stage.value})")
                    return self._view(entry)
        raise HandoffRefused(f"no incoming migration covers LUN {lun}")

    def close(self, guest: str) -> Handoff:
        """End the migration of `guest` here (done, or failed and cleaned up)."""
        with self._lock:
            entry = self._entries.pop(guest, None)
            if entry is None:
                raise HandoffRefused(f"no migration of {guest} is in flight on {self.node}")
            return self._view(entry)

    def current(self) -> tuple[Handoff, ...]:
        """Every unexpired migration in flight here."""
        with self._lock:
            live = [guest for guest in sorted(self._entries) if self._live(guest) is not None]
            return tuple(self._view(self._entries[guest]) for guest in live)

    # -- under the lock ----------------------------------------------------------------------
    def _live(self, guest: str) -> Handoff | None:
        entry = self._entries.get(guest)
        if entry is None:
            return None
        if self.clock.monotonic() >= entry.expires_at:
            del self._entries[guest]
            return None
        return entry.handoff

    def _incoming(self, guest: str) -> _Entry:
        handoff = self._live(guest)
        if handoff is None or handoff.direction is not Direction.INCOMING:
            raise HandoffRefused(f"{self.node} holds no permit for an incoming migration of "
                                 f"{guest} (none was asked for, or it expired)")
        return self._entries[guest]

    def _view(self, entry: _Entry) -> Handoff:
        return replace(entry.handoff,
                       expires_in=max(0.0, entry.expires_at - self.clock.monotonic()))
