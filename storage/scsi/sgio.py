"""The in-process SG_IO transport: CDBs through `ioctl(SG_IO)` on a kernel path device
(/dev/sdX, /dev/sgN) from the calling process, no sg3_utils process per command.

`SgioTransport` is a `CommandTransport` (one path, one I_T nexus: the kernel keeps it between
processes, so a command from here acts with the registration that sg_persist made); wrapped
in `commands.CommandPrDevice` it is the same `PrDevice` as `sg.SgPersistDevice`, with the
same CDB, response, sense and status code as the iSCSI transport. The sg v3 interface
(struct sg_io_hdr, include/scsi/sg.h) works on sd and sg nodes alike.

ioctl goes through ctypes (libc's own symbol, so an LD_PRELOAD shim sees it, as it sees
sg_persist's): the call releases the GIL, so paths are driven in parallel by threads.
"""
from __future__ import annotations

import ctypes
import errno
import os
import stat
import threading

from stonewall.clock import Deadline
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import CommandTimeout, DeviceError, TransportError

SG_IO = 0x2285  # include/scsi/sg.h
SG_INTERFACE_ID = ord("S")
SG_DXFER_NONE, SG_DXFER_TO_DEV, SG_DXFER_FROM_DEV = -1, -2, -3
SENSE_BUFFER = 64  # SPC-4 sense is at most 252 bytes; 64 holds every fixed/descriptor form seen
# host_status (include/scsi/scsi_status.h, DID_*) and driver_status (DRIVER_*).
DID_OK = 0x00
DID_TIME_OUT = 0x03
DRIVER_TIMEOUT = 0x06
DRIVER_SENSE = 0x08
_DRIVER_STATUS_MASK = 0x0F  # the suggestion bits above are obsolete and ignored
# The kernel's timeout is in whole milliseconds; a command must get at least one.
_MIN_TIMEOUT_MS = 1
_MAX_TIMEOUT_MS = 0xFFFF_FFFF
# errnos that mean nothing was sent: the device is absent, not SCSI, or not ours to use.
_UNUSABLE_ERRNOS = {errno.EPERM, errno.ENOENT, errno.ENXIO, errno.EACCES, errno.ENODEV,
                    errno.ENOTDIR, errno.EISDIR, errno.ENOTTY, errno.EROFS, errno.EBADF,
                    errno.EINVAL}


class SgIoHeader(ctypes.Structure):
    """struct sg_io_hdr (v3), natural alignment as the kernel's uapi header lays it out."""

    _fields_ = [
        ("interface_id", ctypes.c_int), ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte), ("mx_sb_len", ctypes.c_ubyte),
        ("iovec_count", ctypes.c_ushort), ("dxfer_len", ctypes.c_uint),
        ("dxferp", ctypes.c_void_p), ("cmdp", ctypes.c_void_p), ("sbp", ctypes.c_void_p),
        ("timeout", ctypes.c_uint), ("flags", ctypes.c_uint), ("pack_id", ctypes.c_int),
        ("usr_ptr", ctypes.c_void_p), ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte), ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte), ("host_status", ctypes.c_ushort),
        ("driver_status", ctypes.c_ushort), ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint), ("info", ctypes.c_uint),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int


class SgioTransport:
    """One LUN through one kernel path device. The device is opened on first use and kept
    open; an error that says the node is gone closes it, so the next command opens again."""

    def __init__(self, device_path: str) -> None:
        if not device_path.startswith("/"):
            raise ValueError(f"device path {device_path!r} must be absolute")
        self.device_path = device_path
        self._fd: int | None = None
        self._lock = threading.Lock()  # one fd; commands to one path are serialised

    @property
    def path_name(self) -> str:
        return self.device_path

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult:
        what = f"SG_IO 0x{cdb[0]:02x} on {self.device_path}"
        remaining_ms = int(deadline.remaining() * 1000)
        if remaining_ms < _MIN_TIMEOUT_MS:
            raise CommandTimeout(f"{what}: no time left to send it")
        command = ctypes.create_string_buffer(cdb, len(cdb))
        sense = ctypes.create_string_buffer(SENSE_BUFFER)
        if data_out is not None:
            data = ctypes.create_string_buffer(data_out, len(data_out))
            direction, length = SG_DXFER_TO_DEV, len(data_out)
        elif data_in_length:
            data = ctypes.create_string_buffer(data_in_length)
            direction, length = SG_DXFER_FROM_DEV, data_in_length
        else:
            data, direction, length = None, SG_DXFER_NONE, 0
        header = SgIoHeader(
            interface_id=SG_INTERFACE_ID, dxfer_direction=direction, cmd_len=len(cdb),
            mx_sb_len=SENSE_BUFFER, dxfer_len=length,
            dxferp=ctypes.cast(data, ctypes.c_void_p) if data is not None else None,
            cmdp=ctypes.cast(command, ctypes.c_void_p), sbp=ctypes.cast(sense, ctypes.c_void_p),
            timeout=min(remaining_ms, _MAX_TIMEOUT_MS))
        with self._lock:
            fd = self._open_locked(what)
            if _ioctl(fd, SG_IO, ctypes.addressof(header)) < 0:
                code = ctypes.get_errno()
                if code in (errno.ENODEV, errno.ENXIO, errno.EBADF):
                    self._close_locked()
                # The kernel checks the header before it queues the command, so these errnos
                # mean nothing reached the LUN; any other may have struck after it was sent.
                kind = DeviceError if code in _UNUSABLE_ERRNOS else TransportError
                raise kind(f"{what}: {os.strerror(code)}")
        return _result(header, data, sense, length, what)

    def _open_locked(self, what: str) -> int:
        if self._fd is not None:
            return self._fd
        try:
            # O_NONBLOCK: an sg node must not wait for a device another opener holds
            # exclusively; RDWR: PR OUT needs write access (sg_persist opens it the same way).
            fd = os.open(self.device_path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise DeviceError(f"{what}: cannot open: {exc.strerror}") from exc
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)):
            os.close(fd)
            raise DeviceError(f"{what}: not a block or character device")
        self._fd = fd
        return fd

    def _close_locked(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _result(header: SgIoHeader, data: ctypes.Array[ctypes.c_char] | None,
            sense: ctypes.Array[ctypes.c_char], length: int, what: str) -> CommandResult:
    """The command's outcome, or the exception for a host or driver failure (fate unknown)."""
    driver = header.driver_status & _DRIVER_STATUS_MASK
    if header.host_status == DID_TIME_OUT or driver == DRIVER_TIMEOUT:
        raise CommandTimeout(f"{what}: timed out after {header.duration} ms")
    if header.host_status != DID_OK:
        raise TransportError(f"{what}: host status 0x{header.host_status:02x}")
    if driver not in (0, DRIVER_SENSE):
        raise TransportError(f"{what}: driver status 0x{header.driver_status:02x}")
    received = max(0, length - header.resid) if header.dxfer_direction == SG_DXFER_FROM_DEV else 0
    return CommandResult(header.status, data.raw[:received] if data is not None else b"",
                         sense.raw[:header.sb_len_wr])


class SgioDevice(CommandPrDevice):
    """A `PrDevice` on one kernel path device through in-process SG_IO."""

    def __init__(self, device_path: str) -> None:
        super().__init__(SgioTransport(device_path))

    @property
    def device_path(self) -> str:
        return self.path_name

    def close(self) -> None:
        assert isinstance(self.transport, SgioTransport)
        self.transport.close()
