"""The supervisor side of the userspace watchdog stand-in (stonewall.watchdog.standin has the
protocol and the node side): a separate process that plays the hardware timer, so it keeps
its promise when the node process hangs or dies.

    python -m stonewall.lab.watchdog_supervisor --socket PATH --kill-pgid PGID --record FILE

When the timer runs out it "resets the node": SIGKILL to the process group, a JSON line
{"event": "fired", ...} in the record file, exit. Every other state change (armed, disarmed,
unclean-close) is recorded too. SIGTERM stops it without firing: that is the operator (or a
test fixture) switching the lab off.
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

from stonewall.clock import Deadline
from stonewall.watchdog.errors import WatchdogUnavailable
from stonewall.watchdog.standin import MAX_LINE, MAX_TIMEOUT, SCHEME

_READY_LINE = b"READY\n"
_REFUSED = "refused"  # selector tag of a connection that found the device open

# --- supervisor side -----------------------------------------------------------------------

class _Timer:
    """The stand-in's device state: what the kernel keeps per watchdog."""

    def __init__(self) -> None:
        self.timeout = 0.0
        self.expires_at: float | None = None  # monotonic; None = not armed

    def start(self, timeout: float) -> None:
        self.timeout = timeout
        self.keepalive()

    def keepalive(self) -> None:
        self.expires_at = time.monotonic() + self.timeout

    def left(self) -> float:
        return 0.0 if self.expires_at is None else max(0.0, self.expires_at - time.monotonic())


