"""Gather what `stonewall vm list` judges: each node's domain states, each guest's LUNs and
the SAN's views of them, all under one deadline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig
from stonewall.holder.handoffs import Handoff
from stonewall.vm import guest_registration as registration
from stonewall.storage.view import LunView
from stonewall.bounded import DeadlineExceeded, call_before
from stonewall.storage.view import ReadViews
from stonewall.vm.libvirt_conn import DomainState, LibvirtConnection, LibvirtError
from stonewall.vm.listing import GuestRow, guest_verdict
from stonewall.vm.mapping import GuestStorage, guest_luns
from stonewall.vm.placement import may_run


@dataclass(frozen=True)
class Inventory:
    rows: tuple[GuestRow, ...]
    problems: tuple[str, ...]  # what could not be read (nodes, ownership), one line each


def collect_inventory(config: ClusterConfig, read_views: ReadViews | None,
                      uris: Mapping[str, str], *, local_node: str, deadline: Deadline,
                      handoffs: Sequence[Handoff] = ()) -> Inventory:
    """One row per configured guest, in start order. A node without a URI, or whose libvirt
    does not answer, has UNKNOWN states; without `read_views` no LUN has a view. `handoffs`:
    the live migrations in flight, as this node's holder knows them."""
    problems: list[str] = []
    connections = _connect(config, uris, deadline, problems)
    try:
        states = {node: _states(node, conn, config, problems) for node, conn in connections.items()}
        # The local definition first: that is the XML this node's hook would judge.
        ordered = sorted(connections.items(), key=lambda item: item[0] != local_node)
        storages = [guest_luns(config, guest.name, _domain_xml(ordered, guest.name))
                    for guest in sorted(config.guests, key=lambda g: (g.order, g.name))]
    finally:
        for conn in connections.values():
            if conn is not None:
                conn.close()
    views = _views(read_views, storages, deadline, problems)
    migrating = {h.guest: h for h in handoffs}
    rows = tuple(guest_verdict(
        storage.guest,
        {node.name: may_run(storage, node, views, config) for node in config.nodes},
        {node: by_guest.get(storage.guest, DomainState.UNKNOWN) for node, by_guest in states.items()},
        registrants=registration.registrants(config, storage, views),
        migration=migrating.get(storage.guest))
        for storage in storages)
    return Inventory(rows, tuple(problems))


def _connect(config: ClusterConfig, uris: Mapping[str, str], deadline: Deadline,
             problems: list[str]) -> dict[str, LibvirtConnection | None]:
    connections: dict[str, LibvirtConnection | None] = {}
    for node in config.nodes:
        uri = uris.get(node.name)
        connections[node.name] = None
        if uri is None:
            problems.append(f"{node.name}: no libvirt URI given (--uri {node.name}=URI)")
            continue
        try:
            connections[node.name] = LibvirtConnection.open(
                uri, deadline, read_only=True, call_timeout=deadline.remaining())
        except LibvirtError as error:
            problems.append(f"{node.name}: {error}")
    return connections


def _states(node: str, conn: LibvirtConnection | None, config: ClusterConfig,
            problems: list[str]) -> dict[str, DomainState]:
    """Each configured guest's state on one node; a guest libvirt does not know there is off
    there. Nothing is known (empty) when there is no connection or it fails."""
    if conn is None:
        return {}
    try:
        found = {info.name: info.state for info in conn.list_domains()}
    except LibvirtError as error:
        problems.append(f"{node}: {error}")
        return {}
    return {guest.name: found.get(guest.name, DomainState.SHUT_OFF) for guest in config.guests}


def _domain_xml(connections: list[tuple[str, LibvirtConnection | None]], guest: str) -> str | None:
    for _node, conn in connections:
        if conn is None:
            continue
        try:
            return conn.xml(guest)
        except LibvirtError:  # not defined there, or that node stopped answering: try the next
            continue
    return None


def _views(read_views: ReadViews | None, storages: list[GuestStorage], deadline: Deadline,
           problems: list[str]) -> Mapping[str, LunView]:
    luns = tuple(dict.fromkeys(lun for storage in storages for lun in storage.luns))
    if not luns:
        return {}
    if read_views is None:
        problems.append("no source of LUN ownership is wired into this command")
        return {}
    try:
        return call_before(deadline, lambda: read_views(luns, deadline), "read LUN ownership")
    except DeadlineExceeded:
        problems.append(f"LUN ownership ({', '.join(luns)}) could not be read in time")
    except Exception as error:  # shown as "cannot tell" on every guest, with the reason here
        problems.append(f"cannot read LUN ownership: {error}")
    return {}
