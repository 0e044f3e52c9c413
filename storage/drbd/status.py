"""`drbdsetup status --json` (DRBD 9) as typed values, and DRBD's state vocabularies.

Keys follow drbd-utils user/v9/drbdsetup.c (resource_status_json() and friends). Older utils
omit some keys (`suspended-fencing`, `open`, `paths`, `tls`), so every key we do not need to
identify an object is optional. A value of the wrong type or outside DRBD's vocabulary is an
error: a misread disk state can turn into a wrong fencing decision.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar


class DrbdStatusError(ValueError):
    """`drbdsetup status --json` output that does not have the expected shape."""


class Role(str, Enum):
    PRIMARY = "Primary"
    SECONDARY = "Secondary"
    UNKNOWN = "Unknown"


class DiskState(str, Enum):
    DISKLESS = "Diskless"
    ATTACHING = "Attaching"
    DETACHING = "Detaching"
    FAILED = "Failed"
    NEGOTIATING = "Negotiating"
    INCONSISTENT = "Inconsistent"
    OUTDATED = "Outdated"
    UNKNOWN = "DUnknown"  # only ever a peer's disk
    CONSISTENT = "Consistent"
    UP_TO_DATE = "UpToDate"


class ConnectionState(str, Enum):
    STANDALONE = "StandAlone"
    DISCONNECTING = "Disconnecting"
    UNCONNECTED = "Unconnected"
    TIMEOUT = "Timeout"
    BROKEN_PIPE = "BrokenPipe"
    NETWORK_FAILURE = "NetworkFailure"
    PROTOCOL_ERROR = "ProtocolError"
    CONNECTING = "Connecting"
    TEAR_DOWN = "TearDown"
    CONNECTED = "Connected"


class ReplicationState(str, Enum):
    OFF = "Off"
    ESTABLISHED = "Established"
    STARTING_SYNC_SOURCE = "StartingSyncS"
    STARTING_SYNC_TARGET = "StartingSyncT"
    WF_BITMAP_SOURCE = "WFBitMapS"
    WF_BITMAP_TARGET = "WFBitMapT"
    WF_SYNC_UUID = "WFSyncUUID"
    SYNC_SOURCE = "SyncSource"
    SYNC_TARGET = "SyncTarget"
    PAUSED_SYNC_SOURCE = "PausedSyncS"
    PAUSED_SYNC_TARGET = "PausedSyncT"
    VERIFY_SOURCE = "VerifyS"
    VERIFY_TARGET = "VerifyT"
    AHEAD = "Ahead"
    BEHIND = "Behind"


@dataclass(frozen=True)
class DeviceStatus:
    volume: int
    minor: int
    disk_state: DiskState | None = None
    client: bool | None = None  # intentionally diskless
    quorum: bool | None = None
    open: bool | None = None


@dataclass(frozen=True)
class PeerDeviceStatus:
    volume: int
    replication_state: ReplicationState | None = None
    peer_disk_state: DiskState | None = None
    peer_client: bool | None = None
    resync_suspended: str | None = None  # "no", or why: "user", "peer", "dependency", ...
    out_of_sync_kib: int | None = None


@dataclass(frozen=True)
class ConnectionStatus:
    peer_node_id: int
    name: str | None = None
    connection_state: ConnectionState | None = None
    peer_role: Role | None = None
    peer_devices: tuple[PeerDeviceStatus, ...] = ()


@dataclass(frozen=True)
class ResourceStatus:
    name: str
    node_id: int | None = None  # drbdsetup prints -1 when the resource has none
    role: Role | None = None
    suspended: bool | None = None
    suspended_fencing: bool | None = None  # I/O frozen by resource-and-stonith (newer utils)
    devices: tuple[DeviceStatus, ...] = ()
    connections: tuple[ConnectionStatus, ...] = ()

    def connection(self, peer_node_id: int) -> ConnectionStatus | None:
        """The connection to `peer_node_id`, or None."""
        return next((c for c in self.connections if c.peer_node_id == peer_node_id), None)


def parse_status_json(text: str) -> tuple[ResourceStatus, ...]:
    """Parse `drbdsetup status --json [resource]`; DrbdStatusError on malformed output."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DrbdStatusError(f"drbdsetup status --json: not JSON ({error})") from None
    if not isinstance(document, list):
        raise DrbdStatusError("drbdsetup status --json: expected a JSON array of resources")
    return tuple(_resource(item, f"resource[{index}]") for index, item in enumerate(document))


T = TypeVar("T")
E = TypeVar("E", bound=Enum)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DrbdStatusError(f"{where}: expected a JSON object")
    return value