class _Supervisor:
    def __init__(self, socket_path: str, kill_pgid: int, record: IO[str]) -> None:
        self.socket_path = socket_path
        self.kill_pgid = kill_pgid
        self.record = record
        self.timer = _Timer()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.listener.bind(socket_path)
        self.listener.listen(4)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.client: socket.socket | None = None
        self.buffer = b""
        self.allow_release = False

    def run(self) -> None:
        """Serve until the timer fires (then kill and return)."""
        while True:
            wait = None if self.timer.expires_at is None else self.timer.left()
            for key, _ in self.selector.select(wait):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.data == _REFUSED:
                    self._refuse(key.fileobj)  # type: ignore[arg-type]
                else:
                    self._serve_client()
            if self.timer.expires_at is not None and time.monotonic() >= self.timer.expires_at:
                self._fire()
                return

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        if self.client is not None:
            # Answered at its first request (then closed), so the opener reads "busy"
            # instead of racing our close with its write.
            self.selector.register(conn, selectors.EVENT_READ, _REFUSED)
            return
        conn.setblocking(False)
        self.client, self.buffer, self.allow_release = conn, b"", False
        self.selector.register(conn, selectors.EVENT_READ)

    def _refuse(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        try:
            if conn.recv(MAX_LINE):
                conn.sendall(b"ERR busy: the device is single-open\n")
        except OSError:
            pass  # the opener is gone already
        conn.close()

    def _serve_client(self) -> None:
        assert self.client is not None
        try:
            chunk = self.client.recv(4096)
        except ConnectionError:
            chunk = b""
        if not chunk:
            self._release()
            return
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.client.sendall(self._answer(line.decode("ascii", "replace").strip()) + b"\n")
        if len(self.buffer) > MAX_LINE:
            self._release()

    def _answer(self, line: str) -> bytes:
        command, _, argument = line.partition(" ")
        # The kernel clears "allow release" on every write and sets it only for a 'V'.
        self.allow_release = command == "V"
        if command == "ARM":
            try:
                timeout = float(argument)
            except ValueError:
                return b"ERR badrequest: ARM needs a number of seconds"
            if not 0 < timeout <= MAX_TIMEOUT:
                return f"ERR range: timeout {timeout:g} not in (0, {MAX_TIMEOUT:g}]".encode()
            self.timer.start(timeout)
            self._note("armed", timeout=timeout)
            return f"OK {timeout!r}".encode()
        if self.timer.expires_at is None:
            return b"ERR notarmed: send ARM first"
        if command == "PING":
            self.timer.keepalive()
            return b"OK"
        if command == "GETTIMEOUT":
            return f"OK {self.timer.timeout!r}".encode()
        if command == "GETTIMELEFT":
            return f"OK {self.timer.left()!r}".encode()
        if command == "V":
            return b"OK"
        return f"ERR badrequest: unknown command {command!r}".encode()

    def _release(self) -> None:
        assert self.client is not None
        if self.timer.expires_at is not None and self.allow_release:
            self.timer.expires_at = None
            self._note("disarmed")
        elif self.timer.expires_at is not None:
            # watchdog_dev.c: "watchdog did not stop!", one last ping, and it keeps running.
            self.timer.keepalive()
            self._note("unclean-close", timeout=self.timer.timeout)
        # Closed only now: the node's close() returns when it sees this, release recorded.
        self.selector.unregister(self.client)
        self.client.close()
        self.client = None

    def _fire(self) -> None:
        late_by = time.monotonic() - (self.timer.expires_at or 0.0)
        try:
            os.killpg(self.kill_pgid, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            killed = False  # the node's processes were already gone
        self._note("fired", pgid=self.kill_pgid, killed=killed, late_by=round(late_by, 6))

    def _note(self, event: str, **fields: object) -> None:
        entry = {"event": event, "monotonic": time.monotonic(), "wall": time.time(), **fields}
        self.record.write(json.dumps(entry) + "\n")
        self.record.flush()
        print(f"standin {self.socket_path}: {event} {fields}", file=sys.stderr, flush=True)


def _terminate(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run a stand-in supervisor; exit 0 after firing or on SIGTERM, 2 on bad arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m stonewall.lab.watchdog_supervisor",
        description="Userspace watchdog stand-in: kills a process group when not petted.")
    parser.add_argument("--socket", required=True, help="UNIX socket path to listen on")
    parser.add_argument("--kill-pgid", required=True, type=int,
                        help="process group to SIGKILL when the timer runs out")
    parser.add_argument("--record", required=True, help="file to append JSON event lines to")
    args = parser.parse_args(argv)
    if args.kill_pgid <= 1 or args.kill_pgid == os.getpgrp():
        parser.error(f"--kill-pgid {args.kill_pgid} would kill init, everything, or the "
                     "stand-in itself; give the node's own process group")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with open(args.record, "a", encoding="utf-8") as record:
            supervisor = _Supervisor(args.socket, args.kill_pgid, record)
            try:
                sys.stdout.buffer.write(_READY_LINE)
                sys.stdout.flush()
                supervisor.run()
            finally:
                os.unlink(args.socket)  # only ours: bind() succeeded
    except OSError as exc:  # e.g. the socket path is taken, the record is not writable
        print(f"standin: {exc}", file=sys.stderr)
        return 1
    return 0


# --- spawning a supervisor (tests, the lab) --------------------------------------------------

@dataclass(frozen=True)
class FireRecord:
    """When and how a stand-in fired (from its record file)."""

    monotonic: float  # CLOCK_MONOTONIC, comparable with time.monotonic() in other processes
    wall: float
    pgid: int
    killed: bool


class StandinSupervisor:
    """A running supervisor process. Stop it with stop(); it stops itself after firing."""

    def __init__(self, process: subprocess.Popen[bytes], socket_path: str,
                 record_path: str) -> None:
        self.process = process
        self.socket_path = socket_path
        self.record_path = record_path

    @property
    def device_name(self) -> str:
        """The `watchdog.device` value that selects this stand-in."""
        return SCHEME + self.socket_path

    def events(self) -> list[dict[str, object]]:
        """Every recorded event, oldest first."""
        try:
            with open(self.record_path, encoding="utf-8") as record:
                return [json.loads(line) for line in record if line.strip()]
        except FileNotFoundError:
            return []

    def fired(self) -> FireRecord | None:
        """The fire record, or None if it has not fired."""
        for event in self.events():
            if event["event"] == "fired":
                return FireRecord(float(event["monotonic"]), float(event["wall"]),
                                  int(event["pgid"]), bool(event["killed"]))
        return None

    def wait_fired(self, deadline: Deadline) -> FireRecord | None:
        """Wait until the supervisor fired and exited, or `deadline`; None if it did not."""
        try:
            self.process.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            return None
        return self.fired()

    def stop(self, exit_deadline: float = 5.0) -> None:
        """Stop the supervisor by its PID (SIGTERM, then SIGKILL after `exit_deadline`)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=exit_deadline)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=exit_deadline)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> "StandinSupervisor":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def spawn_supervisor(socket_path: str, kill_pgid: int, record_path: str,
                     ready_deadline: float = 10.0) -> StandinSupervisor:
    """Start a supervisor in its own session (so it is never in the group it kills) and
    wait up to `ready_deadline` seconds until it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stonewall.lab.watchdog_supervisor", "--socket", socket_path,
         "--kill-pgid", str(kill_pgid), "--record", record_path],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    supervisor = StandinSupervisor(process, socket_path, record_path)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(ready_deadline) or process.stdout.readline() != _READY_LINE:
            raise WatchdogUnavailable(
                f"stand-in supervisor for {socket_path} did not become ready within "
                f"{ready_deadline:g}s (exit status {process.poll()}; see its stderr)")
    except BaseException:
        supervisor.stop()
        raise
    finally:
        selector.close()
    return supervisor


if __name__ == "__main__":
    sys.exit(main())
