"""`drbdsetup events2` lines (DRBD 9) as typed events.

Line format (drbd-utils user/v9/drbdsetup_events2.c): an optional `--timestamps` prefix
`YYYY-MM-DDTHH:MM:SS.uuuuuu+HH:MM `, a verb (exists, create, change, destroy, call, response,
rename), an object (resource, device, connection, peer-device, path, helper) and `key:value`
fields separated by single spaces. `exists -` ends the initial state dump. A `change` line
carries only the fields that changed, so every state field is optional. Keys we do not know
(statistics, newer utils) are kept in `extra`; `--diff` output (`old->new`) is not supported.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import TypeVar, Union

from stonewall.storage.drbd.env import AddressFamily
from stonewall.storage.drbd.exitcodes import HelperStatus
from stonewall.storage.drbd.status import ConnectionState, DiskState, ReplicationState, Role


class EventParseError(ValueError):
    """An events2 line that does not have the expected shape."""


class EventVerb(str, Enum):
    EXISTS = "exists"  # part of the initial state dump
    CREATE = "create"
    CHANGE = "change"
    DESTROY = "destroy"
    CALL = "call"  # a helper is being called
    RESPONSE = "response"  # a helper returned
    RENAME = "rename"


class SuspendReason(str, Enum):
    """Why a resource's I/O is suspended (susp_str(), user/v9/drbdsetup.c)."""

    USER = "user"
    NO_DATA = "no-data"
    FENCING = "fencing"  # resource-and-stonith froze I/O while fence-peer runs
    QUORUM = "quorum"


@dataclass(frozen=True)
class PathEndpoint:
    """One end of a path as events2 prints it: `ipv4:1.2.3.4:7789`, `ipv6:[fd00::1]:7789`."""

    family: AddressFamily
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int


@dataclass(frozen=True)
class _Event:
    verb: EventVerb
    timestamp: datetime | None
    extra: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), kw_only=True)


@dataclass(frozen=True)
class InitialStateDone(_Event):
    """`exists -`: the initial state dump is complete (with `--now`, the last line)."""


@dataclass(frozen=True)
class ResourceEvent(_Event):
    name: str
    role: Role | None = None
    suspended: frozenset[SuspendReason] | None = None  # empty: not suspended
    may_promote: bool | None = None
    promotion_score: int | None = None
    new_name: str | None = None  # rename


@dataclass(frozen=True)
class DeviceEvent(_Event):
    name: str
    volume: int
    minor: int | None = None  # absent on destroy
    disk: DiskState | None = None
    backing_dev: str | None = None  # "none" when diskless
    client: bool | None = None
    open: bool | None = None  # None also when DRBD reports "unknown"
    quorum: bool | None = None


@dataclass(frozen=True)
class ConnectionEvent(_Event):
    name: str
    peer_node_id: int
    conn_name: str
    connection: ConnectionState | None = None
    role: Role | None = None  # the peer's role
    sync_state: str | None = None  # newer utils, StandAlone only: "SplitBrain", "Unrelated"


@dataclass(frozen=True)
class PeerDeviceEvent(_Event):
    name: str
    peer_node_id: int
    conn_name: str
    volume: int
    replication: ReplicationState | None = None
    peer_disk: DiskState | None = None
    peer_client: bool | None = None
    resync_suspended: str | None = None
    done: float | None = None  # resync progress, percent


@dataclass(frozen=True)
class PathEvent(_Event):
    name: str
    peer_node_id: int
    conn_name: str
    local: PathEndpoint
    peer: PathEndpoint
    established: bool | None = None


@dataclass(frozen=True)
class HelperEvent(_Event):
    """`call helper` / `response helper` around a handler run."""

    name: str
    helper: str
    peer_node_id: int | None = None
    conn_name: str | None = None
    volume: int | None = None
    minor: int | None = None
    status: HelperStatus | None = None  # response only


DrbdEvent = Union[InitialStateDone, ResourceEvent, DeviceEvent, ConnectionEvent,
                  PeerDeviceEvent, PathEvent, HelperEvent]

# format_timestamp() in drbdsetup_events2.c: "%04u-%02u-%02uT%02u:%02u:%02u.%06u%+03d:%02u ".
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}[+-]\d{2}:\d{2}")

E = TypeVar("E", bound=Enum)


