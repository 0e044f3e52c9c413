"""Drive one fence device through its fence-agents program, as pacemaker-fenced does, and
believe only what a status read says.

The fence-agent API (reference/pacemaker.md; ClusterLabs' FenceAgentAPI): options arrive as
`name=value` lines on stdin, so a password never shows in `ps`; `action=off` exits 0 when the
device accepted and reached off; `action=status` exits 0 for on, 2 for off, and anything else
for "cannot tell". A device counts as off only when `off` succeeded and a `status` that
followed exited 2: an agent that says "off" but whose status read says on, or nothing usable,
has proven nothing. Every call has a hard deadline that kills the agent's process group
(stonewall.process): a hung agent (a PDU that stopped answering mid-login) cannot hold the
fence. Nothing here ever sends `on` as part of a fence.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from stonewall.clock import Clock, Deadline
from stonewall.config.model import AgentDevice
from stonewall.process import Completed, ProcessError, run_process

AGENT_PACKAGE = "fence-agents"  # Debian's package of the ClusterLabs agents
AGENT_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"  # where Debian installs them, and their tools
STATUS_ON, STATUS_OFF = 0, 2  # the fence-agent API's exit codes for `status`
# The off call leaves this share of the budget to the status read after it.
_STATUS_SHARE = 0.3
_TAIL = 800  # characters of an agent's output kept for logs and the event log
REDACTED = "<secret>"

Runner = Callable[..., Completed]  # stonewall.process.run_process


class AgentNotInstalled(Exception):
    """The agent's program is not on this node."""

    def __init__(self, agent: str) -> None:
        super().__init__(f"fence agent {agent} is not installed: install the Debian package "
                         f"{AGENT_PACKAGE} (apt-get install {AGENT_PACKAGE})")
        self.agent = agent


class AgentAction(str, Enum):
    OFF = "off"
    ON = "on"
    STATUS = "status"


class DeviceState(str, Enum):
    """What one status read proved."""

    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"  # any other exit, a kill at the deadline: not off


class DeviceFailure(str, Enum):
    NOT_INSTALLED = "not-installed"
    NO_SECRET = "no-secret"  # the configured secret could not be read
    TIMEOUT = "timeout"  # the deadline killed the agent
    REFUSED = "refused"  # the action's exit status says it failed
    NOT_REACHED = "not-reached"  # the action succeeded, but the status read disagrees


def agent_program(agent: str, path: str = AGENT_PATH) -> str:
    """The agent's executable; AgentNotInstalled when there is none."""
    found = agent if os.path.isabs(agent) and os.access(agent, os.X_OK) else \
        None if os.path.isabs(agent) else shutil.which(agent, path=path)
    if found is None:
        raise AgentNotInstalled(agent)
    return found


@dataclass(frozen=True)
class AgentCall:
    """One run of the agent."""

    action: AgentAction
    started: float  # seconds after the start of the device's fence
    duration: float
    returncode: int | None  # None: killed at its deadline
    stderr: str  # the last lines, secret redacted
    stdout: str

    @property
    def state(self) -> DeviceState:
        """For a status call: what its exit status proves."""
        if self.returncode == STATUS_OFF and "Status: ON" not in self.stdout:
            return DeviceState.OFF
        if self.returncode == STATUS_ON and "Status: OFF" not in self.stdout:
            return DeviceState.ON
        return DeviceState.UNKNOWN

    def describe(self) -> str:
        if self.returncode is None:
            outcome = f"killed at its deadline after {self.duration:.2f} s"
        elif self.action is AgentAction.STATUS:
            outcome = f"{self.state.value} (exit {self.returncode})"
        else:
            outcome = "done" if self.returncode == 0 else f"failed (exit {self.returncode})"
        said = cause_line(self.stderr) or cause_line(self.stdout)
        return f"{self.action.value} {outcome}" + (f": {said}" if said and (
            self.returncode != 0 or self.action is AgentAction.STATUS and
            self.state is DeviceState.UNKNOWN) else "")


