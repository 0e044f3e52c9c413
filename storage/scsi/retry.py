"""The retry policy, in one place.

- UNIT ATTENTION: the command was not executed (SAM-5); the condition is reported once per
  nexus, so re-issue at once, a bounded number of times, and report each one.
- BUSY / TASK SET FULL: back off (doubling) and re-issue, within the deadline.
- Nothing else is retried: a RESERVATION CONFLICT, an ILLEGAL REQUEST or a transport error whose
  command fate is unknown goes back to the caller, who decides (and verifies).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, TypeVar

from stonewall.clock import Clock, Deadline
from stonewall.storage.scsi.errors import CommandTimeout, TargetBusy, UnitAttention
from stonewall.storage.scsi.sense import Sense
from stonewall.storage.scsi.steps import Blocking, Steps, blocking, run_one

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    unit_attention_retries: int = 5
    busy_first_backoff: float = 0.01
    busy_max_backoff: float = 0.5


DEFAULT_POLICY = RetryPolicy()


@dataclass
class RetryReport:
    """What the retries saw: the UNIT ATTENTIONs consumed and the BUSY back-offs."""

    unit_attentions: list[Sense] = field(default_factory=list)
    busy_backoffs: int = 0


def run_with_retries(call: Callable[[Deadline], T], deadline: Deadline, clock: Clock,
                     policy: RetryPolicy = DEFAULT_POLICY,
                     report: RetryReport | None = None) -> T:
    """Run `call(deadline)` under the policy; raise the last error when it gives up."""
    return run_one(retrying(lambda: blocking(call), deadline, clock, policy, report), deadline)


def retrying(attempt: Callable[[], Steps[T]], deadline: Deadline, clock: Clock,
             policy: RetryPolicy = DEFAULT_POLICY,
             report: RetryReport | None = None) -> Steps[T]:
    """The operation `attempt()` under the policy, as an operation itself (steps.py): each
    re-issue is a fresh `attempt()`, each back-off a blocking sleep on `clock`."""
    report = report if report is not None else RetryReport()
    backoff = policy.busy_first_backoff
    unit_attentions = 0
    while True:
        try:
            return (yield from attempt())
        except UnitAttention as exc:
            unit_attentions += 1
            if unit_attentions > policy.unit_attention_retries:
                raise
            if exc.sense is not None:
                report.unit_attentions.append(exc.sense)
        except TargetBusy as exc:
            pause = min(backoff, policy.busy_max_backoff)
            if deadline.remaining() <= pause:
                raise CommandTimeout(f"{exc} and the deadline leaves no time to re-issue",
                                     exc.sense) from exc
            report.busy_backoffs += 1
            yield Blocking(lambda _deadline, seconds=pause: clock.sleep(seconds))
            backoff *= 2
