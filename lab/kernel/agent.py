"""The guest agent of the kernel tier: the one long-lived Python process in a TCG guest
(a Python start costs 2-3 s there), answering the host's requests on the virtio-serial port
named "agent" (lab/kernel/guest.py is the host's side). Started by the guest's /init.

On top of lab/pr_driver.py's PrDevice calls it runs commands (sg_persist, multipath, the
stonewall entry points), writes files (the node's config) and runs the guest writer: stamped
blocks (lab/stamps.py) written with O_DIRECT through the dm-multipath map, every write's
outcome recorded, as a guest's I/O through its node's kernel would be.
"""
from __future__ import annotations

import argparse
import errno
import io
import mmap
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stonewall.lab.kernel.pr_ioctl import pr_ioctl
from stonewall.lab.pr_driver import PrDriver
from stonewall.lab.stamps import BLOCK, Stamp, encode

READY_EVENT = '{"id": null, "ok": true, "result": "agent ready"}'
PORT_NAME = "agent"


@dataclass
class WriteError:
    sequence: int
    time: float
    errno: str
    message: str


@dataclass
class Writer:
    """Writes sequence n to LBA first_lba + n mod ring every `interval` seconds until
    stopped, and keeps what each write returned."""

    device: str
    node: str
    guest: str
    first_lba: int
    ring: int
    interval: float
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    errors: list[WriteError] = field(default_factory=list)
    error_count: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # O_DIRECT: each write reaches the LUN (no page cache to absorb it), so its outcome
        # is the SAN's answer; the buffer is page aligned, as O_DIRECT requires.
        fd = os.open(self.device, os.O_WRONLY | os.O_DIRECT | os.O_SYNC)
        buffer = mmap.mmap(-1, mmap.PAGESIZE)
        sequence = 0
        try:
            while not self.stop.is_set():
                sequence += 1
                stamp = Stamp(time.time(), self.node, self.guest, sequence)
                buffer.seek(0)
                buffer.write(encode(stamp))
                lba = self.first_lba + sequence % self.ring
                try:
                    os.pwritev(fd, [memoryview(buffer)[:BLOCK]], lba * BLOCK)
                    self.acknowledged.append({"sequence": sequence, "time": stamp.time,
                                              "lba": lba, "done": time.time()})
                except OSError as exc:
                    self.error_count += 1
                    if len(self.errors) < 20:
                        self.errors.append(WriteError(sequence, stamp.time,
                                                      errno.errorcode.get(exc.errno, "?"),
                                                      exc.strerror or ""))
                self.stop.wait(self.interval)
        finally:
            os.close(fd)

    def status(self) -> dict[str, Any]:
        return {"running": self.thread is not None and self.thread.is_alive(),
                "acknowledged": list(self.acknowledged), "errors": list(self.errors),
                "error_count": self.error_count}


class GuestAgent(PrDriver):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self.writers: dict[str, Writer] = {}
        self.spawned: dict[int, subprocess.Popen[bytes]] = {}
        self.ops.update({"clock": self.clock, "run": self.run, "spawn": self.spawn,
                         "poll": self.poll, "write_file": self.write_file,
                         "read_file": self.read_file, "writer_start": self.writer_start,
                         "writer_status": self.writer_status, "writer_stop": self.writer_stop,
                         "pr_ioctl": lambda request: pr_ioctl(**request["arguments"])})

    @staticmethod
    def clock(_request: dict[str, Any]) -> dict[str, float]:
        return {"wall": time.time(), "monotonic": time.monotonic()}

    @staticmethod
    def _environment(request: dict[str, Any]) -> dict[str, str]:
        return {**os.environ, **request.get("env", {})}

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            result = subprocess.run(request["argv"], capture_output=True, text=True,
                                    errors="replace", env=self._environment(request),
                                    timeout=float(request.get("timeout", 30)),
                                    stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            return {"rc": None, "stdout": str(exc.stdout or ""), "stderr": "timed out",
                    "seconds": time.monotonic() - started}
        return {"rc": result.returncode, "stdout": result.stdout, "stderr": result.stderr,
                "seconds": time.monotonic() - started}

    def spawn(self, request: dict[str, Any]) -> int:
        log = open(request["log"], "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(request["argv"], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=self._environment(request))
        log.close()
        self.spawned[process.pid] = process
        return process.pid

    def poll(self, request: dict[str, Any]) -> int | None:
        return self.spawned[int(request["pid"])].poll()

    @staticmethod
    def write_file(request: dict[str, Any]) -> None:
        path = Path(request["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(request["text"])

    @staticmethod
    def read_file(request: dict[str, Any]) -> str:
        return Path(request["path"]).read_text(errors="replace")

    def writer_start(self, request: dict[str, Any]) -> None:
        writer = Writer(request["device"], self.node, request["guest"],
                        int(request["first_lba"]), int(request["ring"]),
                        float(request.get("interval", 0.05)))
        self.writers[writer.guest] = writer
        writer.start()

    def writer_status(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.writers[request["guest"]].status()

    def writer_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        writer = self.writers[request["guest"]]
        writer.stop.set()
        if writer.thread is not None:
            writer.thread.join(timeout=10)
        return writer.status()


def find_port(name: str = PORT_NAME, sysfs: str = "/sys/class/virtio-ports") -> str:
    """/dev/vportNpM of the virtio-serial port called `name` (its number depends on the
    order of the guest's virtio devices)."""
    for entry in sorted(os.listdir(sysfs)):
        if (Path(sysfs) / entry / "name").read_text().strip() == name:
            return f"/dev/{entry}"
    raise FileNotFoundError(f"no virtio-serial port named {name!r} in {sysfs}")


class _PortWriter:
    """Line writes to the port fd (the port allows one open, shared with the reader)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, text: str) -> None:
        data = text.encode()
        while data:
            data = data[os.write(self.fd, data):]

    def flush(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", help="the port device (default: the port named 'agent')")
    args = parser.parse_args(argv)
    port = args.port if args.port and os.path.exists(args.port) else find_port()
    fd = os.open(port, os.O_RDWR)
    writer = _PortWriter(fd)
    writer.write(READY_EVENT + "\n")
    print(f"GUEST-AGENT-READY node={args.node} port={port}", file=sys.stderr, flush=True)
    reader = io.TextIOWrapper(io.FileIO(fd, "r", closefd=False), encoding="utf-8")
    GuestAgent(args.node).serve(reader, writer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
