"""resolve_fence_target: a handler call is tied to exactly one configured peer, or refused."""
from __future__ import annotations

import pytest

from stonewall.config.model import (
    ClusterConfig,
    DrbdResource,
    Lun,
    LunRole,
    Node,
    Transport,
)
from stonewall.storage.drbd.env import DrbdVersion, HandlerEnv, parse_handler_env
from stonewall.storage.drbd.resolve import (
    ConflictingPeerError,
    DrbdNameMismatchError,
    PeerMatch,
    ResourceWithoutLunsError,
    UnknownResourceError,
    UnmappablePeerError,
    resolve_fence_target,
)

KVM_A = Node(name="kvm-a", id=1, key=0x5357000000000001,
             addresses=("192.0.2.11", "fd00::11", "kvm-a.example"))
KVM_B = Node(name="kvm-b", id=2, key=0x5357000000000002, addresses=("192.0.2.12",))
KVM_C = Node(name="kvm-c", id=3, key=0x5357000000000003, addresses=("192.0.2.13",))


def _config(*resources: DrbdResource, nodes: tuple[Node, ...] = (KVM_A, KVM_B, KVM_C)
            ) -> ClusterConfig:
    luns = (Lun(name="arbiter", role=LunRole.ARBITER, transport=Transport.SG, order=1,
                wwid="36001405aaaa"),
            Lun(name="r0-data", role=LunRole.SHARED, transport=Transport.SG,
                wwid="36001405bbbb"))
    return ClusterConfig(source="/etc/stonewall/cluster.yaml", cluster="lab", nodes=nodes,
                         luns=luns, drbd_resources=resources)


R0 = DrbdResource(name="r0", luns=("arbiter", "r0-data"), peers={0: "kvm-a", 1: "kvm-b"})
R84 = DrbdResource(name="r84", luns=("arbiter",))
CONFIG = _config(R0, R84)

# DRBD 9 fence-peer on kvm-a (node id 0) about kvm-b (node id 1), as drbdadm hands it over.
V9_ON_KVM_A = {
    "DRBD_RESOURCE": "r0", "DRBD_MY_NODE_ID": "0", "DRBD_PEER_NODE_ID": "1",
    "DRBD_NODE_ID_0": "kvm-a", "DRBD_NODE_ID_1": "kvm-b",
    "DRBD_MY_ADDRESS": "192.0.2.11", "DRBD_MY_AF": "ipv4",
    "DRBD_PEER_ADDRESS": "192.0.2.12", "DRBD_PEER_AF": "ipv4",
    "DRBD_MINOR": "0", "DRBD_VOLUME": "0", "UP_TO_DATE_NODES": "0x00000001",
}
PROGRAM = ["/usr/sbin/stonewall-drbd-fence-peer"]


def test_drbd9_peer_is_found_by_node_id_and_confirmed_by_address() -> None:
    target = resolve_fence_target(CONFIG, parse_handler_env(V9_ON_KVM_A, PROGRAM))

    assert target.peer == KVM_B
    assert target.resource is R0 and target.lun_names == ("arbiter", "r0-data")
    assert target.matched_by == {PeerMatch.NODE_ID, PeerMatch.ADDRESS}


def test_drbd84_peer_is_found_by_address() -> None:
    env = parse_handler_env({"DRBD_RESOURCE": "r84", "DRBD_PEER_AF": "ipv4",
                             "DRBD_PEER_ADDRESS": "192.0.2.13", "DRBD_PEERS": "kvm-c",
                             "DRBD_MINOR": "3"}, PROGRAM)

    target = resolve_fence_target(CONFIG, env)

    assert env.version is DrbdVersion.V8_4
    assert target.peer == KVM_C and target.matched_by == {PeerMatch.ADDRESS}


def test_a_node_id_missing_from_peers_falls_back_to_the_address() -> None:
    env = HandlerEnv(DrbdVersion.V9, "r0", peer_node_id=2,
                     peer_address=parse_handler_env(
                         {"DRBD_RESOURCE": "r0", "DRBD_PEER_AF": "ipv4",
                          "DRBD_PEER_ADDRESS": "192.0.2.13"}, PROGRAM).peer_address)

    target = resolve_fence_target(CONFIG, env)

    assert target.peer == KVM_C and target.matched_by == {PeerMatch.ADDRESS}


def test_the_kernels_uncompressed_ipv6_matches_a_compressed_config_address() -> None:
    env = parse_handler_env({"DRBD_RESOURCE": "r84", "DRBD_PEER_AF": "ipv6",
                             "DRBD_PEER_ADDRESS": "fd00:0000:0000:0000:0000:0000:0000:0011"},
                            PROGRAM)

    assert resolve_fence_target(CONFIG, env).peer == KVM_A


def test_node_id_alone_suffices_without_an_address() -> None:
    env = HandlerEnv(DrbdVersion.V9, "r0", peer_node_id=0, my_node_id=1)

    target = resolve_fence_target(CONFIG, env)

    assert target.peer == KVM_A and target.matched_by == {PeerMatch.NODE_ID}


