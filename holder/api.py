"""The one seam to the node's session holder: what it does (`Holder`), what it answers (typed
values with `to_jsonable` / `from_json`) and how it fails (exception types).

Two implementations return the same values: the in-process `NodeHolder` (holder/node.py,
inside the watchdog service) and the socket client `HolderClient` (holder/client.py, every
short-lived entry point). Every verdict (`ok`, `proven`, `fenced`) is a property computed from
the facts by whoever holds the value; none is sent over the socket, so a caller's "fenced"
rests on the per-LUN evidence, never on a boolean from the other end.

This module imports no session or SCSI code, so a handler that only asks the holder stays
small and starts fast."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stonewall import wire
from stonewall.clock import Deadline
from stonewall.holder.fence_records import PreemptRecord
from stonewall.holder.handoffs import Direction, Handoff
from stonewall.storage.reports import (ClaimOutcome, PathOutcome, PreemptReport, Report,
                                       VerifyReport)
from stonewall.storage.view import LunView


# -- how it fails -------------------------------------------------------------------------------
class HolderFailure(Exception):
    """No trustworthy answer from the holder: every caller fails safe (nothing counts as
    fenced, joined, reserved or owned)."""


class HolderUnavailable(HolderFailure):
    """The holder is not running, or did not answer before the deadline."""


class HolderUntrusted(HolderFailure):
    """What answered is not this node's holder, or its answer is not evidence: the socket's
    peer is neither root nor the service's user, the answer names another node or key, it
    answers another request, or it is malformed."""


class HolderError(HolderFailure):
    """The holder answered with an error."""


class HolderRefused(HolderError):
    """The request is not allowed (fencing ourselves, an unknown node or LUN)."""


class HolderFencedBoot(HolderRefused):
    """This node was fenced in this boot: the holder refuses to join until a reboot."""


class HolderBadRequest(HolderError):
    """The holder did not understand the request (client and holder versions differ)."""


class HolderInternalError(HolderError):
    """The holder failed while carrying out the request."""


# The error names the holder's socket carries (holder/server.py) and their client types.
WIRE_ERRORS: dict[str, type[HolderError]] = {
    "Refused": HolderRefused, "FencedBoot": HolderFencedBoot,
    "BadRequest": HolderBadRequest, "InternalError": HolderInternalError}


# -- what it answers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class JoinOutcome:
    """What `join` registered and reserved."""

    registered: Report
    reserved: Report

    @property
    def ok(self) -> bool:
        return self.registered.ok and self.reserved.ok

    def failures(self) -> list[PathOutcome]:
        return self.registered.failures() + self.reserved.failures()

    def to_jsonable(self) -> dict[str, Any]:
        return {"registered": self.registered.to_jsonable(),
                "reserved": self.reserved.to_jsonable()}

    @classmethod
    def from_json(cls, data: Any) -> "JoinOutcome":
        data = wire.obj(data, "join")
        return cls(Report.from_json(data.get("registered")),
                   Report.from_json(data.get("reserved")))


@dataclass(frozen=True)
class StorageFenceOutcome:
    """What `preempt` did to `victim` on `luns` (the LUNs asked for, arbiter first), and what
    reading the keys back proved."""

    victim: str
    luns: tuple[str, ...]
    preempt: PreemptReport
    verification: VerifyReport

    @property
    def fenced(self) -> bool:
        """Every LUN asked for has a check, and each shows the victim's key absent from every
        path that answered, at least one path answering; no race lost, no preempt failed."""
        return (not self.preempt.lost_race and self.preempt.ok and bool(self.luns)
                and all((check := self.verification.check(lun)) is not None and check.proves
                        for lun in self.luns))

    def shortfall(self) -> list[str]:
        """One phrase per LUN that was not preempted or not proven."""
        phrases = [f"{item.lun}: {item.action} {item.detail}".rstrip()
                   for item in self.preempt.luns if not item.ok]
        for lun in self.luns:
            check = self.verification.check(lun)
            if check is None:
                phrases.append(f"{lun}: no verification check in the answer")
            elif not check.proves:
                state = "key still present" if check.verdict is False else "no path answered"
                phrases.append(f"{lun}: {state}" + (f" (down: {', '.join(check.paths_down)})"
                                                    if check.paths_down else ""))
        return phrases

    def to_jsonable(self) -> dict[str, Any]:
        return {"victim": self.victim, "luns": list(self.luns),
                "preempt": self.preempt.to_jsonable(),
                "verification": self.verification.to_jsonable()}

    @classmethod
    def from_json(cls, data: Any) -> "StorageFenceOutcome":
        data = wire.obj(data, "fence outcome")
        return cls(wire.field(data, "victim", str, "fence outcome"),
                   wire.strings(data, "luns", "fence outcome"),
                   PreemptReport.from_json(data.get("preempt")),
                   VerifyReport.from_json(data.get("verification")))


@dataclass(frozen=True)
class PathState:
    """One of the holder's sessions, as it knows it (no I/O)."""

    lun: str
    path: str
    up: bool
    registered: bool
    error: str | None
    kind: str = "control"  # "data": a kernel path device; "control": the holder's session

    def to_jsonable(self) -> dict[str, Any]:
        return {"lun": self.lun, "path": self.path, "kind": self.kind, "up": self.up,
                "registered": self.registered, "error": self.error}

    @classmethod
    def from_json(cls, data: Any) -> "PathState":
        data = wire.obj(data, "path state")
        what = f"path state {data.get('path')!r}"
        return cls(wire.field(data, "lun", str, what), wire.field(data, "path", str, what),
                   wire.field(data, "up", bool, what), wire.field(data, "registered", bool, what),
                   wire.optional(data, "error", str, what), _path_kind(data, what))