def parse_event_line(line: str) -> DrbdEvent:
    """Parse one events2 line (with or without a trailing newline); EventParseError if bad."""
    words = line.rstrip("\n").split(" ")
    timestamp = None
    if words and _TIMESTAMP.fullmatch(words[0]):
        timestamp = datetime.fromisoformat(words[0])
        words = words[1:]
    if len(words) < 2 or "" in words:
        raise EventParseError(f"events2 line {line!r}: expected '[timestamp] verb object "
                              "key:value ...' separated by single spaces")
    verb = _enum(words[0], EventVerb, "verb", line)
    if words[1] == "-":
        if verb is not EventVerb.EXISTS or len(words) != 2:
            raise EventParseError(f"events2 line {line!r}: '-' only appears as 'exists -'")
        return InitialStateDone(verb, timestamp)
    parser = _OBJECT_PARSERS.get(words[1])
    if parser is None:
        raise EventParseError(f"events2 line {line!r}: unknown object {words[1]!r}, expected "
                              f"one of {sorted(_OBJECT_PARSERS)}")
    return parser(_Fields(_split_fields(words[2:], line), line), verb, timestamp)


def parse_event_lines(lines: Iterable[str]) -> Iterator[DrbdEvent]:
    """Parse events2 lines in order, e.g. the output of `drbdsetup events2 --now`."""
    for line in lines:
        yield parse_event_line(line)


