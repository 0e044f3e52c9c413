"""What the ownership operations (storage/ownership.py) report, per LUN and per path, as
values that cross the holder's socket: each has `to_jsonable` and `from_json`.

Only facts are sent. Every verdict built on them (`ok`, `proven`) is a property, computed
again from the facts by whoever holds the value, so a caller never takes a bare boolean from
the other side of the socket as evidence."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stonewall import wire


@dataclass(frozen=True)
class PathOutcome:
    """One PR OUT on one path (or on a LUN, path "-")."""

    lun: str
    path: str
    ok: bool
    detail: str

    def to_jsonable(self) -> dict[str, Any]:
        return {"lun": self.lun, "path": self.path, "ok": self.ok, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Any) -> "PathOutcome":
        data = wire.obj(data, "path outcome")
        what = f"outcome on {data.get('lun')!r}"
        return cls(wire.field(data, "lun", str, what), wire.field(data, "path", str, what),
                   wire.field(data, "ok", bool, what), wire.field(data, "detail", str, what))


@dataclass
class Report:
    """Per-path outcomes of one operation."""

    outcomes: list[PathOutcome] = field(default_factory=list)
    unit_attentions: int = 0

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes) and bool(self.outcomes)

    def failures(self) -> list[PathOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def to_jsonable(self) -> dict[str, Any]:
        return {"outcomes": [o.to_jsonable() for o in self.outcomes],
                "unit_attentions": self.unit_attentions}

    @classmethod
    def from_json(cls, data: Any) -> "Report":
        data = wire.obj(data, "report")
        return cls(list(wire.items(data, "outcomes", PathOutcome.from_json, "report")),
                   wire.optional(data, "unit_attentions", int, "report") or 0)


@dataclass(frozen=True)
class LunFence:
    lun: str
    action: str  # "preempt-and-abort", "preempt", "already absent", "failed"
    path: str
    ok: bool
    detail: str = ""
    # Whether the first READ KEYS of this preempt listed the victim's key (None: the keys
    # could not be read). A key found and then removed by another fencer is found.
    found: bool | None = None

    def to_jsonable(self) -> dict[str, Any]:
        return {"lun": self.lun, "action": self.action, "path": self.path, "ok": self.ok,
                "detail": self.detail, "found": self.found}

    @classmethod
    def from_json(cls, data: Any) -> "LunFence":
        data = wire.obj(data, "LUN fence")
        what = f"preempt of {data.get('lun')!r}"
        return cls(wire.field(data, "lun", str, what), wire.field(data, "action", str, what),
                   wire.field(data, "path", str, what), wire.field(data, "ok", bool, what),
                   wire.optional(data, "detail", str, what) or "",
                   wire.optional(data, "found", bool, what))


@dataclass
class PreemptReport:
    luns: list[LunFence] = field(default_factory=list)
    lost_race: bool = False
    lost_detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.lost_race and bool(self.luns) and all(f.ok for f in self.luns)

    def to_jsonable(self) -> dict[str, Any]:
        return {"luns": [f.to_jsonable() for f in self.luns], "lost_race": self.lost_race,
                "lost_detail": self.lost_detail}

    @classmethod
    def from_json(cls, data: Any) -> "PreemptReport":
        data = wire.obj(data, "preempt report")
        return cls(list(wire.items(data, "luns", LunFence.from_json, "preempt report")),
                   wire.field(data, "lost_race", bool, "preempt report"),
                   wire.optional(data, "lost_detail", str, "preempt report") or "")


@dataclass(frozen=True)
class LunCheck:
    """One LUN read on every path: was the key as asked (present or absent)?"""

    lun: str
    verdict: bool | None  # True as asked, False not, None no path answered (cannot tell)
    paths_up: int
    paths_down: tuple[str, ...]

    @property
    def proves(self) -> bool:
        """The key was as asked on every path that answered, and at least one did."""
        return self.verdict is True and self.paths_up > 0

    def to_jsonable(self) -> dict[str, Any]:
        return {"lun": self.lun, "verdict": self.verdict, "paths_up": self.paths_up,
                "paths_down": list(self.paths_down)}

    @classmethod
    def from_json(cls, data: Any) -> "LunCheck":
        data = wire.obj(data, "LUN check")
        what = f"check of {data.get('lun')!r}"
        verdict = data.get("verdict")
        if verdict not in (True, False, None):
            raise wire.WireFormatError(f"{what}: verdict must be true, false or null")
        paths_up = wire.field(data, "paths_up", int, what)
        if paths_up < 0:
            raise wire.WireFormatError(f"{what}: paths_up must not be negative")
        return cls(wire.field(data, "lun", str, what), verdict, paths_up,
                   wire.strings(data, "paths_down", what))


@dataclass(frozen=True)
class VerifyReport:
    """A key checked on the LUNs asked about (`luns`, arbiter first)."""

    luns: tuple[str, ...]
    checks: tuple[LunCheck, ...]

    def check(self, lun: str) -> LunCheck | None:
        return next((c for c in self.checks if c.lun == lun), None)

    def missing(self) -> tuple[str, ...]:
        """The LUNs asked about that have no check."""
        return tuple(lun for lun in self.luns if self.check(lun) is None)

    @property
    def proven(self) -> bool:
        """Every LUN asked about has a check, and each proves it on a path that answered."""
        return bool(self.luns) and all((c := self.check(lun)) is not None and c.proves
                                       for lun in self.luns)

    def to_jsonable(self) -> dict[str, Any]:
        return {"luns": list(self.luns), "checks": [c.to_jsonable() for c in self.checks]}

    @classmethod
    def from_json(cls, data: Any) -> "VerifyReport":
        data = wire.obj(data, "verification")
        return cls(wire.strings(data, "luns", "verification"),
                   wire.items(data, "checks", LunCheck.from_json, "verification"))


@dataclass(frozen=True)
class ClaimOutcome:
    """What claiming (or releasing) one guest LUN did (storage.ownership.claim_lun)."""

    lun: str
    ok: bool
    detail: str
    others: tuple[int, ...] = ()  # keys of other nodes registered on the LUN
    registered: Report = field(default_factory=Report)

    def to_jsonable(self) -> dict[str, Any]:
        return {"lun": self.lun, "ok": self.ok, "detail": self.detail,
                "others": list(self.others), "registered": self.registered.to_jsonable()}

    @classmethod
    def from_json(cls, data: Any) -> "ClaimOutcome":
        data = wire.obj(data, "claim")
        what = f"claim of {data.get('lun')!r}"
        others = tuple(wire.key(k, what) for k in wire.field(data, "others", list, what))
        return cls(wire.field(data, "lun", str, what), wire.field(data, "ok", bool, what),
                   wire.field(data, "detail", str, what), others,
                   Report.from_json(wire.field(data, "registered", dict, what)))
