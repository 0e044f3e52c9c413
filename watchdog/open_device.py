"""Which watchdog device the configuration names. Never a silent fallback: a real device
that is missing is an error, and the stand-in is used only where the operator allowed it.
"""
from __future__ import annotations

from stonewall.config.model import WatchdogSettings
from stonewall.watchdog.device import LinuxWatchdog, WatchdogDevice, require_character_device
from stonewall.watchdog.errors import StandinNotAllowed, WatchdogUnavailable
from stonewall.watchdog.standin import SCHEME, StandinWatchdog


def open_watchdog(settings: WatchdogSettings) -> WatchdogDevice:
    """The device for `settings.device`: a kernel device path -> LinuxWatchdog (checked to
    exist, not opened: opening arms it); `standin:/path/to/socket` -> StandinWatchdog, only
    with `allow_standin`. Raise StandinNotAllowed or WatchdogUnavailable otherwise."""
    device = settings.device
    if device.startswith(SCHEME):
        socket_path = device[len(SCHEME):]
        if not settings.allow_standin:
            raise StandinNotAllowed(
                f"watchdog.device is {device!r} but watchdog.allow_standin is false: the "
                "stand-in only kills a process group and cannot reset a node; use it for "
                "tests and the lab, and say so with allow_standin: true")
        if not socket_path.startswith("/"):
            raise WatchdogUnavailable(
                f"watchdog.device {device!r}: the stand-in needs an absolute socket path")
        return StandinWatchdog(socket_path)
    if not device.startswith("/"):
        raise WatchdogUnavailable(
            f"watchdog.device {device!r} is neither a device path nor standin:/socket/path")
    require_character_device(device)
    return LinuxWatchdog(device)