def _split_fields(words: list[str], line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition(":")
        if not sep or not key:
            raise EventParseError(f"events2 line {line!r}: {word!r} is not key:value")
        if key in fields:
            raise EventParseError(f"events2 line {line!r}: key {key!r} appears twice")
        fields[key] = value
    return fields


def _enum(text: str, kind: type[E], what: str, line: str) -> E:
    try:
        return kind(text)
    except ValueError:
        raise EventParseError(f"events2 line {line!r}: {what} {text!r} is not one of "
                              f"{[member.value for member in kind]}") from None


class _Fields:
    """The key:value fields of one line; each key is taken once, the rest become `extra`."""

    def __init__(self, fields: dict[str, str], line: str) -> None:
        self._fields = fields
        self._line = line

    def rest(self) -> Mapping[str, str]:
        return MappingProxyType(dict(self._fields))

    def error(self, message: str) -> EventParseError:
        return EventParseError(f"events2 line {self._line!r}: {message}")

    def _error(self, key: str, value: str, expected: str) -> EventParseError:
        return self.error(f"{key}:{value} - expected {expected}")

    def text(self, key: str) -> str | None:
        return self._fields.pop(key, None)

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise self.error(f"required key {key!r} is missing")
        return value

    def number(self, key: str) -> int | None:
        value = self.text(key)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit():
            raise self._error(key, value, "a non-negative decimal integer")
        return int(value)

    def required_number(self, key: str) -> int:
        value = self.number(key)
        if value is None:
            raise self.error(f"required key {key!r} is missing")
        return value

    def signed_number(self, key: str) -> int | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return int(value, 10)
        except ValueError:
            raise self._error(key, value, "a decimal integer") from None

    def percent(self, key: str) -> float | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            raise self._error(key, value, "a number") from None

    def yes_no(self, key: str, unknown: str | None = None) -> bool | None:
        value = self.text(key)
        if value is None or value == unknown:
            return None
        if value not in ("yes", "no"):
            raise self._error(key, value, "yes or no")
        return value == "yes"

    def state(self, key: str, kind: type[E]) -> E | None:
        value = self.text(key)
        return None if value is None else _enum(value, kind, key, self._line)

    def suspended(self, key: str) -> frozenset[SuspendReason] | None:
        value = self.text(key)
        if value is None:
            return None
        if value == "no":
            return frozenset()
        return frozenset(_enum(reason, SuspendReason, key, self._line)
                         for reason in value.split(","))

    def endpoint(self, key: str) -> PathEndpoint:
        value = self.required_text(key)
        family_text, _, rest = value.partition(":")
        host, _, port = rest.rpartition(":")
        family = _enum(family_text, AddressFamily, f"{key} address family", self._line)
        try:
            if family is AddressFamily.IPV6:
                if not (host.startswith("[") and host.endswith("]")):
                    raise ValueError(host)
                ip: ipaddress.IPv4Address | ipaddress.IPv6Address = \
                    ipaddress.IPv6Address(host[1:-1])
            else:
                ip = ipaddress.IPv4Address(host)
            if not port.isascii() or not port.isdigit() or int(port) > 65535:
                raise ValueError(port)
        except ValueError:
            raise self._error(key, value, "family:address:port, e.g. ipv4:192.0.2.1:7789 or "
                                          "ipv6:[fd00::1]:7789") from None
        return PathEndpoint(family, ip, int(port))


def _resource(fields: _Fields, verb: EventVerb, timestamp: datetime | None) -> ResourceEvent:
    return ResourceEvent(
        verb, timestamp,
        name=fields.required_text("name"),
        role=fields.state("role", Role),
        suspended=fields.suspended("suspended"),
        may_promote=fields.yes_no("may_promote"),
        promotion_score=fields.signed_number("promotion_score"),
        new_name=fields.text("new_name"),
        extra=fields.rest(),
    )


def _device(fields: _Fields, verb: EventVerb, timestamp: datetime | None) -> DeviceEvent:
    return DeviceEvent(
        verb, timestamp,
        name=fields.required_text("name"),
        volume=fields.required_number("volume"),
        minor=fields.number("minor"),
        disk=fields.state("disk", DiskState),
        backing_dev=fields.text("backing_dev"),
        client=fields.yes_no("client"),
        open=fields.yes_no("open", unknown="unknown"),
        quorum=fields.yes_no("quorum"),
        extra=fields.rest(),
    )


def _connection(fields: _Fields, verb: EventVerb, timestamp: datetime | None) -> ConnectionEvent:
    return ConnectionEvent(
        verb, timestamp,
        name=fields.required_text("name"),
        peer_node_id=fields.required_number("peer-node-id"),
        conn_name=fields.required_text("conn-name"),
        connection=fields.state("connection", ConnectionState),
        role=fields.state("role", Role),
        sync_state=fields.text("sync-state"),
        extra=fields.rest(),
    )


def _peer_device(fields: _Fields, verb: EventVerb, timestamp: datetime | None) -> PeerDeviceEvent:
    return PeerDeviceEvent(
        verb, timestamp,
        name=fields.required_text("name"),
        peer_node_id=fields.required_number("peer-node-id"),
        conn_name=fields.required_text("conn-name"),
        volume=fields.required_number("volume"),
        replication=fields.state("replication", ReplicationState),
        peer_disk=fields.state("peer-disk", DiskState),
        peer_client=fields.yes_no("peer-client"),
        resync_suspended=fields.text("resync-suspended"),
        done=fields.percent("done"),
        extra=fields.rest(),
    )


def _path(fields: _Fields, verb: EventVerb, timestamp: datetime | None) -> PathEvent:
    return PathEvent(
        verb, timestamp,
        name=fields.required_text("name"),
        peer_node_id=fields.required_number("peer-node-id"),
        conn_name=fields.required_text("conn-name"),
        local=fields.endpoint("local"),
        peer=fields.endpoint("peer"),
        established=fields.yes_no("established"),
        extra=fields.rest(),
    )


def _helper(fields: _Fields, verb: EventVerb, timestamp: datetime | None) -> HelperEvent:
    if verb not in (EventVerb.CALL, EventVerb.RESPONSE):
        raise fields.error(f"a helper event's verb is 'call' or 'response', not {verb.value!r}")
    status = fields.number("status")
    if (status is None) == (verb is EventVerb.RESPONSE):
        raise fields.error("'status' belongs to helper responses, and only to them")
    try:
        decoded = None if status is None else HelperStatus.from_raw(status)
    except ValueError as error:
        raise fields.error(str(error)) from None
    return HelperEvent(
        verb, timestamp,
        name=fields.required_text("name"),
        helper=fields.required_text("helper"),
        peer_node_id=fields.number("peer-node-id"),
        conn_name=fields.text("conn-name"),
        volume=fields.number("volume"),
        minor=fields.number("minor"),
        status=decoded,
        extra=fields.rest(),
    )


_OBJECT_PARSERS = {
    "resource": _resource,
    "device": _device,
    "connection": _connection,
    "peer-device": _peer_device,
    "path": _path,
    "helper": _helper,
}
