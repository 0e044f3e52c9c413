"""The shape of cluster.yaml: every key, its type, range and default (docs/config.md).

Nodes and LUNs load as field dicts, because their final values need other sections (the
cluster name for derived keys, the file-wide default transport); the loader assembles them.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from stonewall.config.keys import MAX_NODE_ID, parse_key
from stonewall.config.model import (
    AgentDevice,
    ClusterConfig,
    DrbdResource,
    FenceLevel,
    FenceLevelKind,
    Guest,
    IpmiSettings,
    IscsiLocation,
    LunRole,
    Paths,
    Portal,
    Secret,
    SgBackend,
    StartPolicy,
    Transport,
    WatchdogSettings,
)
from stonewall.config.schema import (
    Choice,
    Converted,
    Flag,
    Integer,
    Invalid,
    ListOf,
    MapOf,
    Number,
    Record,
    Text,
    optional,
    required,
)
from stonewall.storage.scsi.types import ReservationType

ISCSI_DEFAULT_PORT = 3260
DRBD_MAX_NODE_ID = 31  # DRBD 9 allows 32 nodes per resource
DRBD_MAX_MINOR = 2**20 - 1  # DRBD minor numbers are 20 bits

CLUSTER_NAME = Text("a name of lowercase letters, digits and '-', starting with a letter or "
                    "digit, at most 63 characters", pattern=r"[a-z0-9][a-z0-9-]{0,62}")
NODE_NAME = Text("a host name: letters, digits, '.', '-' and '_', starting with a letter or digit",
                 pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
LUN_NAME = Text("a name of letters, digits, '.', '-' and '_'", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DRBD_NAME = Text("a DRBD resource name: letters, digits, '.', '-' and '_'",
                 pattern=r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
GUEST_NAME = Text("a libvirt domain name (no '/')", pattern=r"[^/\s][^/]{0,254}")
ABSOLUTE_PATH = Text("an absolute path", pattern=r"/.*")
ISCSI_NAME = Text("an iSCSI name starting with iqn., eui. or naa.", pattern=r"(iqn|eui|naa)\.\S+")
_PORTAL = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+))(?::(?P<port>[0-9]{1,5}))?")
SECONDS = Number(above=0, unit=" of seconds")
SECONDS_OR_ZERO = Number(at_least=0, unit=" of seconds")


def parse_address(text: str) -> str:
    """An IPv4 or IPv6 address as DRBD reports it (DRBD_PEER_ADDRESS has no port)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address; expected an IPv4 or IPv6 address "
                         "without port") from None


def parse_portal(text: str) -> Portal:
    """A portal from 'host', 'host:port', '[v6-address]' or '[v6-address]:port'."""
    match = _PORTAL.fullmatch(text)
    port = int(match["port"] or ISCSI_DEFAULT_PORT) if match else 0
    if not match or not 1 <= port <= 65535:
        raise ValueError(f"portal {text!r} is not valid; expected HOST or HOST:PORT with a port "
                         "1..65535 ([ADDRESS]:PORT for IPv6)")
    return Portal(match["v6"] or match["host"], port)


def _secret(password: str | None, password_file: str | None, password_env: str | None) -> Secret:
    given = [source for source in (password, password_file, password_env) if source is not None]
    if len(given) != 1:
        raise Invalid("needs exactly one of password_file, password_env or password "
                      f"({len(given)} given)")
    return Secret(file=password_file, env=password_env, inline=password)


def _ipmi(password: str | None, password_file: str | None, password_env: str | None,
          **settings: Any) -> IpmiSettings:
    return IpmiSettings(password=_secret(password, password_file, password_env), **settings)


