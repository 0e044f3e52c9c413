"""One exception type per outcome a caller must tell apart.

Callers branch on the type, never on the message. Every error carries the decoded sense
(where there was one) so that logs can show exactly what the target said.
"""
from __future__ import annotations

from stonewall.storage.scsi.sense import Sense


class ScsiError(Exception):
    """Base class: the command did not complete with GOOD status."""

    def __init__(self, message: str, sense: Sense | None = None) -> None:
        super().__init__(message)
        self.sense = sense


class ReservationConflict(ScsiError):
    """Status RESERVATION CONFLICT: this nexus may not do that (e.g. its key was preempted)."""


class UnitAttention(ScsiError):
    """CHECK CONDITION / UNIT ATTENTION: the command was not executed; it may be re-issued."""


class IllegalRequest(ScsiError):
    """CHECK CONDITION / ILLEGAL REQUEST (other than an unsupported service action)."""


class UnsupportedServiceAction(IllegalRequest):
    """ILLEGAL REQUEST 20/00 or 24/00 against a command or service action the target lacks,
    e.g. tgtd's answer to PREEMPT AND ABORT and READ FULL STATUS."""


class NotReady(ScsiError):
    """CHECK CONDITION / NOT READY."""


class TargetBusy(ScsiError):
    """Status BUSY or TASK SET FULL: back off and re-issue."""


class CheckCondition(ScsiError):
    """Any other CHECK CONDITION (MEDIUM ERROR, ABORTED COMMAND, ...)."""


class TransportError(ScsiError):
    """The command's fate is unknown: connection lost, login failed, process died.

    A PR OUT that ends this way may or may not have been executed; callers verify."""


class CommandTimeout(TransportError):
    """The command did not complete before its deadline."""


class DeviceError(ScsiError):
    """The device cannot be used at all: missing, not a SCSI device, no permission, or the
    tool that reaches it is not installed."""


class TruncatedResponse(ScsiError):
    """A response was shorter than its own length fields say and could not be re-read whole."""
