"""The watchdog device seam, and the real Linux `/dev/watchdog` behind it.

Kernel semantics every implementation keeps (drivers/watchdog/watchdog_dev.c):
- opening arms the timer; the device is single-open (EBUSY for a second opener);
- each keepalive restarts the timer; if it runs out the node is reset;
- only a "magic close" (write 'V', then close) disarms; any other close, including the
  implicit one when the process dies, leaves the timer running (the kernel pings once).
"""
from __future__ import annotations

import errno
import fcntl
import os
import platform
import stat
import struct
from array import array
from dataclasses import dataclass
from typing import Protocol

from stonewall.watchdog.errors import (
    DisarmFailed,
    WatchdogBusy,
    WatchdogError,
    WatchdogIoError,
    WatchdogNotArmed,
    WatchdogUnavailable,
    WatchdogUnsuitable,
)


class WatchdogDevice(Protocol):
    """A timer that resets the node unless it is kept alive."""

    @property
    def name(self) -> str:
        """Names the device in logs and status, e.g. '/dev/watchdog' or 'standin:/run/x'."""

    def arm(self, timeout: float) -> float:
        """Open (which starts the timer) with `timeout` seconds; return the timeout the
        device really uses. Raise rather than run with a different one."""

    def keepalive(self) -> None:
        """Restart the timer."""

    def get_timeout(self) -> float:
        """The armed timeout in seconds."""

    def get_timeleft(self) -> float | None:
        """Seconds before the reset, or None where the device cannot tell."""

    def disarm(self) -> None:
        """Magic close: stop the timer and release the device."""

    def close(self) -> None:
        """Release the device WITHOUT disarming: the timer keeps running and will fire."""


# --- ioctl numbers -----------------------------------------------------------------------
# include/uapi/asm-generic/ioctl.h: dir(2 bits) | size(14) | type(8) | nr(8). These are the
# generic _IOC encodings (x86, arm, arm64, riscv); powerpc, mips, sparc and alpha use other
# direction and size bits, so we refuse to guess there.
_IOC_WRITE = 1
_IOC_READ = 2
_GENERIC_IOC_MACHINES = frozenset(
    {"x86_64", "i386", "i686", "aarch64", "arm64", "armv7l", "armv6l", "riscv64"})


def _ioc(direction: int, type_char: str, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord(type_char) << 8) | nr


_INT = struct.calcsize("i")
_INFO = struct.Struct("=II32s")  # struct watchdog_info: options, firmware_version, identity

WDIOC_GETSUPPORT = _ioc(_IOC_READ, "W", 0, _INFO.size)
WDIOC_KEEPALIVE = _ioc(_IOC_READ, "W", 5, _INT)
WDIOC_SETTIMEOUT = _ioc(_IOC_READ | _IOC_WRITE, "W", 6, _INT)
WDIOC_GETTIMEOUT = _ioc(_IOC_READ, "W", 7, _INT)
WDIOC_GETTIMELEFT = _ioc(_IOC_READ, "W", 10, _INT)

WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
WDIOF_KEEPALIVEPING = 0x8000

MAGIC_CLOSE = b"V"


@dataclass(frozen=True)
class WatchdogInfo:
    """What WDIOC_GETSUPPORT reports."""

    options: int
    firmware_version: int
    identity: str

    @classmethod
    def unpack(cls, raw: bytes) -> "WatchdogInfo":
        options, firmware, identity = _INFO.unpack(raw)
        return cls(options, firmware, identity.split(b"\0", 1)[0].decode("ascii", "replace"))


def holders_of(path: str) -> tuple[int, ...]:
    """PIDs that hold `path` open (scans /proc/*/fd, as `sbd query-watchdog` does), so an
    EBUSY can say who has the single-open device."""
    wanted = {os.path.realpath(path)}
    # /dev/watchdog is the misc alias of watchdog0; both share one "open" bit in the kernel.
    if wanted & {"/dev/watchdog", "/dev/watchdog0"}:
        wanted |= {"/dev/watchdog", "/dev/watchdog0"}
    pids = [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and wanted.intersection(_fd_targets(f"/proc/{entry}/fd"))]
    return tuple(sorted(pids))


