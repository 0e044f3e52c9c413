"""Serve a NodeHolder on a unix socket (mode 0600 in a 0700 directory: root only)."""
from __future__ import annotations

import os
import socketserver
import threading
from pathlib import Path
from typing import Any, Callable

from stonewall.clock import Deadline
from stonewall.holder.node import NodeHolder, Refused
from stonewall.holder.protocol import MAX_LINE, BadRequest, Request, encode, parse_request
from stonewall.storage.bootid import FencedBoot


def dispatch(holder: NodeHolder, request: Request) -> Any:
    """Run one validated request against the holder."""
    deadline = Deadline.after(request.timeout, holder.clock)
    args = request.args
    holder.refresh(deadline.earlier(request.timeout / 2))
    operations: dict[str, Callable[[], Any]] = {
        "join": lambda: holder.join(deadline),
        "state": holder.state,
        "views": lambda: holder.views(args.get("luns"), deadline),
        "verify": lambda: holder.verify(args["node"], args.get("luns"), args["present"],
                                        deadline),
        "preempt": lambda: holder.preempt(args["victim"], args.get("luns"), deadline),
        "claim": lambda: holder.claim(args["lun"], deadline),
        "release": lambda: holder.release(args["lun"], deadline),
    }
    return operations[request.op]()


class _Handler(socketserver.StreamRequestHandler):
    server: "HolderServer"

    def handle(self) -> None:
        line = self.rfile.readline(MAX_LINE + 1)
        try:
            request = parse_request(line)
            response = {"ok": True, "result": dispatch(self.server.holder, request)}
        except (BadRequest, Refused, FencedBoot) as exc:
            response = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        except Exception as exc:  # reported to the caller, who fails safe
            response = {"ok": False, "error": "InternalError",
                        "message": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(encode(response))


class HolderServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, holder: NodeHolder) -> None:
        self.holder = holder
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

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="holder-socket", daemon=True)
        thread.start()
        return thread

    def server_close(self) -> None:
        super().server_close()
        Path(self.server_address).unlink(missing_ok=True)  # type: ignore[arg-type]
