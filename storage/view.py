"""What the SAN says about one LUN, path by path: the read-only picture that `status`,
`may_run`, the watchdog checker and fence verification all judge from."""
from __future__ import annotations

from dataclasses import dataclass

from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.scsi.types import ReservationType


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


def view_from_json(data: dict) -> LunView:
    """A LunView from its JSON form (as the holder sends it)."""
    paths = []
    for path in data["paths"]:
        reservation = path.get("reservation")
        paths.append(PathView(
            path["path"],
            tuple(path["keys"]) if path.get("keys") is not None else None,
            Reservation(reservation["generation"], reservation["holder"],
                        ReservationType[reservation["type"]] if reservation["type"] else None,
                        reservation.get("scope", 0)) if reservation else None,
            path.get("error")))
    return LunView(data["lun"], tuple(paths))
