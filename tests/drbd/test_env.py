"""parse_handler_env: DRBD 8.4 and 9 environments, and every malformed case refused."""
from __future__ import annotations

import dataclasses
import ipaddress
import re
import shlex
from pathlib import Path

import pytest

from stonewall.storage.drbd.env import (
    AddressFamily,
    DrbdVersion,
    HandlerEnvError,
    InvalidResourceNameError,
    check_resource_name,
    parse_handler_env,
)

FIXTURES = Path(__file__).parent / "fixtures"
PROGRAM = ["/usr/sbin/stonewall-drbd-fence-peer"]

# What DRBD 9's kernel puts in every helper's environment (drbd_khelper()).
KERNEL_BASE = {"HOME": "/", "TERM": "linux", "PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}

# A DRBD 9 fence-peer call through drbdadm: kernel variables plus drbdadm's additions.
V9_FENCE_PEER = {
    **KERNEL_BASE,
    "DRBD_MY_ADDRESS": "192.0.2.11", "DRBD_MY_AF": "ipv4",
    "DRBD_PEER_ADDRESS": "192.0.2.12", "DRBD_PEER_AF": "ipv4",
    "DRBD_PEER_NODE_ID": "1", "DRBD_CSTATE": "NetworkFailure",
    "DRBD_MINOR_0": "1000", "DRBD_MINOR_1": "1001",
    "DRBD_BACKING_DEV_0": "/dev/vg/a", "DRBD_BACKING_DEV_1": "/dev/vg/b",
    "UP_TO_DATE_NODES": "0x00000001",
    "DRBD_RESOURCE": "r0", "DRBD_CONF": "/etc/drbd.conf",
    "DRBD_NODE_ID_0": "kvm-a", "DRBD_NODE_ID_1": "kvm-b", "DRBD_MY_NODE_ID": "0",
    "DRBD_MINOR": "1000 1001", "DRBD_VOLUME": "0 1", "DRBD_LL_DISK": "/dev/vg/a /dev/vg/b",
}

# A DRBD 8.4 fence-peer call through drbdadm (resource helper: minor list, no DRBD_VOLUME).
V84_FENCE_PEER = {
    **KERNEL_BASE,
    "DRBD_PEER_AF": "ipv4", "DRBD_PEER_ADDRESS": "192.0.2.12",
    "DRBD_PEER": "kvm-b", "DRBD_PEERS": "kvm-b",
    "DRBD_MINOR": "3 4", "DRBD_RESOURCE": "r84", "DRBD_CONF": "/etc/drbd.conf",
}


def _issue11_environment() -> dict[str, str]:
    words = shlex.split((FIXTURES / "env-drbd-utils-issue11.txt").read_text())
    return dict(word.split("=", 1) for word in words)


def test_a_drbd9_fence_peer_call_names_resource_peer_volumes_and_up_to_date_nodes() -> None:
    env = parse_handler_env(V9_FENCE_PEER, PROGRAM)

    assert env.version is DrbdVersion.V9
    assert env.resource == "r0"
    assert env.handler is None
    assert env.minors == (1000, 1001) and env.volumes == (0, 1)
    assert env.peer_node_id == 1 and env.my_node_id == 0
    assert env.peer_names == ("kvm-b",)
    assert env.node_names == {0: ("kvm-a",), 1: ("kvm-b",)}
    assert env.peer_address is not None and env.peer_address.family is AddressFamily.IPV4
    assert env.peer_address.ip == ipaddress.IPv4Address("192.0.2.12")
    assert str(env.my_address) == "ipv4:192.0.2.11"
    assert env.up_to_date_nodes == frozenset({0})
    assert env.connection_state == "NetworkFailure"
    assert env.config_file == "/etc/drbd.conf"


def test_the_real_environment_from_drbd_utils_issue_11_parses() -> None:
    env = parse_handler_env(_issue11_environment(), ["/usr/local/lib/drbd/crm-unfence-peer.9.sh"])

    assert env.version is DrbdVersion.V9
    assert env.resource == "audiodata"
    assert env.peer_node_id == 2 and env.peer_names == ("ip-172-31-12-208",)
    assert len(env.node_names) == 4 and env.node_names[3] == ("ip-172-31-12-57",)
    assert env.minors == (0,) and env.volumes == (0,)
    # UP_TO_DATE_NODES='' (a device helper gets none): absent, not "no node is UpToDate".
    assert env.up_to_date_nodes is None
    assert env.connection_state == "Connected"


def test_a_drbd84_fence_peer_call_names_the_peer_from_drbd_peers() -> None:
    env = parse_handler_env(V84_FENCE_PEER, PROGRAM)

    assert env.version is DrbdVersion.V8_4
    assert env.resource == "r84"
    assert env.peer_names == ("kvm-b",)
    assert env.peer_node_id is None and env.my_node_id is None
    assert env.minors == (3, 4) and env.volumes == ()
    assert env.peer_address is not None and str(env.peer_address.ip) == "192.0.2.12"
    assert env.up_to_date_nodes is None


def test_drbd84_without_peers_is_still_84_because_drbd9_drbdadm_always_exports_my_node_id() -> None:
    environ = {k: v for k, v in V84_FENCE_PEER.items() if k not in ("DRBD_PEER", "DRBD_PEERS")}

    env = parse_handler_env(environ, PROGRAM)

    assert env.version is DrbdVersion.V8_4 and env.peer_names == ()


def test_deprecated_drbd_peer_alone_names_the_peer() -> None:
    environ = {k: v for k, v in V84_FENCE_PEER.items() if k != "DRBD_PEERS"}

    assert parse_handler_env(environ, PROGRAM).peer_names == ("kvm-b",)


def test_drbd9_as_usermode_helper_takes_handler_and_resource_from_argv() -> None:
    kernel_only = {**KERNEL_BASE, "DRBD_PEER_NODE_ID": "1", "DRBD_CSTATE": "Connecting",
                   "DRBD_MY_ADDRESS": "192.0.2.11", "DRBD_MY_AF": "ipv4",
                   "DRBD_PEER_ADDRESS": "192.0.2.12", "DRBD_PEER_AF": "ipv4",
                   "DRBD_MINOR_0": "7", "UP_TO_DATE_NODES": "0x00000003"}

    env = parse_handler_env(kernel_only, ["/usr/sbin/stonewall-helper", "fence-peer", "r0"])

    assert env.version is DrbdVersion.V9
    assert env.handler == "fence-peer" and env.resource == "r0"
    assert env.minors == (7,) and env.volumes == (0,)
    assert env.up_to_date_nodes == frozenset({0, 1})
    assert env.peer_names == ()  # only drbdadm exports host names


def test_drbd84_as_usermode_helper_for_a_connection_handler_is_84() -> None:
    kernel_only = {**KERNEL_BASE, "DRBD_PEER_AF": "ipv4", "DRBD_PEER_ADDRESS": "192.0.2.12"}

    env = parse_handler_env(kernel_only, ["/usr/sbin/stonewall-helper", "fence-peer", "r84"])

    assert env.version is DrbdVersion.V8_4 and env.resource == "r84"


def test_drbd84_device_helper_through_drbdadm_carries_its_minor() -> None:
    environ = {**V84_FENCE_PEER, "DRBD_MINOR": "3", "DRBD_VOLUME": "0", "DRBD_LL_DISK": "/dev/a"}

    env = parse_handler_env(environ, ["/usr/sbin/stonewall-drbd-split-brain"])

    assert env.minors == (3,) and env.volumes == (0,)


def test_kernel_ipv6_addresses_are_printed_uncompressed_and_still_parse() -> None:
    environ = {**V9_FENCE_PEER, "DRBD_PEER_AF": "ipv6",
               "DRBD_PEER_ADDRESS": "fd00:0000:0000:0000:0000:0000:0000:0012"}

    env = parse_handler_env(environ, PROGRAM)

    assert env.peer_address is not None
    assert env.peer_address.ip == ipaddress.IPv6Address("fd00::12")


@pytest.mark.parametrize("family", ["ssocks", "sdp"])
def test_ipv4_carrying_families_parse(family: str) -> None:
    env = parse_handler_env({**V84_FENCE_PEER, "DRBD_PEER_AF": family}, PROGRAM)

    assert env.peer_address is not None and env.peer_address.family.value == family


def test_all_ones_up_to_date_mask_means_no_attached_volume_not_every_node() -> None:
    env = parse_handler_env({**V9_FENCE_PEER, "UP_TO_DATE_NODES": "0xFFFFFFFFFFFFFFFF"}, PROGRAM)

    assert env.up_to_date_nodes is None


def test_up_to_date_mask_maps_bits_to_node_ids() -> None:
    env = parse_handler_env({**V9_FENCE_PEER, "UP_TO_DATE_NODES": "0x80000005"}, PROGRAM)

    assert env.up_to_date_nodes == frozenset({0, 2, 31})


def test_an_empty_minor_list_means_a_resource_without_local_volumes() -> None:
    environ = {k: v for k, v in V9_FENCE_PEER.items() if not k.startswith("DRBD_MINOR_")}
    environ.update(DRBD_MINOR="", DRBD_VOLUME="")

    env = parse_handler_env(environ, PROGRAM)

    assert env.minors == () and env.volumes == ()


def test_the_parsed_environment_cannot_be_changed() -> None:
    env = parse_handler_env(V9_FENCE_PEER, PROGRAM)

    with pytest.raises(dataclasses.FrozenInstanceError):
        env.resource = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        env.node_names[5] = ("intruder",)  # type: ignore[index]


def _without(environ: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in names}


MALFORMED = [
    # (case id, environment, argv, words the error must contain)
    ("empty-argv", V9_FENCE_PEER, [], "argv is empty"),
    ("two-args", V9_FENCE_PEER, PROGRAM + ["fence-peer"], "unexpected arguments"),
    ("unknown-handler", V9_FENCE_PEER, PROGRAM + ["kill-peer", "r0"], "unexpected arguments"),
    ("legacy-outdate-peer", V9_FENCE_PEER, PROGRAM + ["outdate-peer", "r0"],
     "unexpected arguments"),
    ("extra-arg", V9_FENCE_PEER, PROGRAM + ["fence-peer", "r0", "x"], "unexpected arguments"),
    ("bad-minor-arg", V84_FENCE_PEER, PROGRAM + ["split-brain", "minor-x"], "minor-N"),
    ("no-resource", _without(V9_FENCE_PEER, "DRBD_RESOURCE"), PROGRAM, "DRBD_RESOURCE"),
    ("empty-resource", {**V9_FENCE_PEER, "DRBD_RESOURCE": ""}, PROGRAM, "DRBD_RESOURCE"),
    ("84-device-helper-without-resource", {**KERNEL_BASE, "DRBD_PEER_AF": "ipv4",
                                           "DRBD_PEER_ADDRESS": "192.0.2.12"},
     PROGRAM + ["split-brain", "minor-3"], "DRBD_RESOURCE"),
    ("resource-disagrees-with-argv", V9_FENCE_PEER, PROGRAM + ["fence-peer", "r1"],
     "disagrees"),
    ("resource-with-space", {**V9_FENCE_PEER, "DRBD_RESOURCE": "r 0"}, PROGRAM,
     "DRBD_RESOURCE"),
    ("resource-with-slash", {**V9_FENCE_PEER, "DRBD_RESOURCE": "../r0"}, PROGRAM,
     "DRBD_RESOURCE"),
    ("mixed-versions", {**V9_FENCE_PEER, "DRBD_PEERS": "kvm-b"}, PROGRAM, "mixes DRBD 9"),
    ("unknowable-version", {**KERNEL_BASE, "DRBD_MINOR": "0", "DRBD_VOLUME": "0"},
     PROGRAM + ["local-io-error", "r0"], "cannot tell DRBD 8.4 from 9"),
    ("peer-id-word", {**V9_FENCE_PEER, "DRBD_PEER_NODE_ID": "one"}, PROGRAM,
     "DRBD_PEER_NODE_ID"),
    ("peer-id-negative", {**V9_FENCE_PEER, "DRBD_PEER_NODE_ID": "-1"}, PROGRAM,
     "DRBD_PEER_NODE_ID"),
    ("peer-id-too-big", {**V9_FENCE_PEER, "DRBD_PEER_NODE_ID": "32"}, PROGRAM,
     "DRBD_PEER_NODE_ID"),
    ("peer-id-padded", {**V9_FENCE_PEER, "DRBD_PEER_NODE_ID": " 1"}, PROGRAM,
     "DRBD_PEER_NODE_ID"),
    ("my-id-word", {**V9_FENCE_PEER, "DRBD_MY_NODE_ID": "0x1"}, PROGRAM, "DRBD_MY_NODE_ID"),
    ("peer-is-me", {**V9_FENCE_PEER, "DRBD_PEER_NODE_ID": "0"}, PROGRAM, "cannot be this node"),
    ("node-id-name-suffix", {**V9_FENCE_PEER, "DRBD_NODE_ID_x": "kvm-x"}, PROGRAM,
     "DRBD_NODE_ID_x"),
    ("node-id-name-too-big", {**V9_FENCE_PEER, "DRBD_NODE_ID_40": "kvm-x"}, PROGRAM,
     "DRBD_NODE_ID_40"),
    ("node-id-blank-name", {**V9_FENCE_PEER, "DRBD_NODE_ID_1": "   "}, PROGRAM,
     "DRBD_NODE_ID_1"),
    ("blank-peers", {**V84_FENCE_PEER, "DRBD_PEERS": "  "}, PROGRAM, "DRBD_PEERS"),
    ("minor-word", {**V9_FENCE_PEER, "DRBD_MINOR": "1000 b"}, PROGRAM, "DRBD_MINOR"),
    ("volume-negative", {**V9_FENCE_PEER, "DRBD_VOLUME": "0 -1"}, PROGRAM, "DRBD_VOLUME"),
    ("minor-volume-count", {**V9_FENCE_PEER, "DRBD_VOLUME": "0"}, PROGRAM,
     "one minor per volume"),
    ("per-volume-minor-conflict", {**V9_FENCE_PEER, "DRBD_MINOR_1": "1002"}, PROGRAM,
     "DRBD_MINOR_1"),
    ("per-volume-minor-suffix", {**V9_FENCE_PEER, "DRBD_MINOR_a": "1"}, PROGRAM,
     "DRBD_MINOR_a"),
    ("per-volume-minor-word", {**V9_FENCE_PEER, "DRBD_MINOR_0": "zero"}, PROGRAM,
     "DRBD_MINOR_0"),
    ("argv-minor-not-listed", V84_FENCE_PEER, PROGRAM + ["split-brain", "minor-5"],
     "argv names minor 5"),
    ("address-without-family", _without(V9_FENCE_PEER, "DRBD_PEER_AF"), PROGRAM,
     "DRBD_PEER_AF"),
    ("family-without-address", _without(V9_FENCE_PEER, "DRBD_MY_ADDRESS"), PROGRAM,
     "DRBD_MY_ADDRESS"),
    ("unknown-family", {**V9_FENCE_PEER, "DRBD_PEER_AF": "ipx"}, PROGRAM, "DRBD_PEER_AF"),
    ("bad-ipv4", {**V9_FENCE_PEER, "DRBD_PEER_ADDRESS": "192.0.2.300"}, PROGRAM,
     "DRBD_PEER_ADDRESS"),
    ("address-with-port", {**V9_FENCE_PEER, "DRBD_PEER_ADDRESS": "192.0.2.12:7789"}, PROGRAM,
     "DRBD_PEER_ADDRESS"),
    ("ipv6-family-ipv4-address", {**V9_FENCE_PEER, "DRBD_PEER_AF": "ipv6"}, PROGRAM,
     "DRBD_PEER_ADDRESS"),
    ("ipv6-in-brackets", {**V9_FENCE_PEER, "DRBD_PEER_AF": "ipv6",
                          "DRBD_PEER_ADDRESS": "[fd00::12]"}, PROGRAM, "DRBD_PEER_ADDRESS"),
    ("mask-without-0x", {**V9_FENCE_PEER, "UP_TO_DATE_NODES": "3"}, PROGRAM,
     "UP_TO_DATE_NODES"),
    ("mask-only-0x", {**V9_FENCE_PEER, "UP_TO_DATE_NODES": "0x"}, PROGRAM, "UP_TO_DATE_NODES"),
    ("mask-not-hex", {**V9_FENCE_PEER, "UP_TO_DATE_NODES": "0x0000000G"}, PROGRAM,
     "UP_TO_DATE_NODES"),
    ("mask-too-long", {**V9_FENCE_PEER, "UP_TO_DATE_NODES": "0x" + "0" * 17}, PROGRAM,
     "UP_TO_DATE_NODES"),
    ("mask-beyond-node-ids", {**V9_FENCE_PEER, "UP_TO_DATE_NODES": "0x100000001"}, PROGRAM,
     "bits above node id 31"),
]


@pytest.mark.parametrize("environ, argv, words", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_environment_is_refused_with_a_message_naming_the_culprit(
        environ: dict[str, str], argv: list[str], words: str) -> None:
    with pytest.raises(HandlerEnvError, match=re.escape(words)):
        parse_handler_env(environ, argv)


@pytest.mark.parametrize("name", ["", "r 0", "r\t0", "a/b", "r0\x00"])
def test_unusable_resource_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidResourceNameError):
        check_resource_name(name)


def test_ordinary_resource_names_pass() -> None:
    assert check_resource_name("pvc-0b9c_r0.data") == "pvc-0b9c_r0.data"


@pytest.mark.parametrize("name", ["DRBD_PEER_NODE_ID", "DRBD_MY_NODE_ID", "DRBD_MINOR_0"])
def test_a_number_of_thousands_of_digits_is_refused_not_converted(name: str) -> None:
    # CPython refuses int() of more than 4300 digits with a bare ValueError (a traceback in
    # the handler before); it must be the handler's own refusal, and the message stays short.
    with pytest.raises(HandlerEnvError, match="not a number of 5000 digits") as caught:
        parse_handler_env({**V9_FENCE_PEER, name: "7" * 5000}, PROGRAM)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("value", ["kvm-\udcff", "kvm-b\x1b[2J", "k" * 254])
def test_host_names_that_are_not_printable_utf8_are_refused(value: str) -> None:
    # "\udcff" is how os.environ carries the byte 0xff (surrogateescape).
    with pytest.raises(HandlerEnvError, match="DRBD_NODE_ID_1=.*printable UTF-8"):
        parse_handler_env({**V9_FENCE_PEER, "DRBD_NODE_ID_1": value}, PROGRAM)
    with pytest.raises(HandlerEnvError, match="DRBD_PEERS=.*printable UTF-8"):
        parse_handler_env({**V84_FENCE_PEER, "DRBD_PEERS": value}, PROGRAM)
