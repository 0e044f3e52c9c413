"""The test's side of lab/pr_driver.py: send a request, wait for its answer within a
deadline, and raise a failed call as the same stonewall.storage.scsi.errors type (or
RemoteFailure for anything else)."""
from __future__ import annotations

import json
import queue
import threading
from typing import IO, Any, Callable

from stonewall.storage.scsi import errors as scsi_errors


class RemoteFailure(Exception):
    """A call that failed in the driver with an exception that is not a SCSI error."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


class DriverGone(RuntimeError):
    """The driver's stream ended, or an answer did not come within its deadline."""


def remote_error(error: str, message: str) -> Exception:
    kind = getattr(scsi_errors, error, None)
    if isinstance(kind, type) and issubclass(kind, scsi_errors.ScsiError):
        return kind(message)
    return RemoteFailure(error, message)


class DriverClient:
    """Requests over a line stream; answers are matched by id (they may come out of order)."""

    def __init__(self, reader: IO[str], writer: IO[str] | Callable[[str], None]) -> None:
        self._write = writer if callable(writer) else self._stream_writer(writer)
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, queue.Queue[dict[str, Any] | None]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()  # lines with no id
        self._thread = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self._thread.start()

    @staticmethod
    def _stream_writer(stream: IO[str]) -> Callable[[str], None]:
        def write(text: str) -> None:
            stream.write(text)
            stream.flush()
        return write

    def _read(self, reader: IO[str]) -> None:
        for line in reader:
            if not line.startswith("{"):
                continue  # a stray console line
            answer = json.loads(line)
            if answer.get("id") is None:
                self.events.put(answer)
                continue
            with self._lock:
                waiting = self._waiting.pop(answer.get("id"), None)
            if waiting is not None:
                waiting.put(answer)
        with self._lock:
            for waiting in self._waiting.values():
                waiting.put(None)
            self._waiting.clear()

    def request(self, op: str, wait: float = 30.0, **fields: Any) -> dict[str, Any]:
        """The whole answer of one request (ok, result or error, seconds)."""
        box: queue.Queue[dict[str, Any] | None] = queue.Queue(1)
        with self._lock:
            self._next += 1
            ident = self._next
            self._waiting[ident] = box
        self._write(json.dumps({"id": ident, "op": op, **fields}) + "\n")
        try:
            answer = box.get(timeout=wait)
        except queue.Empty:
            with self._lock:
                self._waiting.pop(ident, None)
            raise DriverGone(f"no answer to {op} within {wait:g}s") from None
        if answer is None:
            raise DriverGone(f"the driver went away during {op}")
        return answer

    def call(self, op: str, wait: float = 30.0, **fields: Any) -> Any:
        """The result of one request; a failure is raised as its type."""
        answer = self.request(op, wait, **fields)
        if not answer["ok"]:
            raise remote_error(answer["error"], answer["message"])
        return answer["result"]

    def pr(self, backend: str, device: str, call: str, *args: Any, timeout: float = 10.0,
           **kwargs: Any) -> Any:
        """One PrDevice call in the driver."""
        return self.call("pr", timeout + 5.0, backend=backend, device=device, call=call,
                         args=list(args), kwargs=kwargs, timeout=timeout)
