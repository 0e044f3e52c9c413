"""Power decisions: drive a node's power to a state through its BMC, and believe only what a
status read says.

Fencing is `power_off_verified`: hard power down, then poll Chassis Status until it reads
off. A command the BMC accepted proves nothing (reference ipmi.md, "What a safe IPMI fence
does"); UNKNOWN is not off; unreachable, refused credentials and an expired deadline are
failures, so the caller can escalate (never "probably off").
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol, TypeVar

from stonewall.clock import Clock, Deadline
from stonewall.power.errors import (
    BmcAuthError, BmcError, BmcTimeout, BmcUnreachable)
from stonewall.power.protocol import Operation, PowerState


class PowerClient(Protocol):
    """What the decisions need from a BMC adapter (stonewall.power.ipmi.IpmiClient)."""

    def power_state(self, deadline: Deadline) -> PowerState: ...

    def power_off(self, deadline: Deadline) -> None: ...

    def power_on(self, deadline: Deadline) -> None: ...


class PowerFailure(str, Enum):
    UNREACHABLE = "unreachable"  # the BMC never answered, or stopped answering
    AUTH = "auth"  # credentials or privilege refused: retrying cannot help
    TIMEOUT = "timeout"  # the deadline cut a call short
    NOT_REACHED = "not-reached"  # the BMC answered, but never reported the target state
    BMC_ERROR = "bmc-error"  # the BMC answered with an error


FAILURE_TEXT = {
    PowerFailure.UNREACHABLE: "BMC unreachable",
    PowerFailure.AUTH: "BMC refused the credentials or privilege",
    PowerFailure.TIMEOUT: "deadline passed during a BMC call",
    PowerFailure.NOT_REACHED: "BMC never reported {target}",
    PowerFailure.BMC_ERROR: "BMC error",
}


@dataclass(frozen=True)
class PowerAttempt:
    """One BMC call."""

    operation: Operation
    started: float  # seconds after the start of the whole operation
    duration: float
    state: PowerState | None = None  # what a successful status read said
    failure: PowerFailure | None = None
    answered: bool = True  # whether the BMC answered anything during this call
    detail: str = ""

    def describe(self) -> str:
        outcome = (self.failure.value if self.failure else
                   self.state.value if self.state else "accepted")
        return f"{self.operation.value} {outcome}"


@dataclass(frozen=True)
class PowerChangeResult:
    """What happened while driving the power to `target`."""

    target: PowerState
    verified: bool  # a status read reported `target`: the only success
    reason: PowerFailure | None  # why not, when not verified
    attempts: tuple[PowerAttempt, ...]
    started_at: float  # wall clock
    elapsed: float

    @property
    def command_accepted(self) -> bool:
        return any(a.operation is not Operation.STATUS and a.failure is None
                   for a in self.attempts)

    def summary(self) -> str:
        """One log line."""
        calls = f"{len(self.attempts)} BMC call{'s' * (len(self.attempts) != 1)}"
        if self.verified:
            how = "" if self.command_accepted else " (already, no command accepted)"
            return f"verified {self.target.value}{how} after {self.elapsed:.2f} s, {calls}"
        assert self.reason is not None
        why = FAILURE_TEXT[self.reason].format(target=self.target.value)
        last = self.attempts[-1] if self.attempts else None
        tail = f"; last: {last.describe()}: {last.detail}" if last and last.detail else ""
        return (f"not proven {self.target.value}: {why} after {self.elapsed:.2f} s, "
                f"{calls}{tail}")


PowerFenceResult = PowerChangeResult  # the result of power fencing: target OFF


def power_off_verified(client: PowerClient, deadline: Deadline, clock: Clock,
                       poll_interval: float) -> PowerFenceResult:
    """Hard power off, then poll until the BMC reports OFF; success only if it does before
    `deadline`."""
    return drive_power(client, PowerState.OFF, deadline, clock, poll_interval)


def power_on_verified(client: PowerClient, deadline: Deadline, clock: Clock,
                      poll_interval: float) -> PowerChangeResult:
    """Power on, then poll until the BMC reports ON (operator command; never part of a
    fence)."""
    return drive_power(client, PowerState.ON, deadline, clock, poll_interval)


def drive_power(client: PowerClient, target: PowerState, deadline: Deadline, clock: Clock,
                poll_interval: float) -> PowerChangeResult:
    """Send the command for `target` until the BMC accepts it, reading the status after each
    answered try and every `poll_interval` seconds, until a read reports `target` or
    `deadline`.

    The command goes first, without a status read before it: a failed read must not keep
    the command from being sent, and a BMC that refuses "off" when already off is fine,
    because the status read that follows reports OFF.
    """
    if target not in (PowerState.ON, PowerState.OFF):
        raise ValueError(f"cannot drive the power to {target.value}")
    if poll_interval <= 0:
        raise ValueError(f"poll_interval must be positive, not {poll_interval}")
    operation = Operation.OFF if target is PowerState.OFF else Operation.ON
    send = client.power_off if target is PowerState.OFF else client.power_on
    start, started_at = clock.monotonic(), clock.wall()
    attempts: list[PowerAttempt] = []

    def finish(verified: bool) -> PowerChangeResult:
        return PowerChangeResult(
            target=target, verified=verified,
            reason=None if verified else failure_reason(attempts),
            attempts=tuple(attempts), started_at=started_at,
            elapsed=clock.monotonic() - start)

    accepted = False
    while not deadline.expired():
        if not accepted:
            command = timed_call(operation, send, deadline, clock, start)
            attempts.append(command)
            accepted = command.failure is None
            if command.failure is PowerFailure.AUTH:
                break
        # After a command nobody answered, a status read is as futile as the command was.
        if (accepted or attempts[-1].answered) and not deadline.expired():
            status = timed_call(Operation.STATUS, client.power_state, deadline, clock, start)
            attempts.append(status)
            if status.state is target:
                return finish(verified=True)
            if status.failure is PowerFailure.AUTH:
                break
        clock.sleep(min(poll_interval, deadline.remaining()))
    return finish(verified=False)


def power_status(client: PowerClient, deadline: Deadline, clock: Clock) -> PowerAttempt:
    """One status read, as a record (operator command)."""
    return timed_call(Operation.STATUS, client.power_state, deadline, clock,
                      clock.monotonic())


Value = TypeVar("Value")


def timed_call(operation: Operation, call: Callable[[Deadline], Value], deadline: Deadline,
               clock: Clock, start: float) -> PowerAttempt:
    """Run one BMC call and record its outcome; BMC errors become a recorded failure."""
    began = clock.monotonic()
    try:
        value = call(deadline)
    except BmcError as error:
        failure, answered = classify(error)
        return PowerAttempt(operation, began - start, clock.monotonic() - began,
                            failure=failure, answered=answered, detail=str(error))
    state = value if isinstance(value, PowerState) else None
    detail = "the BMC answered without a usable power state" \
        if state is PowerState.UNKNOWN else ""
    return PowerAttempt(operation, began - start, clock.monotonic() - began, state=state,
                        detail=detail)


def classify(error: BmcError) -> tuple[PowerFailure, bool]:
    """The failure an error stands for, and whether the BMC had answered anything."""
    if isinstance(error, BmcAuthError):
        return PowerFailure.AUTH, True
    if isinstance(error, BmcUnreachable):
        return PowerFailure.UNREACHABLE, False
    if isinstance(error, BmcTimeout):
        return PowerFailure.TIMEOUT, error.answered
    return PowerFailure.BMC_ERROR, True


def failure_reason(attempts: list[PowerAttempt]) -> PowerFailure:
    """Why a drive failed: refused credentials first; a BMC that never answered at all is
    unreachable; one that answered status reads but never with the target "never reported"
    it (even if the deadline then cut a last read short); else the last call's failure."""
    if not attempts:
        return PowerFailure.TIMEOUT  # the deadline had passed before the first call
    if any(a.failure is PowerFailure.AUTH for a in attempts):
        return PowerFailure.AUTH
    if not any(a.answered for a in attempts):
        return PowerFailure.UNREACHABLE
    if any(a.state is not None for a in attempts):
        return PowerFailure.NOT_REACHED
    return attempts[-1].failure or PowerFailure.NOT_REACHED
