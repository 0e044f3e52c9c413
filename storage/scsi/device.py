"""The two seams of storage/scsi.

- `CommandTransport` moves one CDB and its data to a LUN on one path and brings back the
  status, sense and data in. libiscsi (`iscsi.py`) implements it.
- `PrDevice` is one LUN seen through one path (one I_T nexus), with the persistent
  reservation operations. `commands.CommandPrDevice` builds it on any CommandTransport;
  `sg.SgPersistDevice` builds it on sg3_utils processes. Both raise the types in `errors`.

Keys are Python ints (8 bytes, big-endian on the wire). Every call takes a Deadline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from stonewall.clock import Deadline
from stonewall.storage.scsi.responses import Capabilities, FullStatus, Keys, Reservation
from stonewall.storage.scsi.types import ReservationType


@dataclass(frozen=True)
class CommandResult:
    """What came back for one CDB: SAM status byte, data in, raw sense bytes."""

    status: int
    data: bytes = b""
    sense: bytes = b""


class CommandTransport(Protocol):
    """Moves bytes; knows nothing of reservations."""

    @property
    def path_name(self) -> str:
        """Names the path in logs, e.g. 'iqn...:lun1 via 127.0.0.1:3261'."""

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult:
        """Send `cdb`; raise TransportError/CommandTimeout when its fate is unknown."""


class PrDevice(Protocol):
    """Persistent reservations of one LUN through one I_T nexus."""

    @property
    def path_name(self) -> str:
        """Names the path in logs."""

    def read_keys(self, deadline: Deadline) -> Keys: ...

    def read_reservation(self, deadline: Deadline) -> Reservation: ...

    def report_capabilities(self, deadline: Deadline) -> Capabilities: ...

    def read_full_status(self, deadline: Deadline) -> FullStatus:
        """Raises UnsupportedServiceAction where the target lacks it (tgtd does)."""

    def register(self, key: int, new_key: int, deadline: Deadline, *,
                 ignore_existing: bool = False, all_tg_pt: bool = False,
                 aptpl: bool = False) -> None:
        """REGISTER (`key` -> `new_key`; new_key 0 unregisters), or REGISTER AND IGNORE
        EXISTING KEY when `ignore_existing` (then `key` is not checked)."""

    def reserve(self, key: int, rtype: ReservationType, deadline: Deadline) -> None: ...

    def release(self, key: int, rtype: ReservationType, deadline: Deadline) -> None: ...

    def clear(self, key: int, deadline: Deadline) -> None: ...

    def preempt(self, key: int, victim_key: int, rtype: ReservationType, deadline: Deadline,
                *, abort: bool = False) -> None:
        """PREEMPT (or PREEMPT AND ABORT when `abort`) `victim_key`, acting with `key`.
        PREEMPT AND ABORT unsupported -> UnsupportedServiceAction; the caller decides."""
