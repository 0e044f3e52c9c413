"""Run by test_multipath_multipathd.py under `unshare --net`: a private network namespace,
so the abstract socket below is invisible to the rest of the machine (and to any real
multipathd).

It listens on multipathd's abstract control socket and answers in libmpathcmd's framing
(a native size_t length, then the NUL-terminated text, both ways), then lets stonewall's
MultipathdRunner run the real `multipathd` client binary against it and prints the outcome
and the commands the client sent, as JSON.

Usage: mpath_daemon_standin.py MODE DEADLINE_SECONDS
MODE: maps-json  reply to every command with the reference's verbatim `show maps json`
      fail       reply 'fail' (what multipathd says to a command it cannot do)
      silent     read the command and never reply
      discover   answer `show maps json` with the reference JSON and `show paths raw
                 format …` with the lines multipathd would print for that host
"""
from __future__ import annotations

import dataclasses
import json
import socket
import struct
import sys
import threading
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
SIZE = struct.Struct("N")  # size_t in native byte order, as libmpathcmd writes it
# `%d|%i|%t|%T|%o|%m|%w` for the host of the reference JSON: its failed iSCSI path, and a
# local disk that is in no map.
PATHS_REPLY = ("sdb|7:0:0:1|failed|faulty|running|mpathp|360050768029b8168e000000000006247\n"
               "sda|0:0:0:0|undef|undef|unknown|[orphan]|1ATA_QEMU_HARDDISK_QM00001\n")


def serve(listener: socket.socket, mode: str, received: list[str]) -> None:
    maps_json = (FIXTURES / "multipathd-show-maps-json-v0.1.json").read_text()
    while True:
        connection, _ = listener.accept()
        with connection:
            command = _receive(connection)
            received.append(command)
            if mode == "silent":
                connection.recv(1)  # returns when the client gives up and closes
                continue
            if mode == "fail":
                reply = "fail\n"
            elif mode == "discover" and command.startswith("show paths"):
                reply = PATHS_REPLY
            else:
                reply = maps_json
            data = reply.encode() + b"\0"
            connection.sendall(SIZE.pack(len(data)) + data)


def _receive(connection: socket.socket) -> str:
    (length,) = SIZE.unpack(_exactly(connection, SIZE.size))
    return _exactly(connection, length).rstrip(b"\0").decode()


def _exactly(connection: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client closed early")
        data += chunk
    return data


def main() -> int:
    mode, seconds = sys.argv[1], float(sys.argv[2])
    from stonewall.clock import Deadline
    from stonewall.storage.multipath.errors import MultipathError
    from stonewall.storage.multipath.multipathd import MultipathdRunner, discover_multipathd

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0/org/kernel/linux/storage/multipathd")
    listener.listen(4)
    received: list[str] = []
    threading.Thread(target=serve, args=(listener, mode, received), daemon=True).start()
    runner = MultipathdRunner()
    outcome: dict[str, object] = {}
    try:
        if mode == "discover":
            outcome["discovery"] = dataclasses.asdict(
                discover_multipathd(runner, Deadline.after(seconds)))
        else:
            outcome["reply"] = runner.run(["show", "maps", "json"], Deadline.after(seconds))
    except MultipathError as error:
        outcome["error"] = type(error).__name__
        outcome["message"] = str(error)
    outcome["received"] = received
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main())
