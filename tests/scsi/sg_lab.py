"""Helpers for the sg transport tests: the recorded runs of sg3_utils (fixtures), and a
nexus whose target answers what the test scripts (for the statuses and failures tgtd will
not produce on request). The sg3_utils binaries, the shim and the nexus server are real."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from stonewall.clock import Deadline
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import (
    CommandTimeout, IllegalRequest, NotReady, ReservationConflict, ScsiError, TargetBusy,
    TransportError, UnitAttention, UnsupportedServiceAction)
from stonewall.storage.scsi.sense import SenseKey, encode_fixed_sense

FIXTURES = Path(__file__).parent / "fixtures" / "sg3_utils"


@dataclass(frozen=True)
class Run:
    """One recorded run: the command line, what it printed, its exit status."""

    command: str
    stdout: str
    stderr: str
    exit: int
    target: str = ""


def load_runs(name: str) -> list[Run]:
    """The runs of a fixture file. Files without "--- stdout"/"--- stderr" sections (the
    reference session) hold stdout and stderr together: a failed run's text counts as
    stderr, a successful run's as stdout."""
    runs: list[Run] = []
    command, target, section, text = "", "", "stdout", {"stdout": [], "stderr": []}
    for line in (FIXTURES / name).read_text().splitlines(keepends=True):
        if line.startswith("$ "):
            command, target, section = line[2:].strip(), "", "stdout"
            text = {"stdout": [], "stderr": []}
        elif line.startswith("# target: "):
            target = line[len("# target: "):].strip()
        elif line.startswith("#") and not command:
            continue
        elif line.strip() in ("--- stdout", "--- stderr"):
            section = line.strip()[4:]
        elif line.startswith("[exit "):
            status = int(line.strip()[6:-1])
            stdout, stderr = "".join(text["stdout"]), "".join(text["stderr"])
            if status != 0 and not stderr:
                stdout, stderr = "", stdout
            runs.append(Run(command, stdout, stderr, status, target))
            command = ""
        elif command:
            text[section].append(line)
    return runs


def run_of(name: str, command: str, target: str = "") -> Run:
    """The one run of `name` with this command line (and target note)."""
    found = [r for r in load_runs(name) if r.command == command and target in r.target]
    assert len(found) == 1, f"{len(found)} runs of {command!r} ({target!r}) in {name}"
    return found[0]


def check_condition(key: SenseKey, asc: int, ascq: int) -> CommandResult:
    return CommandResult(0x02, b"", encode_fixed_sense(key, asc, ascq))


@dataclass
class ScriptedTarget:
    """A nexus backend whose answer the test sets: a CommandResult, or an exception for a
    transport failure. It records every CDB it was sent."""

    answer: CommandResult | ScsiError = field(default_factory=lambda: CommandResult(0x00))
    delay: float = 0.0
    cdbs: list[bytes] = field(default_factory=list)
    data_out: list[bytes | None] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult:
        self.cdbs.append(cdb)
        self.data_out.append(data_out)
        if self.delay:
            self._stop.wait(min(self.delay, deadline.remaining()))
        if isinstance(self.answer, ScsiError):
            raise self.answer
        return self.answer

    def close(self) -> None:
        self._stop.set()  # let a delayed answer go when the server stops


@dataclass
class ScriptedNexus:
    """An in-process nexus server for one ScriptedTarget, seen as a fake sg device and a
    fake block device (same target)."""

    target: ScriptedTarget
    environment: dict[str, str]
    sg_path: str
    block_path: str
    unserved_path: str  # in the map, but its nexus socket has no server


# What the target (or the nexus) answers, and the exception type every SG transport turns it
# into: the one table the sg_persist and the SG_IO error tests both run.
PR_OUTCOMES = [
    (check_condition(SenseKey.UNIT_ATTENTION, 0x2A, 0x03), UnitAttention),
    (check_condition(SenseKey.ILLEGAL_REQUEST, 0x24, 0x00), UnsupportedServiceAction),
    (check_condition(SenseKey.ILLEGAL_REQUEST, 0x26, 0x00), IllegalRequest),
    (check_condition(SenseKey.NOT_READY, 0x04, 0x01), NotReady),
    (CommandResult(0x08), TargetBusy),
    (CommandResult(0x28), TargetBusy),
    (CommandResult(0x18), ReservationConflict),
    (TransportError("connection lost"), TransportError),
    (CommandTimeout("no answer"), CommandTimeout),
]