def _value(obj: Mapping[str, Any], key: str, where: str, check: Callable[[Any], bool],
           expected: str) -> Any:
    value = obj[key]
    if not check(value):
        raise DrbdStatusError(f"{where}.{key}={value!r}: expected {expected}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number


def _required_int(obj: Mapping[str, Any], key: str, where: str) -> int:
    if key not in obj:
        raise DrbdStatusError(f"{where}: required key {key!r} is missing")
    return _value(obj, key, where, _is_int, "an integer")


def _optional_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    return _value(obj, key, where, _is_int, "an integer") if key in obj else None


def _optional_bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    return _value(obj, key, where, lambda v: isinstance(v, bool), "true or false") \
        if key in obj else None


def _optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    return _value(obj, key, where, lambda v: isinstance(v, str), "a string") \
        if key in obj else None


def _optional_state(obj: Mapping[str, Any], key: str, where: str, kind: type[E]) -> E | None:
    text = _optional_str(obj, key, where)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise DrbdStatusError(f"{where}.{key}={text!r}: expected one of "
                              f"{[member.value for member in kind]}") from None


def _list(obj: Mapping[str, Any], key: str, where: str,
          parse: Callable[[Any, str], T]) -> tuple[T, ...]:
    if key not in obj:
        return ()
    items = _value(obj, key, where, lambda v: isinstance(v, list), "a JSON array")
    return tuple(parse(item, f"{where}.{key}[{index}]") for index, item in enumerate(items))


def _resource(value: Any, where: str) -> ResourceStatus:
    obj = _object(value, where)
    name = _optional_str(obj, "name", where)
    if not name:
        raise DrbdStatusError(f"{where}: required key 'name' is missing or empty")
    where = f"resource {name!r}"
    node_id = _optional_int(obj, "node-id", where)
    return ResourceStatus(
        name=name,
        node_id=None if node_id == -1 else node_id,
        role=_optional_state(obj, "role", where, Role),
        suspended=_optional_bool(obj, "suspended", where),
        suspended_fencing=_optional_bool(obj, "suspended-fencing", where),
        devices=_list(obj, "devices", where, _device),
        connections=_list(obj, "connections", where, _connection),
    )


def _device(value: Any, where: str) -> DeviceStatus:
    obj = _object(value, where)
    return DeviceStatus(
        volume=_required_int(obj, "volume", where),
        minor=_required_int(obj, "minor", where),
        disk_state=_optional_state(obj, "disk-state", where, DiskState),
        client=_optional_bool(obj, "client", where),
        quorum=_optional_bool(obj, "quorum", where),
        open=_optional_bool(obj, "open", where),
    )


def _connection(value: Any, where: str) -> ConnectionStatus:
    obj = _object(value, where)
    return ConnectionStatus(
        peer_node_id=_required_int(obj, "peer-node-id", where),
        name=_optional_str(obj, "name", where),
        connection_state=_optional_state(obj, "connection-state", where, ConnectionState),
        peer_role=_optional_state(obj, "peer-role", where, Role),
        # drbdsetup spells this one key with an underscore (miroir#108 read the wrong level).
        peer_devices=_list(obj, "peer_devices", where, _peer_device),
    )


def _peer_device(value: Any, where: str) -> PeerDeviceStatus:
    obj = _object(value, where)
    return PeerDeviceStatus(
        volume=_required_int(obj, "volume", where),
        replication_state=_optional_state(obj, "replication-state", where, ReplicationState),
        peer_disk_state=_optional_state(obj, "peer-disk-state", where, DiskState),
        peer_client=_optional_bool(obj, "peer-client", where),
        resync_suspended=_optional_str(obj, "resync-suspended", where),
        out_of_sync_kib=_optional_int(obj, "out-of-sync", where),
    )


def summary(status: ResourceStatus, peer_names: Mapping[int, str]) -> str:
    """One line: this node's role and disks, then each peer's connection and disks
    (`peer_names`: DRBD node id -> node name, as the configuration maps them)."""
    disks = ", ".join(d.disk_state.value if d.disk_state else "?" for d in status.devices)
    parts = [f"{status.name}: {status.role.value if status.role else '?'}, disk {disks or '-'}"
             + (", I/O suspended" + (" (fencing)" if status.suspended_fencing else "")
                if status.suspended else "")]
    for connection in status.connections:
        name = peer_names.get(connection.peer_node_id) or connection.name or \
            f"node id {connection.peer_node_id}"
        state = connection.connection_state.value if connection.connection_state else "?"
        peer_disks = ", ".join(p.peer_disk_state.value if p.peer_disk_state else "?"
                               for p in connection.peer_devices)
        parts.append(f"{name} {state}" + (f", peer disk {peer_disks}" if peer_disks else ""))
    return "; ".join(parts)


def attention(status: ResourceStatus) -> list[str]:
    """What an operator should look at: suspended I/O, a peer not connected, a disk that is
    not UpToDate (an intentionally diskless client is fine)."""
    found = []
    if status.suspended:
        found.append(f"{status.name}: I/O suspended")
    for device in status.devices:
        if not device.client and device.disk_state is not DiskState.UP_TO_DATE:
            found.append(f"{status.name} volume {device.volume}: disk "
                         f"{device.disk_state.value if device.disk_state else 'unknown'}")
    for connection in status.connections:
        if connection.connection_state is not ConnectionState.CONNECTED:
            state = connection.connection_state.value if connection.connection_state else "?"
            found.append(f"{status.name}: peer node id {connection.peer_node_id} {state}")
    return found
