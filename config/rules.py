"""Checks across keys and sections: names that must be unique, references that must resolve,
and the rules of fencing levels and watchdog timing.

Each check runs only when the sections it reads loaded without problems, so one mistake is
reported once, not again as every reference to it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from stonewall.config.document import Sections
from stonewall.config.keys import format_key
from stonewall.config.model import (
    DrbdResource,
    FenceLevel,
    FenceLevelKind,
    Guest,
    Lun,
    LunRole,
    Node,
    Transport,
    WatchdogSettings,
)
from stonewall.config.schema import INVALID, ProblemLog, did_you_mean
from stonewall.storage.multipath.errors import InvalidWwid
from stonewall.storage.multipath.wwid import WwidKind, parse_wwid
from stonewall.config.timing import settings_problems


def _duplicates(log: ProblemLog, what: str, places: Iterable[tuple[str, Any]],
                show: Callable[[Any], str] = str) -> int:
    """Report every value met a second time; returns how many were reported."""
    first: dict[Any, str] = {}
    reported = 0
    for path, value in places:
        if value in first:
            log.add(path, f"duplicate {what} {show(value)}; already used by {first[value]}")
            reported += 1
        else:
            first[value] = path
    return reported


def _reference(log: ProblemLog, path: str, name: str, known: Iterable[str], what: str) -> None:
    names = list(known)
    if name not in names:
        log.add(path, f"unknown {what} {name!r}{did_you_mean(name, names)}; expected one of: "
                + ", ".join(names))


def check_nodes(nodes: tuple[Node, ...], log: ProblemLog) -> None:
    _duplicates(log, "node name", ((f"nodes[{i}].name", n.name) for i, n in enumerate(nodes)))
    # Equal ids give equal derived keys: report the cause, not its echo.
    if not _duplicates(log, "node id", ((f"nodes[{i}].id", n.id) for i, n in enumerate(nodes))):
        _duplicates(log, "reservation key", ((f"nodes[{i}].key", n.key) for i, n in enumerate(nodes)),
                    format_key)
    # Registrations belong to an I_T nexus, named by the initiator: two nodes with one name
    # would share registrations on the target.
    _duplicates(log, "initiator name", ((f"nodes[{i}].initiator", n.initiator)
                                        for i, n in enumerate(nodes) if n.initiator))
    _duplicates(log, "address", ((f"nodes[{i}].addresses[{j}]", address)
                                 for i, n in enumerate(nodes) for j, address in enumerate(n.addresses)))


def check_luns(luns: tuple[Lun, ...], log: ProblemLog) -> None:
    _duplicates(log, "LUN name", ((f"luns[{i}].name", lun.name) for i, lun in enumerate(luns)))
    _check_wwids(luns, log)
    _duplicates(log, "alias", ((f"luns[{i}].alias", lun.alias) for i, lun in enumerate(luns) if lun.alias))
    _duplicates(log, "iSCSI location", ((f"luns[{i}].iscsi", (lun.iscsi.target, lun.iscsi.lun))
                                        for i, lun in enumerate(luns) if lun.iscsi),
                lambda location: f"{location[0]} LUN {location[1]}")
    for i, lun in enumerate(luns):
        if lun.transport is Transport.ISCSI and lun.iscsi is None:
            log.add(f"luns[{i}]", f"LUN {lun.name} uses the iscsi transport but has no iscsi: "
                    "location; expected iscsi: {target, lun, portals}")
        if lun.transport is Transport.SG and not (lun.wwid or lun.alias):
            log.add(f"luns[{i}]", f"LUN {lun.name} uses the sg transport but has neither wwid: "
                    "nor alias:; expected at least one of them")
        if lun.role is LunRole.GUEST and not lun.has_data_path:
            log.add(f"luns[{i}].transport", f"guest LUN {lun.name} has no data path: its guest "
                    "writes through the node's kernel, so its key must be registered there; "
                    "use transport: sg with the map's wwid: (an iscsi: location may stay as the "
                    "control path)")
        if lun.reservation.single_holder and _several_paths(lun):
            log.add(f"luns[{i}].reservation", f"LUN {lun.name}: {lun.reservation.short} "
                    f"({lun.reservation.label}) lets only the one I_T nexus that reserved write, "
                    "and this LUN has several paths (every path of a multipath map, and the "
                    "control path, is a nexus of its own): the other paths would get "
                    "RESERVATION CONFLICT; use we-ar (guest LUNs) or we-ro")


def _several_paths(lun: Lun) -> bool:
    """More than one I_T nexus reaches `lun`: a multipath map (sg), a control path next to
    a data path, or several portals."""
    portals = len(lun.iscsi.portals) if lun.iscsi else 0
    return lun.transport is Transport.SG or portals > 1


def _check_wwids(luns: tuple[Lun, ...], log: ProblemLog) -> None:
    """Each WWID valid in the spellings `stonewall multipath wwid` takes, and each LUN once:
    `3600a...` and `naa.600a...` are one LUN in two spellings, and so a duplicate."""
    identities = []
    for i, lun in enumerate(luns):
        if not lun.wwid:
            continue
        try:
            wwid = parse_wwid(lun.wwid)
        except InvalidWwid as err:
            log.add(f"luns[{i}].wwid", f"{err}; check it with `stonewall multipath wwid` and "
                    "copy the WWID from `multipath -ll` (e.g. 3600a0b8...)")
            continue
        # An untyped 0x<hex> names the NAA or EUI-64 LUN with the same hex (Wwid.matches).
        hex_kinds = (None, WwidKind.NAA, WwidKind.EUI64)
        identity = ("hex", wwid.value) if wwid.kind in hex_kinds else (wwid.kind, wwid.value)
        identities.append((f"luns[{i}].wwid", (identity, str(wwid))))
    _duplicates(log, "WWID", ((path, identity) for path, (identity, _) in identities),
                show=lambda identity: _spelled(identity, identities))


def _spelled(identity: tuple[object, str], identities: list[tuple[str, tuple]]) -> str:
    return next(shown for _, (known, shown) in identities if known == identity)


def check_password_env_for_drbd(nodes: tuple[Node, ...], resources: tuple[DrbdResource, ...],
                                levels: tuple[FenceLevel, ...], log: ProblemLog) -> None:
    """Refuse password_env for a node a DRBD handler may power off.

    drbdadm starts fence-peer with the environment DRBD's kernel hands it (HOME, TERM, PATH
    and DRBD_*), not the service's: the variable would be unset exactly when the power level
    is needed, and the fence would fail with I/O frozen."""
    if not resources or not any(level.kind is FenceLevelKind.POWER for level in levels):
        return
    peers = {name for resource in resources for name in resource.peers.values()}
    for i, node in enumerate(nodes):
        if node.name in peers and node.ipmi is not None and node.ipmi.password.env:
            log.add(f"nodes[{i}].ipmi.password_env",
                    f"DRBD's fence-peer handler may power {node.name} off, and drbdadm starts "
                    f"it without the service's environment, so {node.ipmi.password.env} would "
                    "not be set there; use password_file (mode 0600) for this node")


def check_drbd_luns(resources: tuple[DrbdResource, ...], luns: tuple[Lun, ...], log: ProblemLog) -> None:
    _duplicates(log, "DRBD resource", ((f"drbd[{i}].name", r.name) for i, r in enumerate(resources)))
    _duplicates(log, "DRBD minor", ((f"drbd[{i}].minors[{j}]", minor)
                                    for i, r in enumerate(resources) for j, minor in enumerate(r.minors)))
    for i, resource in enumerate(resources):
        for j, lun in enumerate(resource.luns):
            _reference(log, f"drbd[{i}].luns[{j}]", lun, (x.name for x in luns), "LUN")


def check_drbd_peers(resources: tuple[DrbdResource, ...], nodes: tuple[Node, ...], log: ProblemLog) -> None:
    for i, resource in enumerate(resources):
        for node_id, node in resource.peers.items():
            _reference(log, f"drbd[{i}].peers.{node_id}", node, (n.name for n in nodes), "node")
        _duplicates(log, "peer node", ((f"drbd[{i}].peers.{node_id}", node)
                                       for node_id, node in resource.peers.items()))


def check_guest_luns(guests: tuple[Guest, ...], luns: tuple[Lun, ...], log: ProblemLog) -> None:
    _duplicates(log, "guest name", ((f"guests[{i}].name", g.name) for i, g in enumerate(guests)))
    for i, guest in enumerate(guests):
        for j, lun in enumerate(guest.luns):
            _reference(log, f"guests[{i}].luns[{j}]", lun, (x.name for x in luns), "LUN")
    # A guest LUN's registrations follow one guest: two guests cannot share it.
    guest_role = {lun.name for lun in luns if lun.role is LunRole.GUEST}
    _duplicates(log, "guest LUN", ((f"guests[{i}].luns[{j}]", lun) for i, g in enumerate(guests)
                                   for j, lun in enumerate(g.luns) if lun in guest_role))


def check_guest_homes(guests: tuple[Guest, ...], nodes: tuple[Node, ...], log: ProblemLog) -> None:
    for i, guest in enumerate(guests):
        if guest.home is not None:
            _reference(log, f"guests[{i}].home", guest.home, (n.name for n in nodes), "node")


def check_fencing(levels: tuple[FenceLevel, ...], nodes: tuple[Node, ...], log: ProblemLog) -> None:
    _duplicates(log, "fencing level", ((f"fencing[{i}].level", level.name)
                                       for i, level in enumerate(levels)))
    storage_at = next((i for i, level in enumerate(levels)
                       if level.kind is FenceLevelKind.STORAGE), None)
    for i, level in enumerate(levels):
        # Waiting T_safe ends the topology: after it the peer is assumed dead, nothing follows.
        if level.kind is FenceLevelKind.WAIT_T_SAFE and i != len(levels) - 1:
            log.add(f"fencing[{i}].level", "wait-t-safe must be the last level")
        if level.kind is FenceLevelKind.POWER:
            for node in nodes:
                if node.ipmi is None:
                    log.add(f"fencing[{i}].level", f"the power level needs ipmi: settings for "
                            f"every node, and node {node.name} has none")
        if level.devices is not None:
            for node in nodes:
                if not node.devices(level.devices):
                    log.add(f"fencing[{i}].devices", f"the {level.name} level needs "
                            f"fence_devices.{level.devices} for every node, and node "
                            f"{node.name} has none")
        if level.also_after_storage and (storage_at is None or storage_at > i):
            log.add(f"fencing[{i}].also_after_storage", "also_after_storage needs a storage "
                    "level before this one")


def check_watchdog(watchdog: WatchdogSettings, log: ProblemLog) -> None:
    for message in settings_problems(watchdog):
        log.add("watchdog", message)
    if watchdog.device.startswith("standin:") and not watchdog.allow_standin:
        log.add("watchdog.device", "the userspace stand-in is used only with allow_standin: true; "
                "expected a real watchdog device such as /dev/watchdog")


# What a cluster without shared LUNs gives up; `config check` prints it (config/summary.py).
WITHOUT_LUNS = (
    "no shared LUNs: the SAN cannot arbitrate a fence race, so the power delay of one node "
    "is all that keeps both nodes from powering each other off; nothing proves a peer is cut "
    "off without its power (no storage level, no T_safe level); no watchdog self-fencing "
    "(the watchdog service refuses to start: it would have nothing to check); guests are "
    "not placed by reservations (libvirt's hook has no LUN to check)")


def check_without_luns(levels: tuple[FenceLevel, ...], luns: tuple[Lun, ...],
                       resources: tuple[DrbdResource, ...], log: ProblemLog) -> None:
    """Levels that need LUNs, where there are none, could never verify."""
    if luns:
        for i, resource in enumerate(resources):
            if not resource.luns and any(level.kind is FenceLevelKind.STORAGE for level in levels):
                log.add(f"drbd[{i}].luns", f"resource {resource.name} has no LUNs, and the "
                        "storage level fences through a resource's LUNs; give it its arbiter "
                        "LUNs, or leave luns out everywhere and fence by power")
        return
    for i, level in enumerate(levels):
        if level.kind in (FenceLevelKind.STORAGE, FenceLevelKind.WAIT_T_SAFE):
            log.add(f"fencing[{i}].level", f"the {level.kind.value} level needs shared LUNs, "
                    "and luns is empty; a cluster without shared LUNs fences by power and "
                    "agent levels only")
    if not any(level.kind in (FenceLevelKind.POWER, FenceLevelKind.AGENT) for level in levels):
        log.add("fencing", "a cluster without shared LUNs needs a power or agent level: "
                "nothing else can prove its peer fenced")


# Each check with the sections it reads, in argument order.
_CHECKS: tuple[tuple[Callable[..., None], tuple[str, ...]], ...] = (
    (check_nodes, ("nodes",)),
    (check_luns, ("luns",)),
    (check_drbd_luns, ("drbd", "luns")),
    (check_drbd_peers, ("drbd", "nodes")),
    (check_guest_luns, ("guests", "luns")),
    (check_guest_homes, ("guests", "nodes")),
    (check_fencing, ("fencing", "nodes")),
    (check_password_env_for_drbd, ("nodes", "drbd", "fencing")),
    (check_without_luns, ("fencing", "luns", "drbd")),
    (check_watchdog, ("watchdog",)),
)


def check_sections(sections: Sections, log: ProblemLog) -> None:
    """Run every check whose sections all loaded without problems."""
    for check, needs in _CHECKS:
        if all(sections[name] is not INVALID for name in needs):
            check(*(sections[name] for name in needs), log)
