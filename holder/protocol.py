"""The holder's local protocol: one JSON object per line each way.

Request:  {"op": "preempt", "args": {...}, "timeout": 10.0}
Response: {"ok": true, "node": "kvm-a", "key": "0x5357...0001", "result": {...}}
      or  {"ok": false, "node": ..., "key": ..., "error": "Refused", "message": "..."}

Every response names the node and the key the holder serves; the client refuses an answer
for another node or key (holder/client.py). A result is the `to_jsonable` form of the typed
value the operation returns (holder/api.py): facts only, never a computed verdict.

The operations and their arguments are listed in OPERATIONS; anything else is refused before
any I/O. A request line is at most MAX_LINE bytes."""
from __future__ import annotations

import json
import socket
import struct
from dataclasses import dataclass
from typing import Any

MAX_LINE = 64 * 1024
MAX_TIMEOUT = 120.0

# op -> {argument: (type, required)}
OPERATIONS: dict[str, dict[str, tuple[type, bool]]] = {
    "join": {},
    "state": {},
    "views": {"luns": (list, False)},
    "verify": {"node": (str, True), "luns": (list, False), "present": (bool, True)},
    "preempt": {"victim": (str, True), "luns": (list, False)},
    "fence_record": {"victim": (str, True)},
    "claim": {"lun": (str, True), "handoff_from": (str, False)},
    "release": {"lun": (str, True)},
    # live migration (holder/handoffs.py); direction: "incoming" or "outgoing"
    "open_handoff": {"guest": (str, True), "peer": (str, True), "direction": (str, True),
                     "luns": (list, True), "ttl": (float, True), "by_hook": (bool, False)},
    "admit_incoming": {"guest": (str, True), "stage": (str, True)},
    "close_handoff": {"guest": (str, True)},
}


class BadRequest(ValueError):
    """The request does not follow the protocol."""


@dataclass(frozen=True)
class Request:
    op: str
    args: dict[str, Any]
    timeout: float


def parse_request(line: bytes) -> Request:
    """Validate one request line."""
    if len(line) > MAX_LINE:
        raise BadRequest(f"request longer than {MAX_LINE} bytes")
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    except RecursionError:  # ~2000 nested brackets fit in a line and exhaust the decoder
        raise BadRequest("not JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("a request is a JSON object")
    op, args, timeout = data.get("op"), data.get("args", {}), data.get("timeout")
    if op not in OPERATIONS:
        raise BadRequest(f"unknown op {op!r}; expected one of {', '.join(OPERATIONS)}")
    if not isinstance(args, dict):
        raise BadRequest("args must be an object")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
            0 < timeout <= MAX_TIMEOUT):
        raise BadRequest(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
    spec = OPERATIONS[op]
    for name in args:
        if name not in spec:
            raise BadRequest(f"{op}: unknown argument {name!r}")
    for name, (kind, required) in spec.items():
        if name not in args:
            if required:
                raise BadRequest(f"{op}: missing argument {name!r}")
            continue
        value = args[name]
        # bool is an int subclass in Python, but `true` is no block address; JSON's 30 is
        # as good a number of seconds as 30.0.
        accepted = (int, float) if kind is float else kind
        if not isinstance(value, accepted) or (kind in (int, float) and isinstance(value, bool)) or (
                kind is list and not all(
                isinstance(item, str) for item in value)):
            raise BadRequest(f"{op}: argument {name!r} must be a {kind.__name__}"
                             + (" of strings" if kind is list else ""))
    return Request(op, args, float(timeout))


def to_jsonable(value: Any) -> Any:
    """A result as plain JSON values: each typed value by its own `to_jsonable`."""
    method = getattr(value, "to_jsonable", None)
    if callable(method):
        return method()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"{type(value).__name__} has no JSON form")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(to_jsonable(message), separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True)
class PeerCredentials:
    """Who is at the other end of a unix socket, as the kernel says (SO_PEERCRED, unix(7)):
    the credentials the peer had when it called connect() or listen()."""

    pid: int
    uid: int
    gid: int


def peer_credentials(conn: socket.socket) -> PeerCredentials:
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return PeerCredentials(*struct.unpack("3i", raw))


def trusted_uid(uid: int, service_uid: int) -> bool:
    """Root, or the user the holder service runs as."""
    return uid in (0, service_uid)
