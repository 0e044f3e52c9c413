"""systemd's notify protocol, written out (sd_notify(3)): one datagram per message to the
AF_UNIX socket named by $NOTIFY_SOCKET.

This is the service's OWN liveness towards systemd (WatchdogSec= restarts a stuck daemon);
it never fences a node. The hardware watchdog is a different device (device.py).
"""
from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Protocol


class NotifyFailed(Exception):
    """$NOTIFY_SOCKET is set but the message could not be delivered."""


class ServiceNotifier(Protocol):
    """What the petting loop tells its service manager."""

    def ready(self) -> None:
        """Start-up finished (READY=1)."""

    def watchdog(self) -> None:
        """The service is alive (WATCHDOG=1)."""

    def status(self, text: str) -> None:
        """A one-line state for `systemctl status` (STATUS=...)."""


class SystemdNotifier:
    """Sends to $NOTIFY_SOCKET from `environ`; does nothing when it is unset (not run by
    systemd, or NotifyAccess does not allow us)."""

    def __init__(self, environ: Mapping[str, str], send_timeout: float = 1.0) -> None:
        self.address = _socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.send_timeout = send_timeout

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines as one datagram; False when not under systemd.
        Raise NotifyFailed when the socket is named but the send fails."""
        if self.address is None:
            return False
        if any("\n" in item or "=" not in item for item in assignments):
            raise ValueError(f"notify assignments must be single KEY=value lines: {assignments}")
        payload = "\n".join(assignments).encode("utf-8")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(self.send_timeout)
            try:
                sock.sendto(payload, self.address)
            except OSError as exc:
                raise NotifyFailed(f"cannot notify systemd at {self.address!r}: {exc}") from exc
        return True

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.notify("STATUS=" + " ".join(text.split()))


def _socket_address(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]  # a leading '@' names a socket in the abstract namespace
    if value.startswith("/"):
        return value
    # sd_notify also knows vsock: addresses (VMs); a unit on a node never gets one.
    raise NotifyFailed(f"unsupported NOTIFY_SOCKET address {value!r}")