def _path_kind(data: Any, what: str) -> str:
    kind = wire.field(data, "kind", str, what)
    if kind not in ("data", "control"):
        raise wire.WireFormatError(f"{what}: kind must be 'data' or 'control'")
    return kind


@dataclass(frozen=True)
class HolderState:
    """Who the holder is and what its sessions carry."""

    node: str
    key: int
    boot_id: str
    fenced_in_this_boot: bool
    joined_in_this_boot: bool
    paths: tuple[PathState, ...]
    guest_luns: tuple[str, ...] = ()  # the configured guest LUNs, as the holder knows them
    handoffs: tuple[Handoff, ...] = ()  # live migrations in flight on this node

    @property
    def guest_luns_held(self) -> tuple[str, ...]:
        """Guest LUNs this node is registered on (it runs, or may run, their guest)."""
        return tuple(dict.fromkeys(p.lun for p in self.paths if p.registered
                                   and p.lun in self.guest_luns))

    def to_jsonable(self) -> dict[str, Any]:
        return {"node": self.node, "key": f"0x{self.key:016x}", "boot_id": self.boot_id,
                "fenced_in_this_boot": self.fenced_in_this_boot,
                "joined_in_this_boot": self.joined_in_this_boot,
                "paths": [p.to_jsonable() for p in self.paths],
                "guest_luns": list(self.guest_luns),
                "handoffs": [h.to_jsonable() for h in self.handoffs]}

    @classmethod
    def from_json(cls, data: Any) -> "HolderState":
        data = wire.obj(data, "state")
        return cls(wire.field(data, "node", str, "state"),
                   wire.key(data.get("key"), "state"),
                   wire.field(data, "boot_id", str, "state"),
                   wire.field(data, "fenced_in_this_boot", bool, "state"),
                   wire.field(data, "joined_in_this_boot", bool, "state"),
                   wire.items(data, "paths", PathState.from_json, "state"),
                   wire.strings(data, "guest_luns", "state"),
                   wire.items(data, "handoffs", Handoff.from_json, "state"))


# -- what it does -------------------------------------------------------------------------------
class Holder(Protocol):
    """The node's session holder. `lun_names` None means every configured LUN.

    The client raises HolderFailure subtypes; the in-process NodeHolder raises its Refused
    (a HolderRefused) and storage.bootid.FencedBoot."""

    def state(self, deadline: Deadline) -> HolderState: ...

    def join(self, deadline: Deadline) -> JoinOutcome: ...

    def views(self, lun_names: Sequence[str] | None,
              deadline: Deadline) -> dict[str, LunView]: ...

    def verify(self, node: str, lun_names: Sequence[str] | None, present: bool,
               deadline: Deadline) -> VerifyReport: ...

    def preempt(self, victim_node: str, lun_names: Sequence[str] | None,
                deadline: Deadline) -> StorageFenceOutcome: ...

    def fence_record(self, victim_node: str, deadline: Deadline) -> PreemptRecord | None: ...

    def claim(self, lun: str, deadline: Deadline,
              handoff_from: str | None = None) -> ClaimOutcome: ...

    def release(self, lun: str, deadline: Deadline) -> ClaimOutcome: ...

    def open_handoff(self, guest: str, peer: str, direction: Direction,
                     luns: Sequence[str], ttl: float,
                     deadline: Deadline | None = None, by_hook: bool = False) -> Handoff: ...

    def admit_incoming(self, guest: str, stage: str,
                       deadline: Deadline | None = None) -> Handoff: ...

    def close_handoff(self, guest: str, deadline: Deadline | None = None) -> Handoff: ...
