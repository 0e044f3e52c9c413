"""SPC-4 persistent reservation values: service actions, reservation types, statuses."""
from __future__ import annotations

from enum import IntEnum


class PrInAction(IntEnum):
    """PERSISTENT RESERVE IN service actions (SPC-4 6.15)."""

    READ_KEYS = 0x00
    READ_RESERVATION = 0x01
    REPORT_CAPABILITIES = 0x02
    READ_FULL_STATUS = 0x03


class PrOutAction(IntEnum):
    """PERSISTENT RESERVE OUT service actions (SPC-4 6.16)."""

    REGISTER = 0x00
    RESERVE = 0x01
    RELEASE = 0x02
    CLEAR = 0x03
    PREEMPT = 0x04
    PREEMPT_AND_ABORT = 0x05
    REGISTER_AND_IGNORE_EXISTING_KEY = 0x06
    REGISTER_AND_MOVE = 0x07


class ReservationType(IntEnum):
    """Persistent reservation types (SPC-4 table 169); 0, 2 and 4 are obsolete."""

    WRITE_EXCLUSIVE = 0x1
    EXCLUSIVE_ACCESS = 0x3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 0x5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 0x6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 0x7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 0x8

    @property
    def label(self) -> str:
        """The name SPC-4 and sg_persist use, e.g. 'Write Exclusive, registrants only'."""
        return _TYPE_LABELS[self]

    @property
    def short(self) -> str:
        """A short name for tables and config: we, ea, we-ro, ea-ro, we-ar, ea-ar."""
        return _TYPE_SHORT[self]

    @property
    def single_holder(self) -> bool:
        """One I_T nexus holds it (Write Exclusive, Exclusive Access): every other nexus,
        even one registered with the same key, gets RESERVATION CONFLICT on a write
        (SPC-4 table 169; measured on tgtd, reference/scsi-pr.md "Which nexus may write").
        Under the registrants-only and all-registrants types every registered nexus writes."""
        return self in (ReservationType.WRITE_EXCLUSIVE, ReservationType.EXCLUSIVE_ACCESS)

    @property
    def all_registrants(self) -> bool:
        """Every registrant is a reservation holder (types 7 and 8, SPC-4 5.14.6)."""
        return self in (ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS,
                        ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS)

    @classmethod
    def parse(cls, text: str) -> "ReservationType":
        """A type from its short name, its number or its SPC-4 label."""
        wanted = text.strip().lower()
        for rtype in cls:
            if wanted in (rtype.short, str(int(rtype)), rtype.label.lower(), rtype.name.lower()):
                return rtype
        raise ValueError(f"unknown reservation type {text!r}; expected one of "
                         + ", ".join(t.short for t in cls))


_TYPE_LABELS = {
    ReservationType.WRITE_EXCLUSIVE: "Write Exclusive",
    ReservationType.EXCLUSIVE_ACCESS: "Exclusive Access",
    ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: "Write Exclusive, registrants only",
    ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: "Exclusive Access, registrants only",
    ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: "Write Exclusive, all registrants",
    ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: "Exclusive Access, all registrants",
}

_TYPE_SHORT = {
    ReservationType.WRITE_EXCLUSIVE: "we",
    ReservationType.EXCLUSIVE_ACCESS: "ea",
    ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY: "we-ro",
    ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: "ea-ro",
    ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS: "we-ar",
    ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS: "ea-ar",
}


class ScsiStatus(IntEnum):
    """SAM-5 status codes."""

    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


class Scope(IntEnum):
    LU_SCOPE = 0x0