@dataclass(frozen=True)
class DeviceResult:
    """What driving one device to `target` did and proved."""

    device: str  # AgentDevice.label
    target: AgentAction
    verified: bool
    failure: DeviceFailure | None
    calls: tuple[AgentCall, ...]
    elapsed: float
    detail: str = ""  # why nothing could be run

    def summary(self) -> str:
        calls = "; ".join(call.describe() for call in self.calls)
        if self.verified:
            return f"{self.device} verified {self.target.value} in {self.elapsed:.2f} s ({calls})"
        assert self.failure is not None
        why = self.detail or calls or "no call made"
        return (f"{self.device} NOT proven {self.target.value} ({self.failure.value}) after "
                f"{self.elapsed:.2f} s: {why}")


# fence-agents log "2026-01-01 10:00:00,123 ERROR: <cause>" and then a generic
# "Please use '-h' for usage": the first ERROR line is the one that says what went wrong.
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ ")


def cause_line(text: str) -> str:
    """The line of an agent's output that says most: its first ERROR, else its last line."""
    lines = [_LOG_PREFIX.sub("", line.strip()) for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return errors[0] if errors else lines[-1] if lines else ""


def stdin_for(device: AgentDevice, action: AgentAction, secret: str | None) -> bytes:
    """The agent's input: its options, the secret and the action, one `name=value` a line."""
    lines = [f"{name}={value}" for name, value in device.options]
    if secret is not None:
        lines.append(f"{device.secret_option}={secret}")
    lines.append(f"action={action.value}")
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"{device.label}: an option value holds a line break")
    return ("\n".join(lines) + "\n").encode()


def drive_device(device: AgentDevice, target: AgentAction, secret: str | None,
                 deadline: Deadline, clock: Clock, runner: Runner = run_process,
                 path: str = AGENT_PATH) -> DeviceResult:
    """Run `target` (off, or on for an operator's unfence), then `status`; verified only
    when the action exited 0 and the status read then proved `target`."""
    if target is AgentAction.STATUS:
        raise ValueError("status is read, not driven")
    start = clock.monotonic()
    calls: list[AgentCall] = []

    def finish(failure: DeviceFailure | None, detail: str = "") -> DeviceResult:
        return DeviceResult(device.label, target, failure is None, failure, tuple(calls),
                            clock.monotonic() - start, detail)

    try:
        program = agent_program(device.agent, path)
    except AgentNotInstalled as err:
        return finish(DeviceFailure.NOT_INSTALLED, str(err))
    environment = {"PATH": path, "LC_ALL": "C.UTF-8"}

    def call(action: AgentAction, until: Deadline) -> AgentCall:
        began = clock.monotonic()
        try:
            done = runner([program], until, env=environment,
                          stdin=stdin_for(device, action, secret))
        except ProcessError as err:
            return AgentCall(action, began - start, clock.monotonic() - began, 127,
                             redact(str(err), secret), "")
        return AgentCall(action, began - start, done.elapsed, done.returncode,
                         redact(done.text("stderr"), secret)[-_TAIL:],
                         redact(done.text("stdout"), secret)[-_TAIL:])

    action_deadline = deadline.earlier(deadline.remaining() * (1 - _STATUS_SHARE))
    acted = call(target, action_deadline)
    calls.append(acted)
    if acted.returncode is None:
        return finish(DeviceFailure.TIMEOUT)
    if acted.returncode != 0:
        return finish(DeviceFailure.REFUSED)
    status = call(AgentAction.STATUS, deadline)
    calls.append(status)
    if status.returncode is None:
        return finish(DeviceFailure.TIMEOUT)
    wanted = DeviceState.OFF if target is AgentAction.OFF else DeviceState.ON
    return finish(None if status.state is wanted else DeviceFailure.NOT_REACHED)


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of the secret replaced (an agent may echo its input)."""
    return text.replace(secret, REDACTED) if secret else text