def _fd_targets(fd_dir: str) -> set[str]:
    targets = set()
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # the process ended, or is not ours to look at
        return targets
    for fd in fds:
        try:
            targets.add(os.readlink(f"{fd_dir}/{fd}"))
        except OSError:  # that fd was closed meanwhile (the listing's own, for one)
            continue
    return targets


class LinuxWatchdog:
    """A kernel watchdog device (e.g. /dev/watchdog) driven through its ioctls.

    The fd comes from os.open: never a buffered file, where a 'V' could sit in a buffer or
    an implicit close at garbage collection could change the outcome. It is opened
    O_CLOEXEC (and non-inheritable, PEP 446), so child processes never hold the device.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self.info: WatchdogInfo | None = None

    @property
    def name(self) -> str:
        return self.path

    def arm(self, timeout: float) -> float:
        if self._fd is not None:
            raise WatchdogError(f"{self.path} is already armed")
        seconds = _whole_seconds(timeout)
        if platform.machine() not in _GENERIC_IOC_MACHINES:
            raise WatchdogUnsuitable(
                f"watchdog ioctl numbers are not known for architecture {platform.machine()}")
        require_character_device(self.path)
        fd = _open_device(self.path)
        info: WatchdogInfo | None = None
        try:
            info = _read_info(fd, self.path)
            if not info.options & WDIOF_MAGICCLOSE:
                # Such a driver stops on ANY close, so a crash of this service would stop
                # the watchdog instead of resetting the node (watchdog_dev.c release rule).
                raise WatchdogUnsuitable(
                    f"{self.path} ({info.identity}) lacks magic close: a crash of the "
                    "service would disarm it instead of resetting the node")
            actual = _set_timeout(fd, info, seconds, self.path)
        except BaseException:
            _release_after_failed_arm(fd, info)
            raise
        self._fd, self.info = fd, info
        return float(actual)

    def keepalive(self) -> None:
        fd = self._armed_fd()
        assert self.info is not None
        try:
            if self.info.options & WDIOF_KEEPALIVEPING:
                fcntl.ioctl(fd, WDIOC_KEEPALIVE, 0)
            else:
                # The core answers EOPNOTSUPP to KEEPALIVE without WDIOF_KEEPALIVEPING;
                # a write pings on every driver (a NUL byte, so no 'V' is implied).
                os.write(fd, b"\0")
        except OSError as exc:
            raise WatchdogIoError(f"keepalive on {self.path} failed: {exc}", exc.errno) from exc

    def get_timeout(self) -> float:
        return float(_ioctl_int(self._armed_fd(), WDIOC_GETTIMEOUT, self.path))

    def get_timeleft(self) -> float | None:
        try:
            return float(_ioctl_int(self._armed_fd(), WDIOC_GETTIMELEFT, self.path))
        except WatchdogIoError as exc:
            if exc.errno == errno.EOPNOTSUPP:
                return None  # the driver has no get_timeleft (softdog, for one)
            raise

    def disarm(self) -> None:
        fd = self._armed_fd()
        self._fd = None
        try:
            os.write(fd, MAGIC_CLOSE)
        except OSError as exc:
            os.close(fd)
            raise DisarmFailed(
                f"magic close of {self.path} failed ({exc}); it stays armed and will fire"
            ) from exc
        # With nowayout set the kernel ignores the 'V' and keeps running: documented.
        os.close(fd)

    def close(self) -> None:
        fd = self._armed_fd()
        self._fd = None
        os.close(fd)

    def _armed_fd(self) -> int:
        if self._fd is None:
            raise WatchdogNotArmed(f"{self.path} is not armed")
        return self._fd


def require_character_device(path: str) -> None:
    """Raise WatchdogUnavailable unless `path` is an existing character device."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise WatchdogUnavailable(
            f"no watchdog device at {path}: load the board's watchdog driver "
            "(or `modprobe softdog` where nothing better exists)") from None
    except OSError as exc:
        raise WatchdogUnavailable(f"cannot stat {path}: {exc}") from exc
    if not stat.S_ISCHR(mode):
        raise WatchdogUnavailable(f"{path} is not a character device, so not a watchdog")


