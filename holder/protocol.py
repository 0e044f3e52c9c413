"""The holder's local protocol: one JSON object per line each way.

Request:  {"op": "preempt", "args": {...}, "timeout": 10.0}
Response: {"ok": true, "result": {...}}  or  {"ok": false, "error": "Refused", "message": "..."}

The operations and their arguments are listed in OPERATIONS; anything else is refused before
any I/O. A request line is at most MAX_LINE bytes."""
from __future__ import annotations

import dataclasses
import enum
import json
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
    "reserve": {"lun": (str, True)},
    "release": {"lun": (str, True)},
    "write": {"lun": (str, True), "lba": (int, True), "data": (str, True)},
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
        # bool is an int subclass in Python, but `true` is no block address.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (
                kind is list and not all(
                isinstance(item, str) for item in value)):
            raise BadRequest(f"{op}: argument {name!r} must be a {kind.__name__}"
                             + (" of strings" if kind is list else ""))
    return Request(op, args, float(timeout))


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and containers as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in ("ok", "proven", "fenced"):
            if hasattr(type(value), name) and isinstance(getattr(type(value), name), property):
                data[name] = getattr(value, name)
        return data
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(to_jsonable(message), separators=(",", ":")).encode() + b"\n"
