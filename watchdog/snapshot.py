"""The watchdog service's status file, `<runtime_dir>/watchdog.json`: written by the service
every interval, read by `stonewall watchdog status`.

Times: `*_wall` are epoch seconds (for people), `*_monotonic` are CLOCK_MONOTONIC seconds,
which every process on the machine shares, so a reader computes ages without trusting the
wall clock. The file is replaced atomically (write, fsync-free rename): a reader sees the
previous or the next snapshot, never half of one.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

STATUS_FILE = "watchdog.json"
FORMAT_VERSION = 1
# A snapshot older than this many intervals means the service stopped writing: it is not
# running, or its main thread is stuck (the petter may still pet: the device decides).
STALE_AFTER_INTERVALS = 5


def status_path(runtime_dir: str) -> Path:
    """Where the service of this runtime directory writes its snapshot."""
    return Path(runtime_dir) / STATUS_FILE


class SnapshotMissing(Exception):
    """No status file: the service never ran with this runtime directory."""


class SnapshotUnreadable(Exception):
    """The status file exists but is not a snapshot this version understands."""


def write_snapshot(path: Path, snapshot: dict[str, Any]) -> None:
    """Replace the status file with `snapshot` (mode 0600: it names keys and paths)."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump({"version": FORMAT_VERSION, **snapshot}, out, indent=1)
    os.replace(temporary, path)


def read_snapshot(path: Path) -> dict[str, Any]:
    """The snapshot in `path`; SnapshotMissing or SnapshotUnreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotMissing(f"{path} does not exist: the watchdog service has not run "
                              "with this configuration's runtime_dir") from None
    except (OSError, ValueError) as exc:
        raise SnapshotUnreadable(f"{path}: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or not isinstance(
            data.get("watchdog"), dict) or not isinstance(data.get("service"), dict):
        raise SnapshotUnreadable(f"{path}: not a version {FORMAT_VERSION} watchdog snapshot")
    return data


class Health(str, Enum):
    """The reader's verdict on a snapshot."""

    OK = "ok"  # the service runs and pets under a fresh proof
    ATTENTION = "attention"  # self-fencing, stopped, not yet petting, or the service is gone


@dataclass(frozen=True)
class Reading:
    """A snapshot judged at `now_monotonic` (ages recomputed from the shared clock)."""

    state: str
    health: Health
    service_running: bool
    snapshot_age: float
    last_check_age: float | None
    margin_left: float | None
    why: str  # one line: what needs attention, or "petting"


def judge_snapshot(data: dict[str, Any], now_monotonic: float, pid_alive: bool) -> Reading:
    """Recompute the ages in `data` for now and say whether it needs attention."""
    watchdog, service = data["watchdog"], data["service"]
    state = str(watchdog.get("state"))
    snapshot_age = now_monotonic - float(service["written_monotonic"])
    interval = float(service["interval"])
    last = watchdog.get("last_check_monotonic")
    age = None if last is None else now_monotonic - float(last)
    margin = None if age is None else float(watchdog["petting_limit"]) - age
    running = pid_alive and snapshot_age < STALE_AFTER_INTERVALS * interval
    if not running:
        why = (f"the service (pid {service.get('pid')}) is not running or stopped writing its "
               f"status {snapshot_age:.1f}s ago")
    elif state == "self-fencing":
        why = f"SELF-FENCING: {watchdog.get('self_fencing_reason')}"
    elif state != "petting":
        why = f"state {state}"
    elif margin is not None and margin <= 0:
        why = f"no good check for {age:.1f}s: petting stops"
    else:
        why = "petting"
    health = Health.OK if why == "petting" else Health.ATTENTION
    return Reading(state, health, running, snapshot_age, age, margin, why)


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists (under any user)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_reading(runtime_dir: str) -> tuple[dict[str, Any], Reading]:
    """The service's snapshot judged now. Raises SnapshotMissing / SnapshotUnreadable (also
    for a damaged file)."""
    data = read_snapshot(status_path(runtime_dir))
    try:
        return data, judge_snapshot(data, time.monotonic(),
                                    pid_alive(data["service"].get("pid")))
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotUnreadable(f"damaged status file: {exc!r}") from exc


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def render_text(data: dict[str, Any], reading: Reading) -> str:
    """`stonewall watchdog status` as aligned `name: value` lines."""
    watchdog, service = data["watchdog"], data["service"]
    holder = data.get("holder") or {}
    paths = holder.get("paths") or []
    rows = [
        ("node", f"{service.get('node')} (pid {service.get('pid')}, "
                 f"{'running' if reading.service_running else 'NOT running'})"),
        ("state", watchdog.get("state")),
        ("verdict", f"{reading.health.value}: {reading.why}"),
        ("device", f"{watchdog.get('device')} (timeout {watchdog.get('timeout')}s)"),
        ("last check", watchdog.get("last_result") or "-"),
        ("last good check age", _seconds(reading.last_check_age)),
        ("margin left", f"{_seconds(reading.margin_left)} of "
                        f"{watchdog.get('petting_limit')}s"),
        ("checker alive", watchdog.get("checker_alive")),
        ("paths registered", f"{sum(1 for p in paths if p.get('registered'))}/{len(paths)}"),
        ("fenced in this boot", holder.get("fenced_in_this_boot")),
        ("stop requested", service.get("stop_requested")),
        ("snapshot age", _seconds(reading.snapshot_age)),
    ]
    for name in ("self_fencing_reason", "guest_stop_error", "keepalive_error"):
        if watchdog.get(name):
            rows.append((name.replace("_", " "), watchdog[name]))
    if service.get("guest_stop"):
        stop = service["guest_stop"]
        rows.append(("guests destroyed", ", ".join(stop["destroyed"]) or "none"))
        if stop["failed"]:
            rows.append(("guests NOT stopped", ", ".join(
                f"{name} ({error})" for name, error in stop["failed"].items())))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in rows)