def test_an_unknown_resource_is_refused() -> None:
    env = parse_handler_env({**V9_ON_KVM_A, "DRBD_RESOURCE": "r9"}, PROGRAM)

    with pytest.raises(UnknownResourceError, match="'r9'"):
        resolve_fence_target(CONFIG, env)


def test_a_resource_without_luns_is_refused() -> None:
    config = _config(DrbdResource(name="r0", luns=(), peers={1: "kvm-b"}))

    with pytest.raises(ResourceWithoutLunsError):
        resolve_fence_target(config, parse_handler_env(V9_ON_KVM_A, PROGRAM))


def test_a_peer_neither_id_nor_address_identifies_is_refused() -> None:
    env = parse_handler_env({**V9_ON_KVM_A, "DRBD_PEER_NODE_ID": "7",
                             "DRBD_PEER_ADDRESS": "198.51.100.7"}, PROGRAM)

    with pytest.raises(UnmappablePeerError, match="no configured node"):
        resolve_fence_target(CONFIG, env)


def test_a_call_without_any_peer_identity_is_refused() -> None:
    with pytest.raises(UnmappablePeerError):
        resolve_fence_target(CONFIG, HandlerEnv(DrbdVersion.V8_4, "r84"))


def test_node_id_and_address_naming_different_nodes_is_refused() -> None:
    env = parse_handler_env({**V9_ON_KVM_A, "DRBD_PEER_ADDRESS": "192.0.2.13"}, PROGRAM)

    with pytest.raises(ConflictingPeerError, match="'kvm-b'.*'kvm-c'"):
        resolve_fence_target(CONFIG, env)


def test_peers_naming_a_node_that_does_not_exist_is_refused() -> None:
    config = _config(DrbdResource(name="r0", luns=("arbiter",), peers={1: "kvm-z"}))

    with pytest.raises(UnmappablePeerError, match="'kvm-z'"):
        resolve_fence_target(config, parse_handler_env(V9_ON_KVM_A, PROGRAM))


def test_an_address_listed_for_two_nodes_is_refused() -> None:
    twin = Node(name="kvm-d", id=4, key=0x5357000000000004, addresses=("192.0.2.13",))
    config = _config(R84, nodes=(KVM_A, KVM_B, KVM_C, twin))
    env = parse_handler_env({"DRBD_RESOURCE": "r84", "DRBD_PEER_AF": "ipv4",
                             "DRBD_PEER_ADDRESS": "192.0.2.13"}, PROGRAM)

    with pytest.raises(UnmappablePeerError, match="several nodes"):
        resolve_fence_target(config, env)


def test_a_peer_that_is_this_node_is_never_a_fence_target() -> None:
    # The peer id is not in `peers`, and the peer address is our own: DRBD or the config is
    # confused, and fencing would cut off this very node.
    env = parse_handler_env({**V9_ON_KVM_A, "DRBD_PEER_NODE_ID": "5",
                             "DRBD_PEER_ADDRESS": "192.0.2.11"}, PROGRAM)

    with pytest.raises(ConflictingPeerError, match="this node"):
        resolve_fence_target(CONFIG, env)


@pytest.mark.parametrize("names, node_id, named", [
    ({"DRBD_NODE_ID_0": "kvm-b", "DRBD_NODE_ID_1": "kvm-a"}, 0, "'kvm-b'"),  # swapped in drbd.conf
    ({"DRBD_NODE_ID_1": "kvm-c"}, 1, "'kvm-c'"),  # the peer's id names another node
    ({"DRBD_NODE_ID_1": "kvm-b.example kvm-bb"}, 1, "'kvm-b.example' 'kvm-bb'"),
])
def test_drbd_conf_names_that_disagree_with_the_peers_map_are_refused(
        names: dict[str, str], node_id: int, named: str) -> None:
    env = parse_handler_env({**V9_ON_KVM_A, **names}, PROGRAM)
    with pytest.raises(DrbdNameMismatchError,
                       match=f"names DRBD node id {node_id}.* {named} \\(DRBD_NODE_ID_{node_id}\\)"):
        resolve_fence_target(CONFIG, env)


def test_a_peer_found_by_address_must_carry_its_drbd_conf_name() -> None:
    # r9 has no peers map: the address finds kvm-b, but drbd.conf calls the peer's id kvm-c.
    config = _config(DrbdResource(name="r9", luns=("arbiter",)))
    env = parse_handler_env({**V9_ON_KVM_A, "DRBD_RESOURCE": "r9", "DRBD_NODE_ID_1": "kvm-c"},
                            PROGRAM)
    with pytest.raises(DrbdNameMismatchError, match="id 1 \\(the peer\\) 'kvm-c'"):
        resolve_fence_target(config, env)


def test_drbd_conf_names_that_agree_and_ids_the_config_does_not_map_pass() -> None:
    env = parse_handler_env({**V9_ON_KVM_A, "DRBD_NODE_ID_1": "kvm-b.example kvm-b",
                             "DRBD_NODE_ID_7": "elsewhere"}, PROGRAM)
    assert resolve_fence_target(CONFIG, env).peer == KVM_B
