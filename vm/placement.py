"""May this node run this guest? Judged from what the SAN says about the guest's LUNs.

DESIGN sections 1, 3 and 6: a node owns a LUN while its key is registered on the paths it
writes through and no other live node's key is (guest LUNs carry only the registration of the
node their guest runs on), under the LUN's configured reservation; under a single-holder type
(Write Exclusive, Exclusive Access) it must also hold that reservation. "Cannot tell" (no view,
no path answered, a disk we could not identify) is never "allowed".
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from stonewall.config.keys import describe_key
from stonewall.config.model import ClusterConfig, LunRole, Node
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.view import LunView
from stonewall.vm.mapping import GuestStorage, UnmappedDisk



class LunState(Enum):
    OWNED = "owned"
    NO_VIEW = "no view"  # nobody read the LUN: cannot tell
    UNREACHABLE = "no path answered"  # cannot tell
    NOT_REGISTERED = "key not registered"
    REGISTERED_BY_OTHER = "registered by another node"  # a guest LUN: its guest runs there
    RESERVED_BY_OTHER = "reserved by another node"
    NOT_RESERVED = "not reserved by this node"

    @property
    def claimable(self) -> bool:
        """A start may change this by claiming the LUN (guest LUNs only)."""
        return self in (LunState.NOT_REGISTERED, LunState.NOT_RESERVED)

    @property
    def cannot_tell(self) -> bool:
        return self in (LunState.NO_VIEW, LunState.UNREACHABLE)


@dataclass(frozen=True)
class LunCheck:
    lun: str
    state: LunState
    owners: tuple[str, ...]  # node names the SAN shows as owners ("foreign 0x..." for others)
    detail: str  # one line for an operator, e.g. "LUN web1-disk is reserved by kvm-a (Write Exclusive)"


@dataclass(frozen=True)
class Placement:
    guest: str
    node: str
    allowed: bool
    managed: bool  # False: no configured LUN involved, stonewall does not guard this guest
    checks: tuple[LunCheck, ...] = ()
    unidentified: tuple[UnmappedDisk, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why it is not allowed, one line each (empty when allowed)."""
        return (tuple(c.detail for c in self.checks if c.state is not LunState.OWNED)
                + tuple(d.describe() for d in self.unidentified))

    @property
    def cannot_tell(self) -> bool:
        """The refusal (if any) comes from missing knowledge, not from another owner."""
        return bool(self.unidentified) or any(c.state.cannot_tell for c in self.checks)

    @property
    def owners(self) -> dict[str, tuple[str, ...]]:
        return {c.lun: c.owners for c in self.checks}


def may_run(storage: GuestStorage, node: Node, views: Mapping[str, LunView],
            config: ClusterConfig) -> Placement:
    """Whether `node` owns every LUN of the guest, per the SAN views of those LUNs."""
    warnings = _warnings(storage)
    if not storage.managed:
        return Placement(storage.guest, node.name, True, False, warnings=warnings)
    checks = tuple(_check_lun(lun, node, views.get(lun), config) for lun in storage.luns)
    allowed = all(c.state is LunState.OWNED for c in checks) and not storage.unidentified
    return Placement(storage.guest, node.name, allowed, True, checks, storage.unidentified, warnings)


def _check_lun(lun_name: str, node: Node, view: LunView | None, config: ClusterConfig) -> LunCheck:
    if view is None:
        return LunCheck(lun_name, LunState.NO_VIEW, (), f"LUN {lun_name}: no ownership view (cannot tell)")
    if not view.reachable:
        return LunCheck(lun_name, LunState.UNREACHABLE, (),
                        f"LUN {lun_name}: no path answered (cannot tell)")
    owners = _owners(view, config)
    for path in view.up_paths:
        held = path.reservation
        if _single_holder(held) and held.holder != node.key:
            return LunCheck(lun_name, LunState.RESERVED_BY_OTHER, owners,
                            f"LUN {lun_name} is reserved by {describe_key(config, held.holder)} "
                            f"({held.type.label})")
    lun = config.lun(lun_name)
    others = tuple(name for key, name in _registered_keys(view, config) if key != node.key)
    if lun.role is LunRole.GUEST and others:
        return LunCheck(lun_name, LunState.REGISTERED_BY_OTHER, owners,
                        f"LUN {lun_name} is registered by {', '.join(others)}: the guest runs, "
                        "or may run, there")
    missing = tuple(p.path for p in view.up_paths if node.key not in (p.keys or ()))
    if missing:
        return LunCheck(lun_name, LunState.NOT_REGISTERED, owners,
                        f"LUN {lun_name}: {node.name}'s key is not registered on path "
                        f"{', '.join(missing)} ({_registered(owners)})")
    wanted = lun.reservation
    current = view.reservation()
    if lun.role is LunRole.GUEST and (current is None or current.holder is None):
        return LunCheck(lun_name, LunState.NOT_RESERVED, owners,
                        f"LUN {lun_name} carries no reservation: a node that is not "
                        f"registered could write to it (expected {wanted.label})")
    if wanted.single_holder:
        for path in view.up_paths:
            held = path.reservation
            if held is None or held.holder != node.key or held.type != wanted:
                return LunCheck(lun_name, LunState.NOT_RESERVED, owners,
                                f"LUN {lun_name}: {node.name} does not hold its {wanted.label} "
                                f"reservation (path {path.path}: {_describe(held, config)})")
    return LunCheck(lun_name, LunState.OWNED, owners, f"LUN {lun_name} is owned by {node.name}")


def _owners(view: LunView, config: ClusterConfig) -> tuple[str, ...]:
    """The holder of a single-holder reservation, else every registered node."""
    reservation = view.reservation()
    if _single_holder(reservation):
        return (describe_key(config, reservation.holder),)
    return tuple(name for _key, name in _registered_keys(view, config))


def _registered_keys(view: LunView, config: ClusterConfig) -> tuple[tuple[int, str], ...]:
    """Each key the reachable paths list, once, with the node it names."""
    keys = dict.fromkeys(key for path in view.up_paths for key in (path.keys or ()))
    return tuple((key, describe_key(config, key)) for key in keys)


def _single_holder(reservation: Reservation | None) -> bool:
    return (reservation is not None and reservation.holder is not None
            and reservation.type is not None and reservation.type.single_holder)


def _describe(reservation: Reservation | None, config: ClusterConfig) -> str:
    if reservation is None or reservation.holder is None:
        return "no reservation"
    label = reservation.type.label if reservation.type is not None else "unknown type"
    return f"{label} held by {describe_key(config, reservation.holder)}"


def _registered(owners: tuple[str, ...]) -> str:
    return f"owned by {', '.join(owners)}" if owners else "no node is registered"


def _warnings(storage: GuestStorage) -> tuple[str, ...]:
    notes = [f"the guest issues SCSI reservations on LUN {lun} itself (<reservations> on a "
             "device='lun' disk): they go through this node's I_T nexus, next to its fencing key"
             for lun in storage.guest_reservation_luns]
    notes += [f"disk {m.disk.describe()} is <shareable/>: QEMU's own image locking is off"
              for m in storage.mapped if m.disk.shareable]
    return tuple(notes)
