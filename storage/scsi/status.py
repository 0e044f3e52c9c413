"""From a command's status and sense to one exception type: the only place that does it."""
from __future__ import annotations

from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import (
    CheckCondition, IllegalRequest, NotReady, ReservationConflict, ScsiError, TargetBusy,
    UnitAttention, UnsupportedServiceAction)
from stonewall.storage.scsi.sense import Sense, SenseFormatError, SenseKey, decode_sense
from stonewall.storage.scsi.types import ScsiStatus

# ILLEGAL REQUEST codes meaning "this target lacks the command or service action":
# 20/00 INVALID COMMAND OPERATION CODE; 24/00 INVALID FIELD IN CDB (tgtd's answer to
# PREEMPT AND ABORT and READ FULL STATUS, measured).
_UNSUPPORTED = {(0x20, 0x00), (0x24, 0x00)}


def raise_for_status(result: CommandResult, what: str) -> None:
    """Return if `result` is GOOD, else raise the exception type its status/sense means."""
    status = result.status
    if status == ScsiStatus.GOOD:
        return
    if status == ScsiStatus.RESERVATION_CONFLICT:
        raise ReservationConflict(f"{what}: RESERVATION CONFLICT")
    if status in (ScsiStatus.BUSY, ScsiStatus.TASK_SET_FULL):
        raise TargetBusy(f"{what}: {ScsiStatus(status).name.replace('_', ' ')}")
    if status != ScsiStatus.CHECK_CONDITION:
        raise ScsiError(f"{what}: unexpected SCSI status 0x{status:02x}")
    try:
        sense = decode_sense(result.sense)
    except (SenseFormatError, ValueError) as exc:
        raise CheckCondition(f"{what}: CHECK CONDITION with unreadable sense ({exc})") from exc
    raise exception_for_sense(sense, what)


def exception_for_sense(sense: Sense, what: str) -> ScsiError:
    """The exception for a CHECK CONDITION with `sense`."""
    message = f"{what}: {sense}"
    if sense.key == SenseKey.UNIT_ATTENTION:
        return UnitAttention(message, sense)
    if sense.key == SenseKey.ILLEGAL_REQUEST:
        if (sense.asc, sense.ascq) in _UNSUPPORTED:
            return UnsupportedServiceAction(message, sense)
        return IllegalRequest(message, sense)
    if sense.key == SenseKey.NOT_READY:
        return NotReady(message, sense)
    return CheckCondition(message, sense)
