"""Which configured resource, peer node and LUNs a DRBD handler call is about.

The peer is found by DRBD node id through the resource's `peers` map (DRBD 9), else by the
peer's address against `Node.addresses` (DRBD 8.4, or a 9 resource without a `peers` entry).
When both identify a node they must agree; a peer that turns out to be this node is refused.
DRBD 9's drbdadm also names every node id by its drbd.conf `on` names (`DRBD_NODE_ID_<n>`):
for every id both drbd.conf and the configuration name, the names must agree, so a swapped or
garbled drbd.conf can never redirect a fence.
Every doubt is a typed error: a fence handler must never act on a node it only guessed.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from stonewall.config.model import ClusterConfig, DrbdResource, Node
from stonewall.storage.drbd.env import DrbdAddress, HandlerEnv


class ResolveError(Exception):
    """The handler call cannot be tied to configured resource, peer and LUNs."""


class UnknownResourceError(ResolveError):
    """DRBD named a resource the configuration does not list."""


class ResourceWithoutLunsError(ResolveError):
    """The resource lists no LUN, so nothing could fence its peer."""


class UnmappablePeerError(ResolveError):
    """Neither the DRBD node id nor the peer address names exactly one configured node."""


class ConflictingPeerError(UnmappablePeerError):
    """Node id and address name different nodes, or the peer is this node."""


class DrbdNameMismatchError(ConflictingPeerError):
    """drbd.conf names a node id (DRBD_NODE_ID_<n>) differently from the configuration."""


class PeerMatch(str, Enum):
    """What identified the peer."""

    NODE_ID = "node-id"
    ADDRESS = "address"


@dataclass(frozen=True)
class FenceTarget:
    """A resource, its peer node and the LUNs that arbitrate for it."""

    resource: DrbdResource
    peer: Node
    lun_names: tuple[str, ...]  # as configured; order them with ClusterConfig.luns_in_arbiter_order
    matched_by: frozenset[PeerMatch]


def resolve_fence_target(config: ClusterConfig, env: HandlerEnv) -> FenceTarget:
    """The configured resource, peer node and LUN names for this handler call."""
    resource = next((r for r in config.drbd_resources if r.name == env.resource), None)
    if resource is None:
        known = sorted(r.name for r in config.drbd_resources)
        raise UnknownResourceError(
            f"DRBD resource {env.resource!r} is not in {config.source} (drbd resources: {known})")
    # A cluster without shared LUNs (DRBD on local disks) is fenced by power alone.
    if not resource.luns and config.luns:
        raise ResourceWithoutLunsError(
            f"DRBD resource {resource.name!r} lists no LUNs in {config.source}")

    by_id = _node_by_id(config, resource, env.peer_node_id)
    by_address = _node_by_address(config, env.peer_address)
    if by_id is None and by_address is None:
        raise UnmappablePeerError(
            f"resource {resource.name!r}: no configured node for DRBD peer node id "
            f"{env.peer_node_id} (peers: {dict(resource.peers)}) or peer address "
            f"{env.peer_address} (Node.addresses)")
    if by_id is not None and by_address is not None and by_id != by_address:
        raise ConflictingPeerError(
            f"resource {resource.name!r}: DRBD node id {env.peer_node_id} maps to "
            f"{by_id.name!r} but peer address {env.peer_address} belongs to {by_address.name!r}")
    peer = by_id if by_id is not None else by_address
    assert peer is not None  # both None was rejected above

    ourselves = {_node_by_id(config, resource, env.my_node_id),
                 _node_by_address(config, env.my_address)} - {None}
    if peer in ourselves:
        raise ConflictingPeerError(
            f"resource {resource.name!r}: the peer DRBD names resolves to this node "
            f"{peer.name!r}; refusing to fence ourselves")

    _check_drbd_names(resource, env, peer)
    matched_by = frozenset(match for match, node in ((PeerMatch.NODE_ID, by_id),
                                                     (PeerMatch.ADDRESS, by_address))
                           if node is not None)
    return FenceTarget(resource, peer, resource.luns, matched_by)


def _check_drbd_names(resource: DrbdResource, env: HandlerEnv, peer: Node) -> None:
    """Refuse when drbd.conf's name for a node id is not the node the configuration means."""
    expected = dict(resource.peers)
    if env.peer_node_id is not None:
        expected[env.peer_node_id] = peer.name  # also when the peer was found by address
    for node_id, drbd_names in sorted(env.node_names.items()):
        configured = expected.get(node_id)
        if configured is not None and configured not in drbd_names:
            role = " (the peer)" if node_id == env.peer_node_id else ""
            raise DrbdNameMismatchError(
                f"resource {resource.name!r}: drbd.conf names DRBD node id {node_id}{role} "
                f"{' '.join(map(repr, drbd_names))} (DRBD_NODE_ID_{node_id}), but "
                f"{configured!r} in the stonewall configuration; drbd.conf and the "
                "configuration disagree on who the nodes are")


def _node_by_id(config: ClusterConfig, resource: DrbdResource, node_id: int | None
                ) -> Node | None:
    if node_id is None or node_id not in resource.peers:
        return None
    name = resource.peers[node_id]
    try:
        return config.node(name)
    except KeyError:
        raise UnmappablePeerError(
            f"resource {resource.name!r} maps DRBD node id {node_id} to {name!r}, which is not a "
            f"node in {config.source}") from None


def _node_by_address(config: ClusterConfig, address: DrbdAddress | None) -> Node | None:
    if address is None:
        return None
    owners = [node for node in config.nodes
              if any(_same_ip(text, address.ip) for text in node.addresses)]
    if len(owners) > 1:
        raise UnmappablePeerError(
            f"address {address.ip} is listed for several nodes: {[n.name for n in owners]}")
    return owners[0] if owners else None


def _same_ip(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Compare parsed addresses: the kernel prints IPv6 uncompressed (%pI6), configs rarely do.
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False  # not an IP address, so it cannot be this one