def _fence_level(level: FenceLevelKind, timeout: float, devices: str | None = None,
                 also_after_storage: bool = False) -> FenceLevel:
    if level.uses_agents and devices is None:
        raise Invalid(f"the {level.value} level needs devices: the name of the nodes' "
                      "fence_devices group it runs")
    if not level.uses_agents and devices is not None:
        raise Invalid(f"devices: belongs to agent and fabric levels, not to {level.value}")
    if also_after_storage and level not in (FenceLevelKind.POWER, FenceLevelKind.AGENT):
        raise Invalid("also_after_storage: is for power and agent levels (a power-off "
                      f"after a verified storage fence), not for {level.value}")
    return FenceLevel(kind=level, timeout=timeout, devices=devices,
                      also_after_storage=also_after_storage)


def _agent_device(agent: str, options: Mapping[str, str], secret_file: str | None,
                  secret_env: str | None, secret_option: str) -> AgentDevice:
    if secret_file is not None and secret_env is not None:
        raise Invalid("give secret_file or secret_env, not both")
    if secret_option in options:
        # In options it would sit in the config file in clear, unredacted in the event log.
        raise Invalid(f"options.{secret_option} is the secret: give it through secret_file or "
                      "secret_env")
    secret = Secret(file=secret_file) if secret_file else Secret(env=secret_env) \
        if secret_env else None
    return AgentDevice(agent, tuple(sorted(options.items())), secret, secret_option)


def _watchdog_device(text: str) -> str:
    # "standin:/path" names the userspace stand-in's socket (stonewall.watchdog.open_device).
    if text.startswith("/") or text.startswith("standin:/"):
        return text
    raise ValueError(f"watchdog device {text!r} is not valid; expected an absolute device path "
                     "or standin:/absolute/socket/path")


IPMI = Record({
    "address": required(Text("a host name or IP address")),
    "port": optional(Integer(1, 65535)),
    "username": required(Text()),
    "password_file": optional(ABSOLUTE_PATH, None),
    "password_env": optional(Text("an environment variable name", pattern=r"[A-Za-z_][A-Za-z0-9_]*"), None),
    "password": optional(Text("a non-empty password", pattern=r"(?s).+", conceal=True), None),
    "privilege": optional(Choice({p: p for p in ("callback", "user", "operator", "administrator")})),
    "cipher_suite": optional(Integer(0, 17)),
    "timeout": optional(SECONDS),
    "poll_interval": optional(SECONDS),
}, build=_ipmi)