def _whole_seconds(timeout: float) -> int:
    # The kernel API counts whole seconds. Rounding either way would silently change
    # T_safe or break check_deadline < timeout, so a fractional value is refused.
    if timeout <= 0 or timeout != int(timeout):
        raise WatchdogUnsuitable(
            f"a kernel watchdog needs a whole number of seconds > 0, not {timeout:g}")
    return int(timeout)


def _open_device(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            holders = holders_of(path)
            who = ", ".join(map(str, holders)) or "an unknown process (kernel or other namespace)"
            raise WatchdogBusy(
                f"{path} is already open (single-open device) by pid {who}: systemd "
                "RuntimeWatchdogSec, corosync, sbd, wdmd, watchdog-mux or watchdog(8) may "
                "hold it", holders) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise WatchdogUnavailable(f"no permission to open {path} (run as root)") from exc
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise WatchdogUnavailable(f"{path} has no driver behind it") from exc
        raise WatchdogUnavailable(f"cannot open {path}: {exc}") from exc


def _read_info(fd: int, path: str) -> WatchdogInfo:
    buf = bytearray(_INFO.size)
    try:
        fcntl.ioctl(fd, WDIOC_GETSUPPORT, buf, True)
    except OSError as exc:
        if exc.errno == errno.ENOTTY:
            raise WatchdogUnavailable(
                f"{path} is not a watchdog (WDIOC_GETSUPPORT: not supported)") from exc
        raise WatchdogIoError(f"WDIOC_GETSUPPORT on {path} failed: {exc}", exc.errno) from exc
    return WatchdogInfo.unpack(bytes(buf))


def _set_timeout(fd: int, info: WatchdogInfo, seconds: int, path: str) -> int:
    if info.options & WDIOF_SETTIMEOUT:
        buf = array("i", [seconds])
        try:
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, buf, True)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise WatchdogUnsuitable(
                    f"{path} refuses a timeout of {seconds}s (outside the driver's range; "
                    "see min_timeout/max_timeout in /sys/class/watchdog)") from exc
            raise WatchdogIoError(f"WDIOC_SETTIMEOUT on {path} failed: {exc}", exc.errno) from exc
    # A driver may round (the kernel's API document: 45 -> 60), so read back and refuse a
    # different value, as wdmd does: the timing proof assumes the configured timeout.
    actual = _ioctl_int(fd, WDIOC_GETTIMEOUT, path)
    if actual != seconds:
        raise WatchdogUnsuitable(f"{path} runs with a {actual}s timeout, not the {seconds}s asked")
    return actual


def _ioctl_int(fd: int, request: int, path: str) -> int:
    buf = array("i", [0])
    try:
        fcntl.ioctl(fd, request, buf, True)
    except OSError as exc:
        raise WatchdogIoError(f"ioctl {request:#x} on {path} failed: {exc}", exc.errno) from exc
    return buf[0]


def _release_after_failed_arm(fd: int, info: WatchdogInfo | None) -> None:
    # Opening armed the timer, but nothing depends on it yet: disarm. Only write 'V' to a
    # device known to be a watchdog with magic close; to anything else a write means
    # something else, and a driver without magic close stops on a plain close anyway.
    try:
        if info is not None and info.options & WDIOF_MAGICCLOSE:
            os.write(fd, MAGIC_CLOSE)
    finally:
        os.close(fd)
