"""Something that is not the holder, listening where the holder would: it answers every
request with one fixed line. Run as a process (`python fake_holder.py SOCKET REPLY [UID]`);
with UID it drops to that user after bind() and before listen(): SO_PEERCRED reports the
credentials in effect at listen() (unix(7)), so clients see that user, while the socket file
can still be placed where only root may write (as a user would with a loosened directory)."""
from __future__ import annotations

import os
import socket
import sys


def main(path: str, reply: str, uid: int | None) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)
        server.listen(8)
        print("READY", flush=True)
        while True:
            conn, _ = server.accept()
            with conn:
                conn.makefile("rb").readline()
                conn.sendall(reply.encode() + b"\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
