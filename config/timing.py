"""The self-fencing timing model: the bounds a peer may rely on, and the rules that make
them hold (DESIGN section 5; sanlock's timeouts.h argument, written for our loop).

Symbols (WatchdogSettings): a check of our key starts every `interval` and must finish
within `io_deadline` (a later answer does not count); the loop pets the watchdog only while
the newest good ("OWNED") check started less than `check_deadline` ago; after `grace`
without a good check it stops the guests and stops petting for good; the device resets
the node `timeout` after the last pet; `margin` covers scheduling and clock slack.

Why the bounds hold. A check proves ownership at its START time or later (the target
answers after we ask), so "the last good check" below means its start time L. A peer's
PREEMPT at time P makes every check that reaches the target after P answer "key gone";
so L <= P. The last pet happens before L + min(grace, check_deadline), so the reset comes
by L + check_deadline + timeout <= P + check_deadline + timeout, whatever failed (storage,
checker thread, a hung I/O). A survivor may therefore treat the node as reset
T_safe = check_deadline + timeout + margin after its PREEMPT.

One case widens this: the kernel pings once when the device is closed without the magic
character (watchdog_dev.c), so if the service process dies AFTER it stopped petting, the
reset comes up to `timeout` after its death. The service therefore never exits while
self-fencing (docs/watchdog.md: SendSIGKILL=no, systemd keepalives continue).
"""
from __future__ import annotations

from dataclasses import dataclass

from stonewall.config.model import WatchdogSettings


def t_safe(settings: WatchdogSettings) -> float:
    """Seconds after a PREEMPT (or after the node's last possible good check) by which the
    node has been reset: check_deadline + timeout + margin."""
    return settings.check_deadline + settings.timeout + settings.margin


def petting_limit(settings: WatchdogSettings) -> float:
    """Age of the newest good check at which petting stops (and self-fencing starts)."""
    return min(settings.grace, settings.check_deadline)


def pet_period(settings: WatchdogSettings) -> float:
    """How often the petting loop wakes: often enough that the device never runs out while
    checks are good (a quarter of its timeout), and at least once a second so that the
    stop of petting follows the check's age closely."""
    return min(1.0, settings.timeout / 4)


def _s(seconds: float) -> str:
    return f"{seconds:g}s"


def timing_problems(interval: float, io_deadline: float, check_deadline: float,
                    timeout: float, grace: float, margin: float) -> list[str]:
    """Human messages, each naming the numbers, for every rule the settings break; empty
    when they are sound. Rules: all positive (margin may be 0);
    interval + io_deadline < check_deadline < timeout; interval + io_deadline < grace <=
    check_deadline."""
    named = {"interval": interval, "io_deadline": io_deadline,
             "check_deadline": check_deadline, "timeout": timeout, "grace": grace}
    problems = [f"{name} ({_s(value)}) must be greater than 0"
                for name, value in named.items() if not value > 0]
    if not margin >= 0:
        problems.append(f"margin ({_s(margin)}) must not be negative")
    if problems:
        return problems
    cycle = interval + io_deadline
    if not cycle < check_deadline:
        problems.append(
            f"interval ({_s(interval)}) + io_deadline ({_s(io_deadline)}) = {_s(cycle)} must be "
            f"less than check_deadline ({_s(check_deadline)}): a healthy check that starts "
            "on time and takes its whole io_deadline would stop the petting")
    if not check_deadline < timeout:
        problems.append(f"check_deadline ({_s(check_deadline)}) must be less than "
                        f"timeout ({_s(timeout)})")
    if not cycle < grace:
        problems.append(
            f"grace ({_s(grace)}) must be greater than interval ({_s(interval)}) + "
            f"io_deadline ({_s(io_deadline)}) = {_s(cycle)}: one slow but healthy check "
            "would self-fence the node")
    if not grace <= check_deadline:
        problems.append(
            f"grace ({_s(grace)}) must not exceed check_deadline ({_s(check_deadline)}): "
            "petting stops at check_deadline, so guests would be stopped only after that")
    return problems


def settings_problems(settings: WatchdogSettings) -> list[str]:
    """timing_problems() for a WatchdogSettings."""
    return timing_problems(settings.interval, settings.io_deadline, settings.check_deadline,
                           settings.timeout, settings.grace, settings.margin)


@dataclass(frozen=True)
class TimingRow:
    """One line of the timing table: from `start` to `end` takes at most `bound` seconds."""

    start: str
    end: str
    formula: str
    bound: float


def timing_table(settings: WatchdogSettings) -> list[TimingRow]:
    """Worst cases from the events a peer reasons about to what the node does."""
    i, io, cd, to = settings.interval, settings.io_deadline, settings.check_deadline, \
        settings.timeout
    limit = petting_limit(settings)
    # The check that first reaches the target after the PREEMPT starts at most
    # max(interval, io_deadline) after the last good one (checks never overlap) and
    # answers within io_deadline; the age rule caps it in any case.
    detect = min(max(i, io) + io, limit)
    return [
        TimingRow("preemption (storage reachable)", "petting stops, guest stop begins",
                  "min(max(interval, io_deadline) + io_deadline, grace, check_deadline)",
                  detect),
        TimingRow("preemption (storage reachable)", "node reset",
                  "the line above + timeout", detect + to),
        TimingRow("last good check", "petting stops, guest stop begins",
                  "min(grace, check_deadline)", limit),
        TimingRow("last good check", "node reset", "check_deadline + timeout", cd + to),
        TimingRow("preemption (any failure)", "node reset", "check_deadline + timeout",
                  cd + to),
        TimingRow("preemption", "peer may take over (T_safe)",
                  "check_deadline + timeout + margin", t_safe(settings)),
        TimingRow("service dies without magic close", "node reset", "timeout", to),
    ]


def format_timing_table(rows: list[TimingRow]) -> str:
    """The table as aligned text (for `stonewall watchdog timing` and the docs)."""
    header = ("from", "to", "at most", "formula")
    body = [(r.start, r.end, _s(r.bound), r.formula) for r in rows]
    widths = [max(len(cells[c]) for cells in [header, *body]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()
             for cells in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
