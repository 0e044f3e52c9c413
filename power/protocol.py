"""The power vocabulary, and the wire format between `IpmiClient` and its worker process.

The parent writes one JSON `WorkerRequest` to the worker's stdin (the password travels only
there, never in argv or the environment). The worker writes JSON lines to stdout, one per
event: `answered` (the BMC sent its first packet), `logged-in`, then exactly one of
`result` or `failure`. Whatever the parent has read when the worker ends or is killed is
folded into one `WorkerReport`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class PowerState(str, Enum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"  # the BMC answered, but not with a usable power state: NOT off


class Operation(str, Enum):
    STATUS = "status"  # Get Chassis Status
    OFF = "off"  # Chassis Control 0x00, hard power down (never the soft/ACPI 0x05)
    ON = "on"  # Chassis Control 0x01


class WorkerFailure(str, Enum):
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    REJECTED = "rejected"  # non-zero completion code for the command itself
    ERROR = "error"


class ProtocolError(ValueError):
    """A request or event line that does not follow this format."""


EVENT_ANSWERED = "answered"
EVENT_LOGGED_IN = "logged-in"
EVENT_RESULT = "result"
EVENT_FAILURE = "failure"


@dataclass(frozen=True)
class WorkerRequest:
    operation: Operation
    address: str
    port: int
    username: str
    password: str = field(repr=False)
    privilege: int  # IPMI privilege level: 1 callback, 2 user, 3 operator, 4 administrator
    cipher_suite: int
    budget: float  # seconds the worker may live; it ends itself after that

    def to_json(self) -> bytes:
        return json.dumps({
            "operation": self.operation.value, "address": self.address, "port": self.port,
            "username": self.username, "password": self.password,
            "privilege": self.privilege, "cipher_suite": self.cipher_suite,
            "budget": self.budget,
        }).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "WorkerRequest":
        try:
            raw = json.loads(data)
            return cls(
                operation=Operation(raw["operation"]), address=_typed(raw, "address", str),
                port=_typed(raw, "port", int), username=_typed(raw, "username", str),
                password=_typed(raw, "password", str), privilege=_typed(raw, "privilege", int),
                cipher_suite=_typed(raw, "cipher_suite", int),
                budget=float(_typed(raw, "budget", (int, float))))
        except (ValueError, KeyError, TypeError) as error:
            raise ProtocolError(f"bad worker request: {error}") from None


def _typed(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} has the wrong type")
    return value


def event_line(event: str, **fields: Any) -> bytes:
    """One stdout line of the worker."""
    return json.dumps({"event": event, **fields}).encode() + b"\n"


@dataclass(frozen=True)
class WorkerReport:
    """Everything the worker said before it ended (or was killed)."""

    answered: bool = False
    logged_in: bool = False
    finished: bool = False  # a result or failure line arrived
    state: PowerState | None = None  # the result of a status operation
    failure: WorkerFailure | None = None
    detail: str = ""
    completion_code: int | None = None

    @classmethod
    def parse(cls, output: bytes) -> "WorkerReport":
        """Fold the worker's event lines; a torn last line (worker killed mid-write) is
        ignored, any other malformed line is a ProtocolError."""
        report: dict[str, Any] = {}
        # Whatever follows the last newline is a line torn by a kill: nothing to trust.
        for line in output.split(b"\n")[:-1]:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                kind = event["event"]
                if kind == EVENT_ANSWERED:
                    report["answered"] = True
                elif kind == EVENT_LOGGED_IN:
                    report.update(answered=True, logged_in=True)
                elif kind == EVENT_RESULT:
                    state = event.get("state")
                    report.update(finished=True,
                                  state=None if state is None else PowerState(state))
                elif kind == EVENT_FAILURE:
                    report.update(finished=True, failure=WorkerFailure(event["kind"]),
                                  detail=str(event.get("detail", "")),
                                  completion_code=event.get("code"))
                else:
                    raise ValueError(f"unknown event {kind!r}")
            except (ValueError, KeyError, TypeError) as error:
                raise ProtocolError(f"bad worker output line {line[:200]!r}: {error}") from None
        return cls(**report)
