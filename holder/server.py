"""Serve a NodeHolder on a unix socket (mode 0600 in a 0700 directory), answering only
root and the service's own user (SO_PEERCRED), naming in every answer the node and key it
serves."""
from __future__ import annotations

import logging
import os
import socketserver
import threading
from pathlib import Path
from typing import Any, Callable

from stonewall.clock import Deadline
from stonewall.holder.handoffs import Direction
from stonewall.holder.node import NodeHolder, Refused
from stonewall.holder.protocol import (
    MAX_LINE, BadRequest, Request, encode, parse_request, peer_credentials, trusted_uid)
from stonewall.storage.bootid import FencedBoot


def dispatch(holder: NodeHolder, request: Request) -> Any:
    """Run one validated request against the holder."""
    deadline = Deadline.after(request.timeout, holder.clock)
    args = request.args
    holder.refresh(deadline.earlier(request.timeout / 2))
    operations: dict[str, Callable[[], Any]] = {
        "join": lambda: holder.join(deadline),
        "state": lambda: holder.state(deadline),
        "views": lambda: holder.views(args.get("luns"), deadline),
        "verify": lambda: holder.verify(args["node"], args.get("luns"), args["present"],
                                        deadline),
        "preempt": lambda: holder.preempt(args["victim"], args.get("luns"), deadline),
        "fence_record": lambda: holder.fence_record(args["victim"]),
        "claim": lambda: holder.claim(args["lun"], deadline, args.get("handoff_from")),
        "release": lambda: holder.release(args["lun"], deadline),
        "open_handoff": lambda: holder.open_handoff(
            args["guest"], args["peer"], _direction(args["direction"]), args["luns"],
            float(args["ttl"]), by_hook=args.get("by_hook", False)),
        "admit_incoming": lambda: holder.admit_incoming(args["guest"], args["stage"]),
        "close_handoff": lambda: holder.close_handoff(args["guest"]),
    }
    return operations[request.op]()


def _direction(text: str) -> Direction:
    try:
        return Direction(text)
    except ValueError:
        raise BadRequest(f"direction must be incoming or outgoing, not {text!r}") from None


class _Handler(socketserver.StreamRequestHandler):
    server: "HolderServer"

    def handle(self) -> None:
        peer = peer_credentials(self.request)
        if not trusted_uid(peer.uid, self.server.service_uid):
            # The socket's modes already keep others out; this holds even when an operator
            # loosened them. Nothing is read or done for such a client.
            self.server.log.warning("refused a client on %s: pid %d uid %d is neither root "
                                    "nor the service's user (uid %d)", self.server.server_address,
                                    peer.pid, peer.uid, self.server.service_uid)
            self.wfile.write(encode({"ok": False, "error": "Refused",
                                     "message": f"uid {peer.uid} may not use the holder"}))
            return
        holder = self.server.holder
        identity = {"node": holder.node.name, "key": f"0x{holder.node.key:016x}"}
        line = self.rfile.readline(MAX_LINE + 1)
        try:
            request = parse_request(line)
            response = {"ok": True, **identity, "result": dispatch(holder, request)}
        except (BadRequest, Refused, FencedBoot) as exc:
            response = {"ok": False, **identity, "error": type(exc).__name__,
                        "message": str(exc)}
        except Exception as exc:  # reported to the caller, who fails safe
            self.server.log.exception("holder: %s failed", line[:80])
            response = {"ok": False, **identity, "error": "InternalError",
                        "message": f"{type(exc).__name__}: {exc}"}
        try:
            answer = encode(response)
        except (TypeError, ValueError) as exc:  # a bug still gets an answer, never silence
            self.server.log.exception("holder: cannot encode the answer to %s", line[:80])
            answer = encode({"ok": False, **identity, "error": "InternalError",
                             "message": f"the answer cannot be encoded: {exc}"})
        self.wfile.write(answer)


class HolderServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, holder: NodeHolder,
                 log: logging.Logger | None = None) -> None:
        self.holder = holder
        self.log = log or logging.getLogger("stonewall.holder")
        self.service_uid = os.geteuid()  # the service's user: whoever runs the holder
        directory = Path(path).parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        if Path(path).is_socket():
            Path(path).unlink()  # left by a crashed holder; bind fails otherwise
        old_umask = os.umask(0o177)
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old_umask)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints to stderr; the journal gets it through our log.
        self.log.exception("holder: a request on %s failed", self.server_address)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="holder-socket", daemon=True)
        thread.start()
        return thread

    def server_close(self) -> None:
        super().server_close()
        Path(self.server_address).unlink(missing_ok=True)  # type: ignore[arg-type]
