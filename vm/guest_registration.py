"""A guest's LUN registrations, claimed and given back through the node's holder.

A node is registered on a guest LUN only while the guest runs there (DESIGN sections 3 and 6):
`claim` registers the node on every path of the LUN (data paths first) and takes the LUN's
all-registrants reservation where none is held; `release` unregisters it once the guest is
known to be off. The holder refuses a claim while another node is registered, in a fenced
boot, and before the node joined; what the SAN shows afterwards, read back through the holder,
is what counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, Lun, LunRole
from stonewall.holder.api import Holder
from stonewall.storage.view import LunView
from stonewall.vm.mapping import GuestStorage


@dataclass(frozen=True)
class LunResult:
    lun: str
    ok: bool
    detail: str  # the holder's words


def guest_role_luns(config: ClusterConfig, storage: GuestStorage) -> tuple[Lun, ...]:
    """The guest's LUNs whose registration follows the guest (role `guest`); arbiter and
    shared LUNs keep the registration the node took when it joined."""
    return tuple(lun for lun in (config.lun(name) for name in storage.luns)
                 if lun.role is LunRole.GUEST)


def registrants(config: ClusterConfig, storage: GuestStorage,
                views: Mapping[str, LunView]) -> tuple[str, ...]:
    """The nodes whose key a reachable path of one of the guest's guest LUNs lists."""
    names = {node.key: node.name for node in config.nodes}
    keys = dict.fromkeys(key for lun in guest_role_luns(config, storage)
                         if (view := views.get(lun.name)) is not None
                         for path in view.up_paths for key in (path.keys or ()))
    return tuple(names[key] for key in keys if key in names)


def read_views(holder: Holder, lun_names: Sequence[str],
               deadline: Deadline) -> dict[str, LunView]:
    """The SAN's view of `lun_names` through the holder's sessions (each call to the holder
    raises holder.api.HolderFailure when it cannot be had)."""
    if not lun_names:
        return {}
    return holder.views(list(lun_names), deadline)


def claim(holder: Holder, lun: Lun, deadline: Deadline) -> LunResult:
    """Register this node on the guest LUN (NodeHolder.claim)."""
    answer = holder.claim(lun.name, deadline)
    return LunResult(lun.name, answer.ok, answer.detail)


def release(holder: Holder, luns: Sequence[Lun], deadline: Deadline) -> tuple[LunResult, ...]:
    """Unregister this node from each guest LUN; the holder reads the keys back, and a LUN
    that still shows our key, or that no path answered for, is a failure."""
    results = []
    for lun in luns:
        answer = holder.release(lun.name, deadline)
        results.append(LunResult(lun.name, answer.ok, answer.detail))
    return tuple(results)
