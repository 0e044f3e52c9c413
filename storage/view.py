"""What the SAN says about one LUN, path by path: the read-only picture that `status`,
`may_run`, the watchdog checker and fence verification all judge from."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stonewall import wire
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.scsi.types import ReservationType

if TYPE_CHECKING:
    from stonewall.clock import Deadline


@dataclass(frozen=True)
class PathView:
    """One path's answer. `error` set (and keys None) when the path could not be read."""

    path: str
    keys: tuple[int, ...] | None
    reservation: Reservation | None
    error: str | None = None

    @property
    def up(self) -> bool:
        return self.error is None and self.keys is not None

    def to_jsonable(self) -> dict[str, Any]:
        held = self.reservation
        return {"path": self.path, "keys": None if self.keys is None else list(self.keys),
                "reservation": None if held is None else {
                    "generation": held.generation, "holder": held.holder,
                    "type": held.type.name if held.type is not None else None,
                    "scope": held.scope},
                "error": self.error}

    @classmethod
    def from_json(cls, data: Any) -> "PathView":
        data = wire.obj(data, "path view")
        what = f"path {data.get('path')!r}"
        keys = wire.optional(data, "keys", list, what)
        held = wire.optional(data, "reservation", dict, what)
        return cls(wire.field(data, "path", str, what),
                   None if keys is None else tuple(wire.key(k, what) for k in keys),
                   None if held is None else _reservation(held, what),
                   wire.optional(data, "error", str, what))


@dataclass(frozen=True)
class LunView:
    """All paths of one LUN, read at about the same time."""

    lun: str
    paths: tuple[PathView, ...]

    @property
    def up_paths(self) -> tuple[PathView, ...]:
        return tuple(p for p in self.paths if p.up)

    @property
    def reachable(self) -> bool:
        return bool(self.up_paths)

    def key_sets(self) -> set[frozenset[int]]:
        """The distinct sets of keys the reachable paths report (more than one: split)."""
        return {frozenset(p.keys or ()) for p in self.up_paths}

    def registered_everywhere(self, key: int) -> bool | None:
        """True if `key` is on every reachable path, False if missing on one, None if no
        path answered (cannot tell)."""
        if not self.reachable:
            return None
        return all(key in (p.keys or ()) for p in self.up_paths)

    def absent_everywhere(self, key: int) -> bool | None:
        """True if `key` is on no reachable path, None if no path answered."""
        if not self.reachable:
            return None
        return all(key not in (p.keys or ()) for p in self.up_paths)

    def reservation(self) -> Reservation | None:
        """The reservation as the first reachable path reports it (a LUN has one)."""
        for path in self.up_paths:
            return path.reservation
        return None

    def to_jsonable(self) -> dict[str, Any]:
        return {"lun": self.lun, "paths": [path.to_jsonable() for path in self.paths]}

    @classmethod
    def from_json(cls, data: Any) -> "LunView":
        """A LunView from its JSON form (as the holder sends it); WireFormatError if the
        shape is wrong."""
        data = wire.obj(data, "LUN view")
        what = f"LUN view {data.get('lun')!r}"
        return cls(wire.field(data, "lun", str, what),
                   wire.items(data, "paths", PathView.from_json, what))


# A source of views: (LUN names, deadline) -> views by LUN name (holder/views.py in
# production; the hook and `vm list` take one as a parameter).
ReadViews = Callable[[Sequence[str], "Deadline"], Mapping[str, LunView]]


def _reservation(data: dict[str, Any], what: str) -> Reservation:
    holder = wire.optional(data, "holder", int, what)
    rtype = wire.optional(data, "type", str, what)
    try:
        kind = ReservationType[rtype] if rtype is not None else None
    except KeyError:
        raise wire.WireFormatError(f"{what}: unknown reservation type {rtype!r}") from None
    return Reservation(wire.field(data, "generation", int, what),
                       None if holder is None else wire.key(holder, what), kind,
                       wire.optional(data, "scope", int, what) or 0)
