"""The nexus stand-in: a long-lived process that plays the kernel's SCSI initiator for the
fakesg shim (tests/shim/fakesg.c), so the real sg3_utils binaries can talk to tgtd.

Why a process of its own: a kernel initiator keeps one I_T nexus per path between the
processes that use /dev/sdX, and tgtd ties a registration to the session that made it
(reference/scsi-pr.md). If every `sg_persist` run logged in afresh it would never be
registered. So this process holds one iSCSI session per fake device path and runs on it the
CDBs that the shim forwards from any number of `sg_persist` runs.

Wire protocol over a unix stream socket, frames of a 4-byte big-endian length + payload:
  b"O" + device id                         -> b"o" + u32 errno (0: the device exists)
  b"X" + u32 timeout_ms + u8 direction (0 none, 1 in, 2 out) + u32 data_in_length
       + u8 cdb_length + cdb + data_out    -> b"x" + u8 outcome + u8 status
       + u32 duration_ms + u8 sense_length + sense (fixed format) + data_in
Outcome: 0 the command completed (status is the SAM status), 1 transport error (fate
unknown), 2 no answer before the timeout.

Run as `python -m stonewall.lab.nexus --config FILE`; `NexusStandIn` starts and stops it.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from stonewall.clock import Deadline
from stonewall.lab.shim import ShimDevice, build_shim, shim_environment, write_device_map
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import CommandTimeout, ScsiError
from stonewall.storage.scsi.iscsi import IscsiSession
from stonewall.storage.scsi.sense import SenseFormatError, decode_sense, encode_fixed_sense

log = logging.getLogger("stonewall.lab.nexus")

OPEN, OPENED, EXECUTE, EXECUTED = b"O", b"o", b"X", b"x"
OUTCOME_DONE, OUTCOME_TRANSPORT_ERROR, OUTCOME_TIMEOUT = 0, 1, 2
DIRECTION_NONE, DIRECTION_IN, DIRECTION_OUT = 0, 1, 2
MAX_FRAME = 64 << 20
_EXECUTE_HEADER = struct.Struct(">IBIB")
_EXECUTED_HEADER = struct.Struct(">BBIB")


class ProtocolError(ValueError):
    """A frame that does not follow the wire protocol."""


# -- the wire ---------------------------------------------------------------------------
def read_frame(stream: socket.socket) -> bytes | None:
    """The next frame's payload, or None when the peer closed the connection."""
    header = _read_exactly(stream, 4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is larger than {MAX_FRAME}")
    payload = _read_exactly(stream, length)
    if payload is None:
        raise ProtocolError("connection closed inside a frame")
    return payload


def _read_exactly(stream: socket.socket, length: int) -> bytes | None:
    chunks, missing = [], length
    while missing:
        chunk = stream.recv(missing)
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def write_frame(stream: socket.socket, payload: bytes) -> None:
    stream.sendall(struct.pack(">I", len(payload)) + payload)


@dataclass(frozen=True)
class ExecuteRequest:
    """One SG_IO as the shim forwarded it."""

    timeout_ms: int
    direction: int
    data_in_length: int
    cdb: bytes
    data_out: bytes


def decode_execute(payload: bytes) -> ExecuteRequest:
    """Parse an EXECUTE frame (without its leading b"X")."""
    if len(payload) < _EXECUTE_HEADER.size:
        raise ProtocolError(f"EXECUTE frame of {len(payload)} bytes is too short")
    timeout_ms, direction, data_in_length, cdb_length = _EXECUTE_HEADER.unpack_from(payload)
    cdb_end = _EXECUTE_HEADER.size + cdb_length
    if direction not in (DIRECTION_NONE, DIRECTION_IN, DIRECTION_OUT) or len(payload) < cdb_end:
        raise ProtocolError("EXECUTE frame with a bad direction or a short CDB")
    return ExecuteRequest(timeout_ms, direction, data_in_length,
                          payload[_EXECUTE_HEADER.size:cdb_end], payload[cdb_end:])


def encode_executed(outcome: int, result: CommandResult | None, duration_ms: int) -> bytes:
    """The EXECUTED frame for one command's outcome."""
    status = result.status if result else 0
    sense = fixed_format(result.sense) if result else b""
    data = result.data if result else b""
    return (EXECUTED + _EXECUTED_HEADER.pack(outcome, status, duration_ms, len(sense))
            + sense + data)


def fixed_format(sense: bytes) -> bytes:
    """Sense data as fixed format (what the sg driver hands to sg3_utils from a SAS/iSCSI
    disk); descriptor-format sense is re-encoded, unreadable sense passes unchanged."""
    if not sense or sense[0] & 0x7F in (0x70, 0x71):
        return sense[:252]
    try:
        decoded = decode_sense(sense)
    except (SenseFormatError, ValueError):
        return sense[:252]
    return encode_fixed_sense(decoded.key, decoded.asc, decoded.ascq)


class NexusConnection:
    """One fake device held open, as a process holds /dev/sdX open: the lab's guests write
    through it (the shim's way in, without the shim). Each command waits for its answer."""

    def __init__(self, socket_path: str, device_id: str, timeout: float = 5.0) -> None:
        self.stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.stream.settimeout(timeout)
        try:
            self.stream.connect(socket_path)
            write_frame(self.stream, OPEN + device_id.encode())
            reply = read_frame(self.stream)
        except OSError:
            self.stream.close()
            raise
        if reply is None or reply[:1] != OPENED or struct.unpack(">I", reply[1:5])[0] != 0:
            self.stream.close()
            raise ProtocolError(f"device {device_id} did not open")

    def execute(self, cdb: bytes, timeout: float, *, data_out: bytes = b"",
                data_in_length: int = 0) -> tuple[int, CommandResult]:
        """(outcome, result): OUTCOME_DONE with the SAM status and sense, or a transport
        error / timeout outcome (the result is then empty)."""
        direction = DIRECTION_OUT if data_out else (DIRECTION_IN if data_in_length
                                                    else DIRECTION_NONE)
        header = _EXECUTE_HEADER.pack(int(timeout * 1000), direction, data_in_length,
                                      len(cdb))
        self.stream.settimeout(timeout + 1.0)
        write_frame(self.stream, EXECUTE + header + cdb + data_out)
        reply = read_frame(self.stream)
        if reply is None or reply[:1] != EXECUTED:
            raise ProtocolError("the nexus stand-in closed the connection")
        outcome, status, _duration, sense_length = _EXECUTED_HEADER.unpack_from(reply, 1)
        body = reply[1 + _EXECUTED_HEADER.size:]
        return outcome, CommandResult(status, body[sense_length:], body[:sense_length])

    def close(self) -> None:
        self.stream.close()


# -- what executes the CDBs ----------------------------------------------------------------
class NexusBackend(Protocol):
    """One I_T nexus as the stand-in sees it."""

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult: ...

    def close(self) -> None: ...


class IscsiBackend:
    """An IscsiSession that logs in when first needed and again after it broke, as the
    kernel's session recovery does (tgtd then sees a new I_T nexus; see the module doc)."""

    def __init__(self, session: IscsiSession) -> None:
        self.session = session
        self._login_lock = threading.Lock()

    def ensure_connected(self, deadline: Deadline) -> None:
        with self._login_lock:
            if not self.session.connected:
                self.session.connect(deadline)

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult:
        self.ensure_connected(deadline)
        return self.session.execute(cdb, deadline, data_out=data_out,
                                    data_in_length=data_in_length)

    def close(self) -> None:
        with self._login_lock:
            self.session.close()


# SPC-4: PERSISTENT RESERVE OUT is opcode 0x5F, the service action the low 5 bits of byte 1.
_PR_OUT, _PREEMPT, _PREEMPT_AND_ABORT = 0x5F, 0x04, 0x05


class PreemptAndAbortAsPreempt:
    """Sends PREEMPT where the client sent PREEMPT AND ABORT (same CDB and parameter list,
    other service action). tgtd refuses PREEMPT AND ABORT (ILLEGAL REQUEST 24/00) and
    fence_scsi has no fallback, so the benchmark runs fence_scsi unmodified through this
    rewrite; it is off unless the stand-in's configuration asks for it."""

    def __init__(self, backend: NexusBackend) -> None:
        self.backend = backend

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult:
        if len(cdb) >= 2 and cdb[0] == _PR_OUT and cdb[1] & 0x1F == _PREEMPT_AND_ABORT:
            cdb = cdb[:1] + bytes([(cdb[1] & 0xE0) | _PREEMPT]) + cdb[2:]
        return self.backend.execute(cdb, deadline, data_out=data_out,
                                    data_in_length=data_in_length)

    def close(self) -> None:
        self.backend.close()


# -- the server -----------------------------------------------------------------------------
class NexusServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves the shim's frames; one thread per open fake fd."""

    daemon_threads = True

    def __init__(self, socket_path: Path, backends: Mapping[str, NexusBackend]) -> None:
        self.backends = dict(backends)
        Path(socket_path).unlink(missing_ok=True)
        super().__init__(str(socket_path), _Connection)

    def close_backends(self) -> None:
        for backend in self.backends.values():
            backend.close()


class _Connection(socketserver.BaseRequestHandler):
    server: NexusServer

    def handle(self) -> None:
        try:
            backend = self._open()
            if backend is None:
                return
            while (payload := read_frame(self.request)) is not None:
                if payload[:1] != EXECUTE:
                    raise ProtocolError(f"expected EXECUTE, got {payload[:1]!r}")
                write_frame(self.request, run_request(backend, decode_execute(payload[1:])))
        except (ProtocolError, OSError) as exc:
            log.warning("nexus connection dropped: %s", exc)

    def _open(self) -> NexusBackend | None:
        payload = read_frame(self.request)
        if payload is None:  # a probe (NexusStandIn.start) or a client that gave up
            return None
        if payload[:1] != OPEN:
            raise ProtocolError("a connection must start with OPEN")
        backend = self.server.backends.get(payload[1:].decode(errors="replace"))
        write_frame(self.request, OPENED + struct.pack(">I", 0 if backend else errno.ENXIO))
        return backend


def run_request(backend: NexusBackend, request: ExecuteRequest) -> bytes:
    """Run one forwarded SG_IO and encode its outcome."""
    deadline = Deadline.after(request.timeout_ms / 1000)
    started = time.monotonic()
    outcome, result = OUTCOME_DONE, None
    try:
        result = backend.execute(
            request.cdb, deadline,
            data_out=request.data_out if request.direction == DIRECTION_OUT else None,
            data_in_length=request.data_in_length if request.direction == DIRECTION_IN else 0)
    except CommandTimeout as exc:
        log.warning("%s", exc)
        outcome = OUTCOME_TIMEOUT
    except ScsiError as exc:
        log.warning("%s", exc)
        outcome = OUTCOME_TRANSPORT_ERROR
    if result is not None and len(result.data) > request.data_in_length:
        result = CommandResult(result.status, result.data[:request.data_in_length], result.sense)
    return encode_executed(outcome, result, int((time.monotonic() - started) * 1000))


# -- the process and its configuration ------------------------------------------------------
@dataclass(frozen=True)
class FakeDevice:
    """A fake device path and the I_T nexus behind it (one initiator, one portal, one LUN)."""

    path: str
    portal: str
    target: str
    lun: int
    initiator: str
    kind: str = "sg"


class NexusError(RuntimeError):
    """The stand-in did not start."""


class NexusStandIn:
    """Runs the stand-in as a child process for `devices`, and gives the environment that
    makes sg3_utils see them (LD_PRELOAD of the shim + its device map)."""

    def __init__(self, workdir: Path, devices: Sequence[FakeDevice],
                 shim_cache: Path | None = None,
                 preempt_and_abort_as_preempt: bool = False,
                 process_group: int | None = None,
                 aliases: Sequence[tuple[str, int]] = ()) -> None:
        """`preempt_and_abort_as_preempt`: see PreemptAndAbortAsPreempt (off by default).
        `process_group`: run in that group (a lab machine's: its crash ends our sessions,
        as a crash ends a kernel's); else in a session of its own.
        `aliases`: (path, index) pairs, a further fake block device whose SG_IO goes to the
        nexus of `devices[index]`, as a dm-multipath map passes a PR command to one of its
        path devices."""
        paths = [device.path for device in devices] + [path for path, _index in aliases]
        if len(set(paths)) != len(paths):
            raise ValueError("two fake devices share a path")
        if any(not 0 <= index < len(devices) for _path, index in aliases):
            raise ValueError("an alias names no device")
        self.aliases = tuple(aliases)
        self.workdir = Path(workdir)
        self.devices = tuple(devices)
        self.shim_cache = shim_cache or self.workdir
        self.socket_path = self.workdir / "nexus.sock"
        self.preempt_and_abort_as_preempt = preempt_and_abort_as_preempt
        self.process_group = process_group
        self.process: subprocess.Popen[bytes] | None = None
        self._environment: dict[str, str] = {}

    def start(self, ready_deadline: Deadline) -> "NexusStandIn":
        """Start the process, log in every session, and wait until it accepts clients."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ids = self.device_ids
        config = {
            "socket": str(self.socket_path),
            "login_timeout": max(1.0, ready_deadline.remaining()),
            "preempt_and_abort_as_preempt": self.preempt_and_abort_as_preempt,
            "devices": {
                ident: {"portal": d.portal, "target": d.target, "lun": d.lun,
                        "initiator": d.initiator}
                for ident, d in zip(ids, self.devices)},
        }
        config_path = self.workdir / "nexus.json"
        config_path.write_text(json.dumps(config, indent=1))
        map_path = write_device_map(self.workdir / "fakesg-map.json", [
            ShimDevice(d.path, d.kind, str(self.socket_path), ident, minor)
            for minor, (ident, d) in enumerate(zip(ids, self.devices))] + [
            ShimDevice(path, "block", str(self.socket_path), ids[index], len(ids) + number)
            for number, (path, index) in enumerate(self.aliases)])
        self._environment = shim_environment(build_shim(self.shim_cache), map_path)
        self.socket_path.unlink(missing_ok=True)
        with open(self.workdir / "nexus.log", "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stonewall.lab.nexus", "--config", str(config_path)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=self.process_group is None,
                process_group=self.process_group)
        while not self._accepting():
            if self.process.poll() is not None or ready_deadline.expired():
                self.stop()
                raise NexusError(f"the nexus stand-in did not start; see "
                                 f"{self.workdir / 'nexus.log'}")
            time.sleep(0.02)
        return self

    @property
    def device_ids(self) -> list[str]:
        """The id of each device (same order as `devices`), as NexusConnection opens it."""
        return [f"dev{index}" for index in range(len(self.devices))]

    def _accepting(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
            return True

    @property
    def environment(self) -> dict[str, str]:
        """Variables to add to a process's environment so it sees the fake devices."""
        if not self._environment:
            raise NexusError("the nexus stand-in is not started")
        return dict(self._environment)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise NexusError("the nexus stand-in is not started")
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the process logs out its sessions), SIGKILL by PID after `timeout`."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> "NexusStandIn":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve(config: Mapping[str, Any]) -> None:
    """The process body (`config` as NexusStandIn.start writes it): log in every session,
    then bind and serve until SIGTERM, then log out."""
    backends = {
        ident: IscsiBackend(IscsiSession(str(spec["portal"]), str(spec["target"]),
                                         int(spec["lun"]), str(spec["initiator"])))
        for ident, spec in config["devices"].items()}
    login_deadline = Deadline.after(float(config["login_timeout"]))
    for ident, backend in backends.items():
        try:
            backend.ensure_connected(login_deadline)
        except ScsiError as exc:  # a path down at start is retried at its first command
            log.warning("%s: %s", ident, exc)
    served: Mapping[str, NexusBackend] = backends
    if config.get("preempt_and_abort_as_preempt"):
        served = {ident: PreemptAndAbortAsPreempt(b) for ident, b in backends.items()}
    # Bound only now: NexusStandIn.start takes a socket that accepts as "logins done".
    server = NexusServer(Path(str(config["socket"])), served)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        server.close_backends()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stonewall.lab.nexus",
                                     description="SG_IO nexus stand-in for the fakesg shim")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nexus: %(message)s")
    serve(json.loads(args.config.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
