"""The Linux block layer's persistent reservation ioctls (include/uapi/linux/pr.h), for the
kernel tier's measurement of them (tests/kernel/test_pr_ioctl.py): lab code, because the
decision was not to build a stonewall backend on them (README, "Kernel tier").

- ioctl through ctypes: a SCSI failure comes back as a POSITIVE return value (6.1: the raw
  SCSI result, status byte in the low bits), which fcntl.ioctl would drop.
- Linux's `enum pr_type` numbers the types differently from SPC-4.
- The kernel always sets APTPL in REGISTER (sd_pr_register), which tgtd refuses.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct

from stonewall.storage.scsi.types import ReservationType

# Request numbers on x86-64 (_IOW('p', 200..205, struct ...)), reference/scsi-pr.md.
IOC_PR_REGISTER = 0x401870C8
IOC_PR_RESERVE = 0x401070C9
IOC_PR_RELEASE = 0x401070CA
IOC_PR_PREEMPT = 0x401870CB
IOC_PR_CLEAR = 0x401070CD
IOC_PR_READ_KEYS = 0xC01070CE  # _IOWR('p', 206, 16 bytes): only from Linux 6.19

LINUX_PR_TYPE = {  # SPC-4 type -> enum pr_type
    ReservationType.WRITE_EXCLUSIVE: 1, ReservationType.EXCLUSIVE_ACCESS: 2,
    ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 3,
    ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 4,
    ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: 5,
    ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 6,
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p]
_libc.ioctl.restype = ctypes.c_int


def pr_ioctl(device: str, call: str, key: int = 0, new_key: int = 0,
             rtype: int | None = None) -> dict[str, object]:
    """One PR ioctl on `device`: {"return": value, "errno": name or None, "status": SCSI
    status byte of a positive return (the low byte of the SCSI result) or None}."""
    linux_type = LINUX_PR_TYPE[ReservationType(rtype)] if rtype is not None else 0
    request, argument = {
        "register": (IOC_PR_REGISTER, struct.pack("=QQII", key, new_key, 0, 0)),
        "reserve": (IOC_PR_RESERVE, struct.pack("=QII", key, linux_type, 0)),
        "release": (IOC_PR_RELEASE, struct.pack("=QII", key, linux_type, 0)),
        "preempt": (IOC_PR_PREEMPT, struct.pack("=QQII", key, new_key, linux_type, 0)),
        "clear": (IOC_PR_CLEAR, struct.pack("=QII", key, 0, 0)),
        "read_keys": (IOC_PR_READ_KEYS, struct.pack("=IIQ", 0, 0, 0)),
    }[call]
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        buffer = ctypes.create_string_buffer(argument, len(argument))
        value = _libc.ioctl(fd, request, buffer)
        code = ctypes.get_errno() if value < 0 else 0
    finally:
        os.close(fd)
    return {"return": value, "errno": errno.errorcode.get(code, str(code)) if code else None,
            "status": value & 0xFF if value > 0 else None}
