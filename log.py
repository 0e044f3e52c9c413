"""One log line per decision, reaching the journal exactly once, with fields to search by.

Where the line goes:
- stderr is the journal (systemd sets `$JOURNAL_STREAM` to the stream's `device:inode`,
  systemd.exec(5)): the journal only, through its native protocol, so the line carries
  STONEWALL_* fields and is not also copied from stderr;
- otherwise (a DRBD handler under drbdadm, the fence agent under pacemaker-fenced, a person
  at a terminal): stderr, which the caller reads, and the journal through its native socket
  when there is one, else syslog (`/dev/log`).

Fields (`journalctl STONEWALL_PEER=kvm-b`): STONEWALL_PEER (the node acted upon),
STONEWALL_LUN (once per LUN; journalctl matches any of them), STONEWALL_OUTCOME. A line the
journal socket refuses is written to stderr instead: a decision is never dropped.
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
import socket
import stat
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_SOCKET = "/dev/log"
JOURNAL_FIELDS = "journal_fields"  # the `extra=` key that carries a record's fields
_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]*\Z")
# syslog priorities (RFC 5424) for logging's levels, as the journal's PRIORITY wants them.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def decision_fields(*, peer: str | None = None, luns: Iterable[str] = (),
                    outcome: str | None = None) -> dict[str, Any]:
    """`extra=` for a decision line: the journal fields of the peer, LUNs and outcome."""
    fields: list[tuple[str, str]] = []
    if peer:
        fields.append(("STONEWALL_PEER", peer))
    fields.extend(("STONEWALL_LUN", lun) for lun in luns)
    if outcome:
        fields.append(("STONEWALL_OUTCOME", outcome))
    return {JOURNAL_FIELDS: fields}


def encode_entry(fields: Sequence[tuple[str, str]]) -> bytes:
    """One journal entry in the native protocol: `NAME=value\\n`, or for a value holding a
    newline `NAME\\n` + its length as 64-bit little endian + value + `\\n`."""
    out = bytearray()
    for name, value in fields:
        if not _FIELD_NAME.match(name):
            raise ValueError(f"{name!r} is not a journal field name")
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def stderr_is_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when `stream` is the stream systemd connected to the journal."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (int(device), int(inode)) == (status.st_dev, status.st_ino)
    except (ValueError, OSError):
        return False  # unset, malformed, or no descriptor (a test's StringIO)


class JournalHandler(logging.Handler):
    """Sends each record as one datagram to the journal's native socket; a record the socket
    does not take goes to `fallback` (a stream) instead."""

    def __init__(self, ident: str, fallback: TextIO, path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.ident, self.fallback, self.path = ident, fallback, path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        fields = [("MESSAGE", message), ("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
                  ("SYSLOG_IDENTIFIER", self.ident), ("SYSLOG_PID", str(os.getpid())),
                  *getattr(record, JOURNAL_FIELDS, ())]
        try:
            self._socket.sendto(encode_entry(fields), self.path)
        except (OSError, ValueError):
            # No journal, or an entry too large for one datagram: the line still goes out.
            self.fallback.write(f"{self.ident}: {message}\n")
            self.fallback.flush()

    def close(self) -> None:
        self._socket.close()
        super().close()


def decision_handlers(ident: str, environ: Mapping[str, str], stderr: TextIO,
                      journal_socket: str = JOURNAL_SOCKET,
                      syslog_socket: str = SYSLOG_SOCKET) -> list[logging.Handler]:
    """The handlers that put each line where the module docstring says."""
    journal_there = _is_socket(journal_socket)
    if stderr_is_journal(environ, stderr):
        if journal_there:
            return [JournalHandler(ident, stderr, journal_socket)]
        return [_stream_handler(ident, stderr)]  # stderr is the journal: once is enough
    handlers: list[logging.Handler] = [_stream_handler(ident, stderr)]
    if journal_there:
        handlers.append(JournalHandler(ident, _Discard(), journal_socket))
    elif _is_socket(syslog_socket):
        try:
            syslog = logging.handlers.SysLogHandler(
                address=syslog_socket, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        except OSError:
            pass  # no syslog socket we may use: stderr still has every line
        else:
            syslog.setFormatter(logging.Formatter(f"{ident}[{os.getpid()}]: %(message)s"))
            handlers.append(syslog)
    return handlers


def decision_logger(ident: str) -> logging.Logger:
    """The process's logger for `ident` (built once), writing as the module docstring says."""
    logger = logging.getLogger(ident)
    if logger.handlers:
        return logger
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in decision_handlers(ident, os.environ, sys.stderr):
        logger.addHandler(handler)
    return logger


def _stream_handler(ident: str, stream: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(f"{ident}: %(message)s"))
    return handler


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


class _Discard:
    """Where a failed journal send goes when stderr already has the line."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass
