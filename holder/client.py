"""Ask the node's holder over its socket. Entry points that act with the node's registration
use this; when the holder is not running they fail safe (HolderUnavailable)."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Mapping

from stonewall.clock import Deadline
from stonewall.holder.protocol import MAX_LINE


def socket_path(runtime_dir: str) -> str:
    """Where the node's holder listens: <runtime_dir>/holder.sock."""
    return str(Path(runtime_dir) / "holder.sock")


class HolderUnavailable(Exception):
    """The holder is not running, or did not answer before the deadline."""


class HolderError(Exception):
    """The holder answered with an error; `kind` is its type name (Refused, FencedBoot, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class HolderClient:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def call(self, op: str, deadline: Deadline, **args: Any) -> Any:
        """Send one request; the holder gets the time left minus a little for the reply."""
        timeout = deadline.remaining()
        if timeout <= 0.05:
            raise HolderUnavailable("no time left to ask the holder")
        request = {"op": op, "args": args, "timeout": round(timeout * 0.9, 3)}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(timeout)
                conn.connect(self.socket_path)
                conn.sendall(json.dumps(request).encode() + b"\n")
                reply = _read_line(conn)
        except FileNotFoundError:
            raise HolderUnavailable(f"the holder is not running (no socket "
                                    f"{self.socket_path})") from None
        except (ConnectionError, socket.timeout, OSError) as exc:
            raise HolderUnavailable(f"the holder did not answer: {exc}") from None
        try:
            response = json.loads(reply)
        except (ValueError, RecursionError):
            raise HolderUnavailable("the holder's answer was not JSON") from None
        if not isinstance(response, dict):
            raise HolderUnavailable("the holder's answer was not a JSON object")
        if not response.get("ok"):
            raise HolderError(str(response.get("error")), str(response.get("message")))
        return response.get("result")

    def join(self, deadline: Deadline) -> dict[str, Any]:
        return self.call("join", deadline)

    def state(self, deadline: Deadline) -> dict[str, Any]:
        return self.call("state", deadline)

    def views(self, lun_names: list[str] | None, deadline: Deadline) -> dict[str, Any]:
        return self.call("views", deadline, **({"luns": lun_names} if lun_names else {}))

    def verify(self, node: str, lun_names: list[str] | None, present: bool,
               deadline: Deadline) -> dict[str, Any]:
        return self.call("verify", deadline, node=node, present=present,
                         **({"luns": lun_names} if lun_names else {}))

    def preempt(self, victim_node: str, lun_names: list[str] | None,
                deadline: Deadline) -> dict[str, Any]:
        return self.call("preempt", deadline, victim=victim_node,
                         **({"luns": lun_names} if lun_names else {}))

    def reserve(self, lun: str, deadline: Deadline) -> dict[str, Any]:
        return self.call("reserve", deadline, lun=lun)

    def release(self, lun: str, deadline: Deadline) -> dict[str, Any]:
        return self.call("release", deadline, lun=lun)

    def write_block(self, lun: str, lba: int, block: bytes, deadline: Deadline) -> dict[str, Any]:
        """Lab guests only (config `lab_guest_io`): one 512-byte block through our nexus."""
        return self.call("write", deadline, lun=lun, lba=lba, data=block.hex())


def _read_line(conn: socket.socket) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > 64 * MAX_LINE:
            break
    return b"".join(chunks)


def storage_shortfall(answer: Mapping[str, Any]) -> list[str]:
    """One phrase per LUN the holder's preempt answer did not preempt or did not verify."""
    preempt = answer.get("preempt") or {}
    phrases = [f"{item.get('lun')}: {item.get('action')} {item.get('detail') or ''}".rstrip()
               for item in preempt.get("luns", []) if item.get("ok") is not True]
    for check in (answer.get("verification") or {}).get("checks", []):
        verdict = check.get("verdict")
        if verdict is not True:
            state = "key still present" if verdict is False else "no path answered"
            down = check.get("paths_down") or []
            phrases.append(f"{check.get('lun')}: {state}"
                           + (f" (down: {', '.join(down)})" if down else ""))
    return phrases
