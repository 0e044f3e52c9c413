"""The environment DRBD hands to a handler (fence-peer, unfence-peer, split-brain, ...), parsed.

DRBD calls a handler in two hops (reference/drbd.md sec. 0-1): the kernel runs its usermode
helper (normally `drbdadm <handler> <resource>`) with a small environment; drbdadm adds the
resource name, node names and minor lists and runs the `handlers { }` string from drbd.conf
through /bin/sh. A program may instead *be* the usermode helper (module parameter
`usermode_helper`); then argv is `program <handler> <resource | minor-N>` and only the kernel's
variables are present.

Every variable is checked; anything missing or malformed raises `HandlerEnvError`, because a
handler that guesses which peer it fences can fence the wrong node. An empty value counts as
absent (drbd-utils issue #11 shows `UP_TO_DATE_NODES=''` in a real environment).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from stonewall.messages import quoted

# drbd-headers linux/drbd.h: DRBD_NODE_ID_MAX = DRBD_PEERS_MAX = 32, so node ids are 0..31.
NODE_ID_LIMIT = 32

# drbd_khelper() starts UP_TO_DATE_NODES at -1ULL and ANDs in one mask per attached volume; with
# no attached volume the all-ones value survives and says nothing about any node.
_MASK_WITHOUT_ATTACHED_VOLUME = (1 << 64) - 1

# The handler names drbdadm knows (user/v9/drbdadm_main.c command table; 8.4 lacks the last two).
HANDLER_NAMES: frozenset[str] = frozenset({
    "before-resync-target", "after-resync-target", "before-resync-source",
    "pri-on-incon-degr", "pri-lost-after-sb", "fence-peer", "local-io-error", "pri-lost",
    "initial-split-brain", "split-brain", "out-of-sync", "unfence-peer",
    "quorum-lost", "disconnected",
})

# Helpers the kernel runs with a connection and no device; for these DRBD 9's kernel always
# exports DRBD_PEER_NODE_ID (drbd_khelper(), drbd_nl.c).
_CONNECTION_HANDLERS = frozenset({"fence-peer", "unfence-peer", "disconnected"})

# Variables only DRBD 9 sets (kernel drbd_khelper() or drbdadm setenv_node_id_and_uname()).
_V9_VARIABLES = ("DRBD_PEER_NODE_ID", "DRBD_MY_NODE_ID", "DRBD_CSTATE", "DRBD_MY_ADDRESS",
                 "DRBD_MY_AF", "UP_TO_DATE_NODES")
_V9_PREFIXES = ("DRBD_NODE_ID_", "DRBD_MINOR_", "DRBD_BACKING_DEV_")
# Variables only DRBD 8.4's drbdadm sets (user/v84/drbdadm_main.c adm_khelper()).
_V84_VARIABLES = ("DRBD_PEER", "DRBD_PEERS")

_DEVICE_TARGET_PREFIX = "minor-"

# Every number DRBD passes fits in 20 bits (minors) or less (node ids, volumes); CPython refuses
# to convert more than 4300 digits with a plain ValueError, so a longer text must be refused
# before int() sees it.
_MAX_DIGITS = 10
_MAX_HOST_NAME = 253  # RFC 1035's longest domain name in text form; `on` names are host names


class HandlerEnvError(ValueError):
    """The handler's environment or arguments are missing or malformed."""


class InvalidResourceNameError(HandlerEnvError):
    """A name that cannot be a DRBD resource we act on."""


class DrbdVersion(str, Enum):
    """Which DRBD generation's handler contract applies."""

    V8_4 = "8.4"
    V9 = "9"


