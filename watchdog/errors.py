"""One exception type per watchdog outcome a caller must tell apart.

Callers branch on the type, never on the message.
"""
from __future__ import annotations


class WatchdogError(Exception):
    """Base class for everything the watchdog layer refuses or fails to do."""


class WatchdogUnavailable(WatchdogError):
    """The device cannot be used at all: missing, not a character device, no permission,
    or not a watchdog driver. Never a reason to fall back to the stand-in."""


class WatchdogBusy(WatchdogUnavailable):
    """The device is single-open and another process holds it (EBUSY)."""

    def __init__(self, message: str, holders: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.holders = holders


class WatchdogUnsuitable(WatchdogError):
    """The driver cannot give the guarantees self-fencing needs (no magic close, a
    timeout it will not take, an architecture whose ioctl numbers we do not compute)."""


class WatchdogNotArmed(WatchdogError):
    """An operation that needs an armed device was called before arm() or after close."""


class WatchdogIoError(WatchdogError):
    """A keepalive, ioctl or stand-in exchange failed on an armed device."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno  # the OS error number where there was one


class DisarmFailed(WatchdogError):
    """The magic close could not be completed: the watchdog stays armed and will fire."""


class StandinNotAllowed(WatchdogError):
    """The configuration names the userspace stand-in but does not allow it."""


class StartRefused(WatchdogError):
    """The service did not arm: ownership was not proven first."""


class KeyNotRegistered(StartRefused):
    """The first check found this node's key gone: it was fenced and must not arm."""


class OwnershipUnverified(StartRefused):
    """The first check could not tell whether this node owns its storage."""


class StopRefused(WatchdogError):
    """A clean stop (magic close) was refused; the watchdog stays armed."""


class GuestsStillRunning(StopRefused):
    """Guests that depend on the LUNs still run here, so the protection must stay."""


class SelfFencingInProgress(StopRefused):
    """The node is self-fencing; only the reset ends that."""
