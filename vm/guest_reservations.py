"""A guest's LUN reservations, taken and given back through the node's holder.

Only the holder's sessions carry the node's registration (reference/scsi-pr.md: tgtd ties a
registration to its session), so RESERVE and RELEASE go through it; what the SAN shows
afterwards, read back through the holder, is what counts.

Measured on tgtd: when a fence PREEMPTs a peer that held a guest LUN's Write Exclusive
reservation, the reservation moves to the preempting node with the PREEMPT's type (the LUN's
configured one, SPC-4 5.12.11.2.3), and a repeated RESERVE by the holder is GOOD. A RELEASE
from a registered nexus that is not the holder is also GOOD and changes nothing, which is why a
release is checked by reading the reservation back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, Lun, LunRole
from stonewall.holder.api import Holder
from stonewall.storage.view import LunView
from stonewall.vm.mapping import GuestStorage
from stonewall.vm.placement import SINGLE_HOLDER_TYPES


@dataclass(frozen=True)
class LunResult:
    lun: str
    ok: bool
    detail: str  # the holder's words, or what the read-back showed


def reserved_luns(config: ClusterConfig, storage: GuestStorage) -> tuple[Lun, ...]:
    """The guest's LUNs whose reservation follows the guest (role `guest`); arbiter and shared
    LUNs keep the reservation the holder took when it joined."""
    return tuple(lun for lun in (config.lun(name) for name in storage.luns)
                 if lun.role is LunRole.GUEST)


def read_views(holder: Holder, lun_names: Sequence[str],
               deadline: Deadline) -> dict[str, LunView]:
    """The SAN's view of `lun_names` through the holder's sessions (each call to the holder
    raises holder.api.HolderFailure when it cannot be had)."""
    if not lun_names:
        return {}
    return holder.views(list(lun_names), deadline)


def holds(view: LunView | None, lun: Lun, key: int) -> bool:
    """Every path that answered shows `key` holding the LUN's configured reservation type."""
    if view is None or not view.reachable:
        return False
    return all(p.reservation is not None and p.reservation.holder == key
               and p.reservation.type == lun.reservation for p in view.up_paths)


def needs_reserve(view: LunView | None, lun: Lun, key: int) -> bool:
    """False when the LUN already carries what the guest needs: our own reservation of the
    configured type, or (for the registrants types, where every registrant may write) that
    type held by any node."""
    if holds(view, lun, key):
        return False
    current = view.reservation() if view is not None else None
    return not (current is not None and current.holder is not None
                and current.type == lun.reservation
                and lun.reservation not in SINGLE_HOLDER_TYPES)


def reserve(holder: Holder, lun: Lun, deadline: Deadline) -> LunResult:
    """RESERVE the LUN's configured type through the holder."""
    answer = holder.reserve(lun.name, deadline)
    return LunResult(lun.name, answer.ok, answer.detail)


def release(holder: Holder, luns: Sequence[Lun], key: int,
            deadline: Deadline) -> tuple[LunResult, ...]:
    """RELEASE each LUN this node holds (or may hold: unreadable), then read them back: a LUN
    still held by `key`, or that could not be read, is a failure. LUNs held by others and
    unreserved LUNs are left alone."""
    if not luns:
        return ()
    names = [lun.name for lun in luns]
    before = read_views(holder, names, deadline)
    ours = [lun for lun in luns if _held_by_key(before.get(lun.name), key)
            or not _readable(before.get(lun.name))]
    answers = {lun.name: holder.release(lun.name, deadline) for lun in ours}
    after = read_views(holder, names, deadline) if ours else before
    results = []
    for lun in ours:
        view = after.get(lun.name)
        if not _readable(view):
            results.append(LunResult(lun.name, False, "released, but no path answered the "
                                                      "read-back (cannot tell)"))
        elif _held_by_key(view, key):
            detail = answers[lun.name].detail
            results.append(LunResult(lun.name, False, f"still reserved by this node ({detail})"))
        else:
            results.append(LunResult(lun.name, True, "released"))
    return tuple(results)


def _readable(view: LunView | None) -> bool:
    return view is not None and view.reachable


def _held_by_key(view: LunView | None, key: int) -> bool:
    return view is not None and any(p.reservation is not None and p.reservation.holder == key
                                    for p in view.up_paths)