class AddressFamily(str, Enum):
    """DRBD's address family names (kernel env_print_address(), drbdadm's config parser)."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    SSOCKS = "ssocks"  # SuperSockets: carries an IPv4 address
    SDP = "sdp"  # only from 8.4's drbdadm, which copies the family from drbd.conf; IPv4 address


@dataclass(frozen=True)
class DrbdAddress:
    """An address DRBD names a node by (no port: the handler environment carries none)."""

    family: AddressFamily
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address

    def __str__(self) -> str:
        return f"{self.family.value}:{self.ip}"


@dataclass(frozen=True)
class HandlerEnv:
    """What DRBD told a handler about itself, its resource and the peer."""

    version: DrbdVersion
    resource: str
    handler: str | None = None  # from argv when the program is the usermode helper
    minors: tuple[int, ...] = ()  # local minors of the resource, or of the one device helper device
    volumes: tuple[int, ...] = ()  # volume numbers, in the order of `minors` when DRBD lists both
    peer_node_id: int | None = None  # DRBD 9 connection helpers
    peer_names: tuple[str, ...] = ()  # peer's host names from drbd.conf, where drbdadm exports them
    peer_address: DrbdAddress | None = None
    my_address: DrbdAddress | None = None  # DRBD 9 connection helpers
    my_node_id: int | None = None  # DRBD 9 (drbdadm)
    node_names: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Node ids DRBD believes UpToDate (fence-peer/unfence-peer on DRBD 9). For fence-peer the
    # kernel always sets our own bit, so our bit says nothing about our own disk.
    up_to_date_nodes: frozenset[int] | None = None
    connection_state: str | None = None  # DRBD_CSTATE, informational only
    config_file: str | None = None  # DRBD_CONF


def check_resource_name(name: str) -> str:
    """`name` if it can be a DRBD resource name we act on; InvalidResourceNameError otherwise.

    Only what matters to us is checked: no whitespace (drbd.conf, argv and events2 carry the
    name as one word) and no '/' (handlers put the name into lock file paths).
    """
    if not name:
        raise InvalidResourceNameError("resource name is empty")
    if any(ch.isspace() for ch in name) or "/" in name or not name.isprintable():
        raise InvalidResourceNameError(
            f"resource name {quoted(name)} is not usable: expected printable characters without "
            "whitespace or '/'")
    return name


def parse_handler_env(environ: Mapping[str, str], argv: Sequence[str]) -> HandlerEnv:
    """Parse what DRBD passes to a handler; HandlerEnvError on anything missing or malformed.

    `argv` is the program's argument vector with the program name first and the program's own
    options already removed: either just the program (run by drbdadm from drbd.conf) or
    program, handler name and resource / `minor-N` (run as DRBD's usermode helper).
    """
    env = {name: value for name, value in environ.items() if value != ""}
    handler, target = _parse_argv(argv)
    resource = _resource(env, target)
    version = _version(env, handler, target)
    minors, volumes = _minors_and_volumes(env, target)
    peer_node_id = _optional_node_id(env, "DRBD_PEER_NODE_ID")
    my_node_id = _optional_node_id(env, "DRBD_MY_NODE_ID")
    if peer_node_id is not None and peer_node_id == my_node_id:
        raise HandlerEnvError(
            f"DRBD_PEER_NODE_ID and DRBD_MY_NODE_ID are both {peer_node_id}: the peer cannot be "
            "this node")
    node_names = _node_names(env)
    return HandlerEnv(
        version=version,
        resource=resource,
        handler=handler,
        minors=minors,
        volumes=volumes,
        peer_node_id=peer_node_id,
        peer_names=_peer_names(env, node_names, peer_node_id),
        peer_address=_optional_address(env, "DRBD_PEER_"),
        my_address=_optional_address(env, "DRBD_MY_"),
        my_node_id=my_node_id,
        node_names=MappingProxyType(node_names),
        up_to_date_nodes=_up_to_date_nodes(env),
        connection_state=env.get("DRBD_CSTATE"),
        config_file=env.get("DRBD_CONF"),
    )


def _parse_argv(argv: Sequence[str]) -> tuple[str | None, str | None]:
    if len(argv) == 0:
        raise HandlerEnvError("argv is empty: expected at least the program name")
    if len(argv) == 1:
        return None, None
    if len(argv) == 3 and argv[1] in HANDLER_NAMES and argv[2]:
        return argv[1], argv[2]
    raise HandlerEnvError(
        f"unexpected arguments {quoted(' '.join(argv[1:]))}: expected none (run by drbdadm from "
        "drbd.conf) or '<handler> <resource|minor-N>' (run as DRBD's usermode helper), "
        f"handler one of {sorted(HANDLER_NAMES)}")


def _device_minor(target: str | None) -> int | None:
    """N from the 8.4 kernel's `minor-N` argument of device helpers, else None."""
    if target is None or not target.startswith(_DEVICE_TARGET_PREFIX):
        return None
    return _decimal(target[len(_DEVICE_TARGET_PREFIX):], "argv[2]", f"'{_DEVICE_TARGET_PREFIX}N'")


def _resource(env: Mapping[str, str], target: str | None) -> str:
    from_env = env.get("DRBD_RESOURCE")
    from_argv = None if target is None or _device_minor(target) is not None else target
    if from_env is None and from_argv is None:
        raise HandlerEnvError(
            "DRBD_RESOURCE is not set: expected the resource name (drbdadm exports it), or "
            "the resource as argv[2] when run as the usermode helper")
    if from_env is not None and from_argv is not None and from_env != from_argv:
        raise HandlerEnvError(
            f"DRBD_RESOURCE={quoted(from_env)} disagrees with the resource {quoted(from_argv)} in argv")
    name, source = (from_env, "DRBD_RESOURCE") if from_env is not None else (from_argv, "argv[2]")
    assert name is not None  # both None was rejected above
    try:
        return check_resource_name(name)
    except InvalidResourceNameError as error:
        raise InvalidResourceNameError(f"{source}: {error}") from None


def _version(env: Mapping[str, str], handler: str | None, target: str | None) -> DrbdVersion:
    v9 = [name for name in env if name in _V9_VARIABLES or name.startswith(_V9_PREFIXES)]
    v84 = [name for name in env if name in _V84_VARIABLES]
    if _device_minor(target) is not None:
        v84.append("argv 'minor-N'")
    if v9 and v84:
        raise HandlerEnvError(
            f"environment mixes DRBD 9 variables {_names(v9)} with DRBD 8.4 ones {_names(v84)}")
    if v9:
        return DrbdVersion.V9
    if v84:
        return DrbdVersion.V8_4
    # DRBD 9's drbdadm always exports DRBD_MY_NODE_ID next to DRBD_RESOURCE, and DRBD 9's
    # kernel always exports DRBD_PEER_NODE_ID to connection helpers: without either, it is 8.4.
    if "DRBD_RESOURCE" in env or handler in _CONNECTION_HANDLERS:
        return DrbdVersion.V8_4
    raise HandlerEnvError(
        "cannot tell DRBD 8.4 from 9: expected DRBD_RESOURCE, DRBD_PEER_NODE_ID, "
        "DRBD_MY_NODE_ID, DRBD_PEERS or a connection handler in argv")


def _decimal(text: str, name: str, expected: str = "a non-negative decimal integer") -> int:
    if not text.isascii() or not text.isdigit():
        raise HandlerEnvError(f"{name}={quoted(text)}: expected {expected}")
    if len(text) > _MAX_DIGITS:
        raise HandlerEnvError(f"{name}={quoted(text)}: expected {expected}, not a number of "
                              f"{len(text)} digits")
    return int(text)


def _names(names: list[str]) -> str:
    """Variable names for a message: the first few, each cut short."""
    shown = [quoted(name) for name in sorted(names)[:4]]
    more = f" and {len(names) - 4} more" if len(names) > 4 else ""
    return f"[{', '.join(shown)}]{more}"


def _host_names(name: str, value: str) -> tuple[str, ...]:
    """The space-separated host names of drbd.conf's `on` section in variable `name`."""
    hosts = tuple(value.split())
    if not hosts:
        raise HandlerEnvError(f"{name}={quoted(value)}: expected one or more host names")
    # A byte that is not UTF-8 arrives as a lone surrogate (os.environ's surrogateescape),
    # which is not printable: such a name can match no configured node, so it is no name.
    if not all(host.isprintable() and len(host) <= _MAX_HOST_NAME for host in hosts):
        raise HandlerEnvError(f"{name}={quoted(value)}: expected host names of printable "
                              f"UTF-8 characters, each at most {_MAX_HOST_NAME} long")
    return hosts


def _decimal_list(env: Mapping[str, str], name: str) -> tuple[int, ...] | None:
    text = env.get(name)
    if text is None:
        return None
    return tuple(_decimal(item, name, "space-separated non-negative decimal integers")
                 for item in text.split(" ") if item != "")


def _numbered(env: Mapping[str, str], prefix: str) -> dict[int, str]:
    """{N: value} for every variable `<prefix>N`; HandlerEnvError for a malformed N."""
    numbered: dict[int, str] = {}
    for name, value in env.items():
        if name.startswith(prefix):
            suffix = name[len(prefix):]
            numbered[_decimal(suffix, f"variable name {quoted(name)}",
                              f"a variable name '{prefix}<decimal number>'")] = value
    return numbered


def _minors_and_volumes(env: Mapping[str, str], target: str | None
                        ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    minors = _decimal_list(env, "DRBD_MINOR")
    volumes = _decimal_list(env, "DRBD_VOLUME")
    per_volume = {volume: _decimal(value, f"DRBD_MINOR_{volume}")
                  for volume, value in _numbered(env, "DRBD_MINOR_").items()}
    device_minor = _device_minor(target)

    if minors is not None and volumes is not None:
        if len(minors) != len(volumes):
            raise HandlerEnvError(
                f"DRBD_MINOR lists {len(minors)} minors but DRBD_VOLUME lists {len(volumes)} "
                "volumes: expected one minor per volume")
        paired = dict(zip(volumes, minors))
        for volume, minor in sorted(per_volume.items()):
            if volume in paired and paired[volume] != minor:
                raise HandlerEnvError(
                    f"DRBD_MINOR_{volume}={minor} disagrees with DRBD_MINOR/DRBD_VOLUME, which "
                    f"pair volume {volume} with minor {paired[volume]}")
    if device_minor is not None and minors is not None and device_minor not in minors:
        raise HandlerEnvError(
            f"argv names minor {device_minor} but DRBD_MINOR lists {list(minors)}")

    if minors is None:
        if per_volume:
            minors = tuple(per_volume[volume] for volume in sorted(per_volume))
        else:
            minors = () if device_minor is None else (device_minor,)
    if volumes is None:
        volumes = tuple(sorted(per_volume))
    return minors, volumes


def _node_id(text: str, name: str) -> int:
    node_id = _decimal(text, name, f"a DRBD node id 0..{NODE_ID_LIMIT - 1}")
    if node_id >= NODE_ID_LIMIT:
        raise HandlerEnvError(f"{name}={quoted(text)}: expected a DRBD node id 0..{NODE_ID_LIMIT - 1}")
    return node_id


def _optional_node_id(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    return None if text is None else _node_id(text, name)


def _node_names(env: Mapping[str, str]) -> dict[int, tuple[str, ...]]:
    names: dict[int, tuple[str, ...]] = {}
    for name, value in env.items():
        if name.startswith("DRBD_NODE_ID_"):
            node_id = _node_id(name[len("DRBD_NODE_ID_"):], f"variable name {quoted(name)}")
            names[node_id] = _host_names(name, value)
    return names


def _peer_names(env: Mapping[str, str], node_names: Mapping[int, tuple[str, ...]],
                peer_node_id: int | None) -> tuple[str, ...]:
    if peer_node_id is not None:
        return node_names.get(peer_node_id, ())
    # 8.4: DRBD_PEERS holds all `on` names of the peer; DRBD_PEER (deprecated) only the first.
    for name in ("DRBD_PEERS", "DRBD_PEER"):
        if name in env:
            return _host_names(name, env[name])
    return ()


def _optional_address(env: Mapping[str, str], prefix: str) -> DrbdAddress | None:
    address_name, family_name = f"{prefix}ADDRESS", f"{prefix}AF"
    address, family_text = env.get(address_name), env.get(family_name)
    if address is None and family_text is None:
        return None
    if address is None or family_text is None:
        missing = address_name if address is None else family_name
        present = family_name if address is None else address_name
        raise HandlerEnvError(f"{present} is set but {missing} is not: DRBD sets both or neither")
    try:
        family = AddressFamily(family_text)
    except ValueError:
        raise HandlerEnvError(
            f"{family_name}={quoted(family_text)}: expected one of "
            f"{[member.value for member in AddressFamily]}") from None
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = (
            ipaddress.IPv6Address(address) if family is AddressFamily.IPV6
            else ipaddress.IPv4Address(address))
    except ValueError:
        kind = "IPv6" if family is AddressFamily.IPV6 else "IPv4"
        raise HandlerEnvError(
            f"{address_name}={quoted(address)}: expected an {kind} address without port "
            f"({family_name}={family_text})") from None
    return DrbdAddress(family, ip)


def _up_to_date_nodes(env: Mapping[str, str]) -> frozenset[int] | None:
    text = env.get("UP_TO_DATE_NODES")
    if text is None:
        return None
    digits = text[2:]
    if (text[:2].lower() != "0x" or not 1 <= len(digits) <= 16
            or any(ch not in "0123456789abcdefABCDEF" for ch in digits)):
        raise HandlerEnvError(
            f"UP_TO_DATE_NODES={quoted(text)}: expected a hexadecimal node mask like 0x00000003")
    mask = int(digits, 16)
    if mask == _MASK_WITHOUT_ATTACHED_VOLUME:
        return None
    if mask >> NODE_ID_LIMIT:
        raise HandlerEnvError(
            f"UP_TO_DATE_NODES={quoted(text)}: bits above node id {NODE_ID_LIMIT - 1} are set")
    return frozenset(bit for bit in range(NODE_ID_LIMIT) if mask >> bit & 1)
