"""Which guests a takeover of a fenced peer starts: decided from the storage's evidence.

A node is registered on a guest's LUNs only while the guest runs there, or migrates there
(DESIGN sections 3 and 10). When this node preempted the peer, its holder recorded on which
LUNs the peer's key was (holder/fence_records.py); the key is gone since, so that record is
the evidence left. A configured guest is the peer's when

- one of its guest LUNs held the peer's key at the fence: the peer ran it, or was receiving
  it in a migration, whatever its `home` (a guest live-migrated to the peer is found so); or
- its `home` is the peer: the configuration's intent (a guest that was stopped there too);

and it is left alone when another node, neither this one nor the peer, is registered on its
guest LUNs now: it runs, or may run, there (migrated to a third node, or the source of the
migration the peer was receiving). A guest that already runs here (migrated here) is left
alone by `start_guest`.

**Without a record** (a power-only fence whose storage step never reached the SAN, a fence
made by another node, a reboot of this node since, a record that cannot be read) the guests
are taken by `home` alone, and the report says so. The registrations left on the SAN are no
substitute: the peer's key is gone from them, so a free guest LUN cannot tell a guest the
peer ran from one an operator stopped, or from one whose node was fenced a moment ago and
whose copy may live on in memory until its watchdog fires; starting every free guest would be
the unsafe guess. `home` is what the operator configured; the cost is that a guest migrated to
the peer is missed, and the report names that (`vm start` starts it).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, Guest, Node
from stonewall.holder.api import Holder, HolderFailure
from stonewall.holder.fence_records import PreemptRecord
from stonewall.vm import guest_registration as registration
from stonewall.vm.disks import DomainXmlError
from stonewall.vm.libvirt_conn import LibvirtConnection, LibvirtError
from stonewall.vm.mapping import GuestStorage, guest_luns


class Because(Enum):
    """Why a guest counts as the peer's."""

    REGISTERED = "registered at the fence"
    HOME = "home"


@dataclass(frozen=True)
class PeerGuest:
    guest: Guest
    peer: str
    because: Because
    held: tuple[str, ...] = ()  # its guest LUNs that held the peer's key at the fence

    @property
    def why(self) -> str:
        if self.because is Because.REGISTERED:
            return f"{self.peer} was registered on {', '.join(self.held)} at the fence"
        return f"its home is {self.peer}"


@dataclass(frozen=True)
class Basis:
    """The fence record the choice rests on (None: none), and one line saying so."""

    record: PreemptRecord | None
    line: str


def choice_basis(holder: Holder, peer: Node, deadline: Deadline) -> Basis:
    """This node's record of its preempts of `peer` in this boot, read through the holder;
    never raises (no record, or none readable, means guests by home)."""
    fallback = (f"guests are taken by home alone: a guest migrated to {peer.name} is not "
                "found (start it with `stonewall vm start`)")
    try:
        record = holder.fence_record(peer.name, deadline)
    except HolderFailure as error:
        return Basis(None, f"{peer.name}'s fence record could not be read ({error}); "
                           f"{fallback}")
    if record is None:
        return Basis(None, f"this node holds no record of fencing {peer.name} in this "
                           f"boot; {fallback}")
    held = ", ".join(record.held) or "no LUN"
    return Basis(record, f"{peer.name}'s key was on {held} when this node preempted it")


def guest_storages(config: ClusterConfig, conn: LibvirtConnection) -> dict[str, GuestStorage]:
    """Each configured guest's LUNs: its entry's, and its definition's here where libvirt has
    a readable one (a guest whose definition cannot be read keeps its configured LUNs;
    `start_guest` reports the rest)."""
    storages = {}
    for guest in config.guests:
        try:
            storages[guest.name] = guest_luns(config, guest.name,
                                              conn.xml(guest.name, inactive=True))
        except (LibvirtError, DomainXmlError):
            storages[guest.name] = guest_luns(config, guest.name, None)
    return storages


def peers_guests(config: ClusterConfig, peer: Node, record: PreemptRecord | None,
                 storages: Mapping[str, GuestStorage]) -> list[PeerGuest]:
    """The configured guests that are `peer`'s (module docstring), in start order (`order`,
    then name)."""
    chosen = []
    for guest in sorted(config.guests, key=lambda g: (g.order, g.name)):
        luns = {lun.name for lun in registration.guest_role_luns(config, storages[guest.name])}
        held = record.held_of(luns) if record is not None else ()
        if held:
            chosen.append(PeerGuest(guest, peer.name, Because.REGISTERED, held))
        elif guest.home == peer.name:
            chosen.append(PeerGuest(guest, peer.name, Because.HOME))
    return chosen


def registered_elsewhere(config: ClusterConfig, holder: Holder, guests: list[PeerGuest],
                         storages: Mapping[str, GuestStorage], node: Node,
                         deadline: Deadline) -> dict[str, tuple[str, ...]]:
    """guest -> the other nodes (neither `node` nor the peer) registered on its guest LUNs
    now. When the views cannot be read, nobody is found: `start_guest` reads them again and
    refuses on what it cannot tell."""
    luns = list(dict.fromkeys(lun.name for g in guests for lun in
                              registration.guest_role_luns(config, storages[g.guest.name])))
    try:
        views = registration.read_views(holder, luns, deadline)
    except HolderFailure:
        return {}
    found = {}
    for taken in guests:
        others = tuple(name for name in registration.registrants(
            config, storages[taken.guest.name], views) if name not in (node.name, taken.peer))
        if others:
            found[taken.guest.name] = others
    return found
