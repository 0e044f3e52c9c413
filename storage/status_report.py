"""`stonewall status`: judge each LUN's view and render it as a table or JSON.

Field names of the JSON form are stable (docs/status.md)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from stonewall.config.keys import format_key
from stonewall.config.model import ClusterConfig, LunRole
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.view import LunView


@dataclass(frozen=True)
class LunStatus:
    name: str
    role: str
    location: str
    view: LunView
    verdict: str
    attention: bool


def _key_name(config: ClusterConfig, key: int) -> str:
    node = config.node_by_key(key)
    return node.name if node else f"foreign {format_key(key)}"


def _holder_name(config: ClusterConfig, reservation: Reservation) -> str:
    """Who holds it: an all-registrants reservation reports key 0 (SPC-4 6.16.3.3), and every
    registrant holds it."""
    if reservation.type is not None and reservation.type.all_registrants:
        return "all registrants"
    assert reservation.holder is not None
    return _key_name(config, reservation.holder)


def judge(config: ClusterConfig, view: LunView) -> tuple[str, bool]:
    """(verdict, needs attention) for one LUN."""
    lun = config.lun(view.lun)
    if not view.reachable:
        return "unreachable", True
    if len(view.key_sets()) > 1:
        return "split: keys differ between paths", True
    keys = set(view.up_paths[0].keys or ())
    foreign = [k for k in keys if config.node_by_key(k) is None]
    if foreign:
        return "foreign key " + ", ".join(format_key(k) for k in sorted(foreign)), True
    if lun.role is LunRole.GUEST:
        return _judge_guest_lun(config, view, keys)
    missing = [n.name for n in config.nodes if n.key not in keys]
    if missing and len(missing) < len(config.nodes):
        return "fenced: " + ", ".join(missing), True
    if not keys:
        return "no registrations", True
    reservation = view.reservation()
    if reservation is None or reservation.holder is None:
        return "no reservation", True
    return _paths_verdict(view, "ok")


def _judge_guest_lun(config: ClusterConfig, view: LunView, keys: set[int]) -> tuple[str, bool]:
    """A guest LUN carries the key of the one node its guest runs on (or none)."""
    owners = sorted(_key_name(config, key) for key in keys)
    if not owners:
        return _paths_verdict(view, "free: no node registered")
    if len(owners) > 1:
        return "registered by several nodes: " + ", ".join(owners), True
    reservation = view.reservation()
    if reservation is None or reservation.holder is None:
        return f"owned by {owners[0]}, but no reservation", True
    return _paths_verdict(view, f"owned by {owners[0]}")


def _paths_verdict(view: LunView, verdict: str) -> tuple[str, bool]:
    down = [p.path for p in view.paths if not p.up]
    if down:
        return f"{verdict}, {len(down)} path(s) down", True
    return verdict, False


def build(config: ClusterConfig, views: dict[str, LunView]) -> list[LunStatus]:
    """Statuses in arbiter order."""
    statuses = []
    for lun in config.luns_in_arbiter_order(tuple(views)):
        verdict, attention = judge(config, views[lun.name])
        location = (f"{lun.iscsi.target}/{lun.iscsi.lun}" if lun.iscsi
                    else lun.alias or lun.wwid or "?")
        statuses.append(LunStatus(lun.name, lun.role.value, location, views[lun.name],
                                  verdict, attention))
    return statuses


def to_json(config: ClusterConfig, statuses: list[LunStatus],
            watchdog: dict[str, object] | None = None,
            drbd: dict[str, object] | None = None) -> str:
    """The documented JSON form."""
    luns = []
    for status in statuses:
        view = status.view
        first = view.up_paths[0] if view.up_paths else None
        reservation = view.reservation()
        registered = Counter(first.keys or ()) if first else Counter()
        luns.append({
            "name": status.name,
            "role": status.role,
            "location": status.location,
            "generation": first.reservation.generation if first and first.reservation else None,
            "registered": [{"key": format_key(k), "node": _key_name(config, k),
                            "registrations": n} for k, n in sorted(registered.items())],
            "reservation": None if reservation is None or reservation.holder is None else {
                "key": format_key(reservation.holder),
                "node": _holder_name(config, reservation),
                "type": reservation.type.short if reservation.type else None},
            "paths": [{"path": p.path, "up": p.up,
                       "keys": [format_key(k) for k in p.keys] if p.keys is not None else None,
                       "error": p.error} for p in view.paths],
            "paths_up": len(view.up_paths),
            "paths_down": len(view.paths) - len(view.up_paths),
            "verdict": status.verdict,
            "attention": status.attention,
        })
    document = {"cluster": config.cluster, "luns": luns, "watchdog": watchdog}
    if drbd is not None:
        document["drbd"] = drbd
    return json.dumps(document, indent=2)


def to_table(config: ClusterConfig, statuses: list[LunStatus], per_path: bool) -> str:
    """A human table; with `per_path` one extra line per path."""
    header = ("LUN", "ROLE", "GEN", "REGISTERED", "RESERVATION", "PATHS", "VERDICT")
    rows: list[tuple[str, ...]] = []
    for status in statuses:
        view = status.view
        first = view.up_paths[0] if view.up_paths else None
        counts = Counter(first.keys or ()) if first else Counter()
        registered = " ".join(f"{_key_name(config, k)}x{n}" for k, n in sorted(
            counts.items(), key=lambda item: _key_name(config, item[0]))) or "-"
        reservation = view.reservation()
        held = ("-" if reservation is None or reservation.holder is None else
                f"{_holder_name(config, reservation)} "
                f"{reservation.type.short if reservation.type else '?'}")
        generation = (f"{first.reservation.generation}" if first and first.reservation
                      else "-")
        rows.append((status.name, status.role, generation, registered, held,
                     f"{len(view.up_paths)}/{len(view.paths)} up", status.verdict))
        if per_path:
            for path in view.paths:
                keys = (" ".join(_key_name(config, k) for k in path.keys)
                        if path.keys is not None else "-")
                rows.append(("  " + path.path, "", "", keys or "-", "",
                             "up" if path.up else "DOWN", path.error or ""))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def exit_status(statuses: list[LunStatus]) -> int:
    """0 all as expected, 1 something needs attention, 2 nothing could be read."""
    if statuses and all(not s.view.reachable for s in statuses):
        return 2
    return 1 if any(s.attention for s in statuses) else 0
