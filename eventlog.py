"""The event log: one JSON object per line, appended by every entry point that fences or
unfences (the Pacemaker agent, the DRBD handlers), read back by people and by `status`.

Each record is written with a single write() on a descriptor opened O_APPEND, then fsync'd:
O_APPEND makes the kernel place every write at the end of the file atomically with respect
to other appenders (POSIX write(2)), so records from handlers running at the same time never
interleave, and fsync makes a decision that was acted on survive the reset that may follow.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from stonewall.clock import SYSTEM_CLOCK, Clock

_LOG_MODE = 0o640  # records name nodes and LUNs, not secrets; group adm may read them
_DIRECTORY_MODE = 0o750


class EventLogError(OSError):
    """The record could not be written (the decision it records stands)."""


@dataclass(frozen=True)
class Event:
    """One decision: who did what to whom, and how it ended."""

    source: str  # the entry point: "fence_stonewall", "drbd fence-peer", ...
    actor: str | None  # the node that acted; None when it could not be established
    action: str  # "off", "on", "fence-peer", ...
    target: str | None  # the node acted upon, if any
    outcome: str  # "fenced", "unfenced", "failed", "refused", ...
    details: Mapping[str, Any] = field(default_factory=dict)  # per-LUN results, reasons


def event_record(event: Event, wall_time: float) -> dict[str, Any]:
    """The JSON object written for `event` at `wall_time` (seconds since the epoch)."""
    stamp = datetime.fromtimestamp(wall_time, tz=timezone.utc)
    return {
        "time": stamp.isoformat(timespec="milliseconds"),
        "source": event.source,
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "details": dict(event.details),
    }


class EventLog:
    """Appends events to the file `path` (created with its directory when missing)."""

    def __init__(self, path: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.clock = clock

    def append(self, event: Event) -> dict[str, Any]:
        """Write `event` as one line and fsync it; returns the record written.

        Raises EventLogError when the file cannot be opened or written."""
        record = event_record(event, self.clock.wall())
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, mode=_DIRECTORY_MODE, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                                 _LOG_MODE)
            try:
                written = os.write(descriptor, line)
                if written != len(line):
                    # A short write on a regular file means a full disk; the partial line
                    # stays, and readers skip it as unparsable.
                    raise OSError(f"short write: {written} of {len(line)} bytes")
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as err:
            raise EventLogError(f"cannot append to the event log {self.path}: "
                                f"{err.strerror or err}") from err
        return record


def read_events(path: str) -> list[dict[str, Any]]:
    """Every complete record in the log, oldest first; lines that do not parse are skipped.

    A missing file is an empty log."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
