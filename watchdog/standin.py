"""The node side of a userspace stand-in for /dev/watchdog, for tests and the lab (never chosen
silently: config `watchdog.device: standin:SOCKET` with `allow_standin: true`).

The supervisor that plays the hardware timer is the lab's (stonewall.lab.watchdog_supervisor),
a separate process, so it keeps its promise when the node process hangs or dies. It listens
on a UNIX stream socket. One connection at a time is "the open device" (a
second one is refused: busy). The node side speaks one line per request, one reply line
per request (see docs/watchdog.md, "Stand-in protocol"):

    ARM <seconds>   open: arm (or re-arm) with this timeout      -> OK <seconds>
    PING            keepalive: restart the timer                 -> OK
    GETTIMEOUT                                                   -> OK <seconds>
    GETTIMELEFT                                                  -> OK <seconds>
    V               magic character: a close right after it disarms -> OK

As in the kernel, any request after 'V' cancels it, and a close without it leaves the
timer running after one last keepalive (watchdog_dev.c pings on an unclean release).
When the timer runs out the stand-in "resets the node": SIGKILL to the process group,
a JSON line {"event": "fired", ...} in the record file, exit. Every other state change
(armed, disarmed, unclean-close) is recorded too. SIGTERM stops the stand-in without
firing: that is the operator (or a test fixture) switching the lab off.
"""
from __future__ import annotations

import socket

from stonewall.clock import Deadline
from stonewall.watchdog.errors import (
    WatchdogBusy,
    WatchdogError,
    WatchdogIoError,
    WatchdogNotArmed,
    WatchdogUnavailable,
    WatchdogUnsuitable,
)

SCHEME = "standin:"
MAX_TIMEOUT = 65535.0  # the largest the kernel API can express (softdog's soft_margin limit)
MAX_LINE = 256  # bytes of one protocol line


# --- node side ---------------------------------------------------------------------------

class StandinWatchdog:
    """The node's end of a stand-in: implements WatchdogDevice over the supervisor's socket.

    `reply_timeout` bounds every exchange; the supervisor answers at once, so a late
    reply means it is stuck or gone.
    """

    def __init__(self, socket_path: str, reply_timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.reply_timeout = reply_timeout
        self._sock: socket.socket | None = None
        self._pending = b""

    @property
    def name(self) -> str:
        return SCHEME + self.socket_path

    def arm(self, timeout: float) -> float:
        if self._sock is not None:
            raise WatchdogError(f"{self.name} is already armed")
        if not 0 < timeout <= MAX_TIMEOUT:
            raise WatchdogUnsuitable(f"a stand-in timeout must be in (0, {MAX_TIMEOUT:g}]s, "
                                     f"not {timeout:g}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(self.reply_timeout)
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise WatchdogUnavailable(
                f"no stand-in supervisor at {self.socket_path}: {exc}") from exc
        self._sock, self._pending = sock, b""
        try:
            return float(self._request(f"ARM {timeout!r}"))
        except BaseException:
            self._drop()
            raise

    def keepalive(self) -> None:
        self._request("PING")

    def get_timeout(self) -> float:
        return float(self._request("GETTIMEOUT"))

    def get_timeleft(self) -> float | None:
        return float(self._request("GETTIMELEFT"))

    def disarm(self) -> None:
        self._request("V")
        self._release()

    def close(self) -> None:
        if self._sock is None:
            raise WatchdogNotArmed(f"{self.name} is not armed")
        self._release()

    def _release(self) -> None:
        """Close like the kernel does: return once the supervisor has handled the release
        (it closes its end then), or after reply_timeout if it is stuck or gone."""
        assert self._sock is not None
        deadline = Deadline.after(self.reply_timeout)
        try:
            self._sock.shutdown(socket.SHUT_WR)
            while not deadline.expired():
                self._sock.settimeout(max(deadline.remaining(), 1e-3))
                if not self._sock.recv(MAX_LINE):
                    break
        except OSError:
            pass  # the supervisor is gone: nothing left to wait for
        self._drop()

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _request(self, line: str) -> str:
        if self._sock is None:
            raise WatchdogNotArmed(f"{self.name} is not armed")
        deadline = Deadline.after(self.reply_timeout)
        try:
            self._sock.settimeout(deadline.remaining())
            self._sock.sendall(line.encode("ascii") + b"\n")
            reply = self._read_line(deadline)
        except OSError as exc:  # socket.timeout is an OSError
            raise WatchdogIoError(f"{self.name}: {line.split()[0]} failed: {exc}",
                                  exc.errno) from exc
        status, _, value = reply.partition(" ")
        if status == "OK":
            return value
        if value.startswith("busy"):
            raise WatchdogBusy(f"{self.name} is already open by another process")
        if value.startswith("range"):
            raise WatchdogUnsuitable(f"{self.name} refused: {value}")
        raise WatchdogIoError(f"{self.name} refused {line.split()[0]}: {value}")

    def _read_line(self, deadline: Deadline) -> str:
        assert self._sock is not None
        while b"\n" not in self._pending:
            if len(self._pending) > MAX_LINE:
                raise WatchdogIoError(f"{self.name}: reply too long")
            self._sock.settimeout(max(deadline.remaining(), 1e-3))
            chunk = self._sock.recv(MAX_LINE)
            if not chunk:
                raise WatchdogIoError(f"{self.name}: the supervisor closed the connection")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode("ascii", "replace")
