"""ctypes bindings for the parts of libiscsi (Debian libiscsi7, 1.19) stonewall uses.

Only declarations live here; `iscsi.py` uses them. The struct layouts follow
<iscsi/scsi-lowlevel.h>; getting `struct scsi_sense` wrong (its three 1-bit fields share
one byte, `bit_pointer` takes the next) shifts every later field.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_size_t, c_ubyte,
                    c_uint16, c_uint32, c_void_p)

from stonewall.storage.scsi.errors import DeviceError

SCSI_CDB_MAX_SIZE = 16
ISCSI_SESSION_NORMAL = 2
ISCSI_HEADER_DIGEST_NONE = 0
SCSI_XFER_NONE, SCSI_XFER_READ, SCSI_XFER_WRITE = 0, 1, 2
# libiscsi's own transport outcomes, beside the SAM status values.
SCSI_STATUS_CANCELLED = 0x0F000000
SCSI_STATUS_ERROR = 0x0F000001
SCSI_STATUS_TIMEOUT = 0x0F000002


class ScsiSense(Structure):
    _fields_ = [
        ("error_type", c_ubyte),
        ("key", c_int),
        ("ascq", c_int),  # ASC << 8 | ASCQ
        ("flags", c_ubyte),  # sense_specific, ill_param_in_cdb, bit_pointer_valid
        ("bit_pointer", c_ubyte),
        ("field_pointer", c_uint16),
    ]


class ScsiData(Structure):
    _fields_ = [("size", c_int), ("data", POINTER(c_ubyte))]


class ScsiIoVector(Structure):
    _fields_ = [("iov", c_void_p), ("niov", c_int), ("nalloc", c_int), ("offset", c_size_t),
                ("consumed", c_int)]


class ScsiTask(Structure):
    _fields_ = [
        ("status", c_int),
        ("cdb_size", c_int),
        ("xfer_dir", c_int),
        ("expxferlen", c_int),
        ("cdb", c_ubyte * SCSI_CDB_MAX_SIZE),
        ("residual_status", c_int),
        ("residual", c_size_t),
        ("sense", ScsiSense),
        ("datain", ScsiData),
        ("mem", c_void_p),
        ("ptr", c_void_p),
        ("itt", c_uint32),
        ("cmdsn", c_uint32),
        ("lun", c_uint32),
        ("iovector_in", ScsiIoVector),
        ("iovector_out", ScsiIoVector),
    ]


class IscsiData(Structure):
    _fields_ = [("size", c_size_t), ("data", c_void_p)]


assert ctypes.sizeof(ScsiSense) == 16, "struct scsi_sense layout"

COMMAND_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_void_p)


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("iscsi") or "libiscsi.so.7"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise DeviceError(f"cannot load libiscsi ({exc}); install the Debian package libiscsi7")
    signatures = {
        "iscsi_create_context": (c_void_p, [c_char_p]),
        "iscsi_destroy_context": (c_int, [c_void_p]),
        "iscsi_set_targetname": (c_int, [c_void_p, c_char_p]),
        "iscsi_set_session_type": (c_int, [c_void_p, c_int]),
        "iscsi_set_header_digest": (c_int, [c_void_p, c_int]),
        "iscsi_set_initiator_username_pwd": (c_int, [c_void_p, c_char_p, c_char_p]),
        "iscsi_set_isid_random": (c_int, [c_void_p, c_uint32, c_uint32]),
        "iscsi_set_noautoreconnect": (None, [c_void_p, c_int]),
        "iscsi_full_connect_async": (c_int, [c_void_p, c_char_p, c_int, COMMAND_CB, c_void_p]),
        "iscsi_get_fd": (c_int, [c_void_p]),
        "iscsi_which_events": (c_int, [c_void_p]),
        "iscsi_service": (c_int, [c_void_p, c_int]),
        "iscsi_get_error": (c_char_p, [c_void_p]),
        "iscsi_scsi_command_async": (c_int, [c_void_p, c_int, POINTER(ScsiTask), COMMAND_CB,
                                             POINTER(IscsiData), c_void_p]),
        "iscsi_logout_sync": (c_int, [c_void_p]),
        "iscsi_is_logged_in": (c_int, [c_void_p]),
        "scsi_create_task": (POINTER(ScsiTask), [c_int, POINTER(c_ubyte), c_int, c_int]),
        "scsi_free_scsi_task": (None, [POINTER(ScsiTask)]),
    }
    for fname, (restype, argtypes) in signatures.items():
        function = getattr(lib, fname)
        function.restype = restype
        function.argtypes = argtypes
    return lib


_LIB: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use, so importing stonewall never needs it)."""
    global _LIB
    if _LIB is None:
        _LIB = _load()
    return _LIB
