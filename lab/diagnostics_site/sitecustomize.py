"""Diagnostics for the soak (`./run soak --tracemalloc`, `--malloc-trim`), never on a cluster
node: a lab process started with this folder on PYTHONPATH gets, per variable set,

- STONEWALL_LAB_TRACEMALLOC=PREFIX: traces its allocations (25 frames) from interpreter
  start, and writes a tracemalloc snapshot to PREFIX.<n> on each SIGUSR2 (n from 1);
- STONEWALL_LAB_MALLOC_INFO=PREFIX: on SIGUSR1 writes glibc's malloc_info(3) to
  PREFIX.before, calls malloc_trim(0) (free memory back to the kernel), writes PREFIX.after.

A signal with no handler installed would end the process: the soak sends one only when it
set the variable."""
from __future__ import annotations

import ctypes
import os
import signal
import tracemalloc

_TRACE = os.environ.get("STONEWALL_LAB_TRACEMALLOC")
_MALLOC = os.environ.get("STONEWALL_LAB_MALLOC_INFO")

if _TRACE:
    tracemalloc.start(25)
    _taken = [0]

    def _snapshot(_signum: int, _frame: object) -> None:
        _taken[0] += 1
        tracemalloc.take_snapshot().dump(f"{_TRACE}.{_taken[0]}")

    signal.signal(signal.SIGUSR2, _snapshot)

if _MALLOC:
    _libc = ctypes.CDLL("libc.so.6")
    _libc.fopen.restype = ctypes.c_void_p
    _libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    _libc.fclose.argtypes = [ctypes.c_void_p]
    _libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    _libc.malloc_trim.argtypes = [ctypes.c_size_t]

    def _write_info(path: str) -> None:
        stream = _libc.fopen(path.encode(), b"w")
        if stream:
            _libc.malloc_info(0, stream)
            _libc.fclose(stream)

    def _trim(_signum: int, _frame: object) -> None:
        _write_info(f"{_MALLOC}.before")
        _libc.malloc_trim(0)
        _write_info(f"{_MALLOC}.after")

    signal.signal(signal.SIGUSR1, _trim)
