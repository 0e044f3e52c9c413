"""A long-lived process that runs PrDevice calls for a test, one JSON line per request.

Why a process: in-process SG_IO reaches the fakesg shim only in a process started with
LD_PRELOAD, and inside a TCG guest every Python start costs 2-3 s. So the test starts this
once (through the shim, or in the guest as part of the guest agent) and sends it calls.

Request  {"id": N, "op": "pr", "backend": "sgio"|"sg_persist", "device": PATH,
          "call": METHOD, "args": [...], "kwargs": {...}, "timeout": SECONDS}
Answer   {"id": N, "ok": true, "result": ..., "seconds": S}
         {"id": N, "ok": false, "error": TYPE, "message": TEXT, "seconds": S}
Results are the PrDevice values as JSON (keys as ints, reservation type as int). Other ops
are added by the process that embeds the driver (lab/kernel/agent.py).
"""
from __future__ import annotations

import dataclasses
import enum
import json
import sys
import threading
import time
from typing import IO, Any, Callable

from stonewall.clock import Deadline
from stonewall.storage.scsi.device import PrDevice
from stonewall.storage.scsi.sg import SgPersistDevice, SgRunner
from stonewall.storage.scsi.sgio import SgioDevice
from stonewall.storage.scsi.types import ReservationType

Op = Callable[[dict[str, Any]], Any]
PR_CALLS = frozenset({"read_keys", "read_reservation", "report_capabilities",
                      "read_full_status", "register", "reserve", "release", "clear",
                      "preempt"})
_TYPED_ARGUMENTS = {"reserve": 1, "release": 1, "preempt": 2}  # index of the rtype argument


class BadRequest(ValueError):
    """A request the driver cannot run."""


def to_json(value: Any) -> Any:
    """PrDevice results (dataclasses, enums, tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (tuple, list, frozenset, set)):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


class PrDriver:
    """The devices it has opened (one per backend and path, kept: an sgio device keeps its
    fd, as a holder would) and the ops it answers."""

    def __init__(self) -> None:
        self.runner = SgRunner()
        self.devices: dict[tuple[str, str], PrDevice] = {}
        self.ops: dict[str, Op] = {"pr": self.pr, "ping": lambda _request: "pong"}

    def device(self, backend: str, path: str) -> PrDevice:
        key = (backend, path)
        if key not in self.devices:
            if backend == "sgio":
                self.devices[key] = SgioDevice(path)
            elif backend == "sg_persist":
                self.devices[key] = SgPersistDevice(path, self.runner)
            else:
                raise BadRequest(f"unknown backend {backend!r}")
        return self.devices[key]

    def pr(self, request: dict[str, Any]) -> Any:
        call = request["call"]
        if call not in PR_CALLS:
            raise BadRequest(f"unknown PrDevice call {call!r}")
        args = list(request.get("args", []))
        if call in _TYPED_ARGUMENTS:
            args[_TYPED_ARGUMENTS[call]] = ReservationType(args[_TYPED_ARGUMENTS[call]])
        device = self.device(request["backend"], request["device"])
        deadline = Deadline.after(float(request.get("timeout", 10.0)))
        return getattr(device, call)(*args, deadline, **request.get("kwargs", {}))

    def answer(self, line: str) -> dict[str, Any]:
        started = time.perf_counter()
        request: dict[str, Any] = {}
        try:
            request = json.loads(line)
            op = self.ops.get(request.get("op", ""))
            if op is None:
                raise BadRequest(f"unknown op {request.get('op')!r}")
            result = op(request)
            answer = {"ok": True, "result": to_json(result)}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the test, typed
            answer = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        return {"id": request.get("id"), **answer,
                "seconds": round(time.perf_counter() - started, 6)}

    def serve(self, reader: IO[str], writer: IO[str]) -> None:
        """Answer requests until `reader` ends; requests may overlap (one thread each), so
        a slow call (a watchdog wait) never holds up another."""
        lock = threading.Lock()

        def run(line: str) -> None:
            answer = self.answer(line)
            try:
                text = json.dumps(answer)
            except (TypeError, ValueError) as exc:  # a result JSON cannot carry
                text = json.dumps({"id": answer.get("id"), "ok": False,
                                   "error": type(exc).__name__, "message": str(exc)})
            with lock:
                writer.write(text + "\n")
                writer.flush()

        for line in reader:
            if line.strip():
                threading.Thread(target=run, args=(line,), daemon=True).start()


def main() -> int:
    PrDriver().serve(sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