DEVICE_GROUP = Text("a device group name of letters, digits, '-' and '_'",
                    pattern=r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
AGENT_DEVICE = Record({
    "agent": required(Text("a fence agent: fence_NAME, or its absolute path",
                           pattern=r"fence_[A-Za-z0-9_]+|/\S+")),
    "options": optional(MapOf(Text("an option name", pattern=r"[a-z][a-z0-9_-]{0,63}"),
                              # one stdin line each: a line break would start another option
                              Text("the option's value, on one line", pattern=r"[^\r\n]*"),
                              "a mapping of the agent's option names to values"), {}),
    "secret_file": optional(ABSOLUTE_PATH, None),
    "secret_env": optional(Text("an environment variable name",
                                pattern=r"[A-Za-z_][A-Za-z0-9_]*"), None),
    "secret_option": optional(Text("an option name", pattern=r"[a-z][a-z0-9_-]{0,63}"),
                              "password"),
}, build=_agent_device)


class _DeviceGroups(MapOf):
    """Device group name -> devices, as the sorted pairs Node keeps."""

    def read(self, node: Any, path: str, log: Any) -> Any:
        return tuple(sorted(super().read(node, path, log).items()))


NODE = Record({
    "name": required(NODE_NAME),
    "id": required(Integer(1, MAX_NODE_ID)),
    "key": optional(Converted("a reservation key: 0x and up to 16 hex digits, not 0", parse_key), None),
    "initiator": optional(ISCSI_NAME),
    "addresses": optional(ListOf(Converted("an IP address", parse_address))),
    "power_delay": optional(SECONDS_OR_ZERO),
    "ipmi": optional(IPMI),
    "fence_devices": optional(_DeviceGroups(
        DEVICE_GROUP, ListOf(AGENT_DEVICE, min_items=1),
        "a mapping of device group name to a list of fence devices")),
})

ISCSI = Record({
    "target": required(ISCSI_NAME),
    "lun": required(Integer(0, 16383)),
    "portals": required(ListOf(Converted("HOST:PORT", parse_portal), min_items=1)),
}, build=IscsiLocation)

LUN = Record({
    "name": required(LUN_NAME),
    "role": required(Choice.of(LunRole)),
    "order": optional(Integer(0, 1_000_000)),
    "transport": optional(Choice.of(Transport), None),
    "reservation": optional(Converted("a reservation type", ReservationType.parse)),
    "wwid": optional(Text("a WWID", pattern=r"[A-Za-z0-9._:-]{1,128}")),
    "alias": optional(Text("a multipath alias", pattern=r"[A-Za-z0-9._-]{1,128}")),
    "iscsi": optional(ISCSI),
    "sg_backend": optional(Choice.of(SgBackend)),
})

DRBD = Record({
    "name": required(DRBD_NAME),
    # Empty: a DRBD pair on local disks, fenced by power and agent levels only.
    "luns": optional(ListOf(LUN_NAME), ()),
    "minors": optional(ListOf(Integer(0, DRBD_MAX_MINOR))),
    "peers": optional(MapOf(Integer(0, DRBD_MAX_NODE_ID), NODE_NAME,
                            f"a mapping of DRBD node-id (0..{DRBD_MAX_NODE_ID}) to node name")),
}, build=DrbdResource)

GUEST = Record({
    "name": required(GUEST_NAME),
    "luns": optional(ListOf(LUN_NAME), ()),
    "home": optional(NODE_NAME),
    "order": optional(Integer(0, 1_000_000)),
    "start_policy": optional(Choice.of(StartPolicy)),
}, build=Guest)

FENCE_LEVEL = Record({
    "level": required(Choice.of(FenceLevelKind)),
    "timeout": required(SECONDS),
    "devices": optional(DEVICE_GROUP, None),
    "also_after_storage": optional(Flag(), False),
}, build=_fence_level)

WATCHDOG = Record({
    "device": optional(Converted("a device path", _watchdog_device)),
    "allow_standin": optional(Flag()),
    "interval": optional(SECONDS),
    "io_deadline": optional(SECONDS),
    "check_deadline": optional(SECONDS),
    "timeout": optional(SECONDS),
    "grace": optional(SECONDS),
    "margin": optional(SECONDS_OR_ZERO),
}, build=WatchdogSettings)

PATHS = Record({
    "state_dir": optional(ABSOLUTE_PATH),
    "runtime_dir": optional(ABSOLUTE_PATH),
    "event_log": optional(ABSOLUTE_PATH),
    "sysfs": optional(ABSOLUTE_PATH),
    "dev": optional(ABSOLUTE_PATH),
    "boot_id": optional(ABSOLUTE_PATH),
}, build=Paths)

DOCUMENT = Record({
    "cluster": required(CLUSTER_NAME),
    "libvirt_uri": optional(Text("a libvirt URI"), ClusterConfig.libvirt_uri),
    "paths": optional(PATHS, Paths()),
    "transport": optional(Choice.of(Transport), Transport.ISCSI),
    "nodes": required(ListOf(NODE, min_items=1)),
    "luns": required(ListOf(LUN)),  # [] for a cluster without shared LUNs (docs/fencing.md)
    "drbd": optional(ListOf(DRBD), ()),
    "guests": optional(ListOf(GUEST), ()),
    "fencing": required(ListOf(FENCE_LEVEL, min_items=1)),
    "watchdog": optional(WATCHDOG, WatchdogSettings()),
})

Sections = Mapping[str, Any]  # DOCUMENT's fields after loading: value or INVALID per section
