"""What this node's holder found when it preempted a peer: on which LUNs the victim's key was
registered. A node is registered on a guest's LUNs only while the guest runs there, or while
it migrates there (DESIGN sections 3, 6 and 10), so these LUNs name the guests the victim ran,
wherever their `home` is. After the fence the key is gone from the SAN, so this record is the
evidence left; `vm takeover` reads it through the holder's socket (op `fence_record`).

- One record per victim, in `<state_dir>/fence-records.json` (written atomically): every
  preempt of that victim merges into it (a retry, the after-power preempt, a second entry
  point), so a LUN counts as held when any of them found the key there.
- A new record starts when the victim's key is found again on an arbiter LUN on which the
  record saw it verified gone: a fenced key comes back only when the victim joined again (a
  new boot of it), so the old record describes an earlier life of it.
- A record answers only in the boot of this node in which it was made: across a reboot of
  this node the cluster went on without it (the peer may have rejoined and been fenced by
  another node), so an older record may describe another fence.
- A record that cannot be written never fails the fence: the fence is what counts, and the
  takeover then finds no record and says so (one line in the journal here). No fsync: a record
  lost in a crash of this node would not be answered after it anyway (a new boot).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stonewall import wire
from stonewall.clock import Clock
from stonewall.storage.reports import PreemptReport, VerifyReport

LOG = logging.getLogger("stonewall.holder")


class FenceRecordsUnreadable(Exception):
    """The record file exists but is not a list of records (damaged, or another version)."""


@dataclass(frozen=True)
class PreemptRecord:
    """This node's preempts of `victim` (key `key`) in boot `boot_id` of this node."""

    victim: str
    key: int
    boot_id: str
    first_at: float  # wall clock of the first preempt in the record
    last_at: float  # wall clock of the newest one merged in
    held: tuple[str, ...]  # LUNs whose keys, read before the PREEMPT, listed the victim's key
    cleared: tuple[str, ...]  # LUNs on which the key was verified gone afterwards

    def held_of(self, luns: Collection[str]) -> tuple[str, ...]:
        """Which of `luns` held the victim's key at the fence."""
        return tuple(lun for lun in self.held if lun in luns)

    def to_jsonable(self) -> dict[str, Any]:
        return {"victim": self.victim, "key": f"0x{self.key:016x}", "boot_id": self.boot_id,
                "first_at": self.first_at, "last_at": self.last_at, "held": list(self.held),
                "cleared": list(self.cleared)}

    @classmethod
    def from_json(cls, data: Any) -> "PreemptRecord":
        data = wire.obj(data, "fence record")
        what = f"fence record of {data.get('victim')!r}"
        return cls(wire.field(data, "victim", str, what), wire.key(data.get("key"), what),
                   wire.field(data, "boot_id", str, what),
                   float(wire.field(data, "first_at", (int, float), what)),
                   float(wire.field(data, "last_at", (int, float), what)),
                   wire.strings(data, "held", what), wire.strings(data, "cleared", what))


def merge(record: PreemptRecord | None, victim: str, key: int, boot_id: str, at: float,
          preempt: PreemptReport, verification: VerifyReport,
          arbiters: Collection[str]) -> PreemptRecord:
    """`record` with one more preempt of `victim` folded in, or a new record (see the module
    docstring for when)."""
    found = tuple(f.lun for f in preempt.luns if f.found)
    cleared = tuple(c.lun for c in verification.checks if c.proves)
    fresh = (record is None or record.victim != victim or record.key != key
             or record.boot_id != boot_id
             or any(lun in arbiters and lun in record.cleared for lun in found))
    if fresh:
        return PreemptRecord(victim, key, boot_id, at, at, found, cleared)
    assert record is not None
    return PreemptRecord(victim, key, boot_id, record.first_at, at,
                         tuple(dict.fromkeys(record.held + found)),
                         tuple(dict.fromkeys(record.cleared + cleared)))


class FenceRecords:
    """The records of one node's holder; safe to call from the holder's request threads."""

    def __init__(self, state_dir: str, boot_id: str, clock: Clock) -> None:
        self.path = Path(state_dir) / "fence-records.json"
        self.boot_id = boot_id
        self.clock = clock
        self._lock = threading.Lock()

    def note(self, victim: str, key: int, preempt: PreemptReport, verification: VerifyReport,
             arbiters: Collection[str]) -> PreemptRecord | None:
        """Fold one preempt of `victim` into its record and write it; None (and one line in
        the journal) when the file could not be written. A lost race records nothing: this
        node is then the fenced one."""
        if preempt.lost_race:
            return None
        with self._lock:
            try:
                records = self._read_all()
            except FenceRecordsUnreadable as error:
                LOG.warning("fence records: %s; starting them afresh", error)
                records = {}
            record = merge(records.get(victim), victim, key, self.boot_id, self.clock.wall(),
                           preempt, verification, arbiters)
            records[victim] = record
            try:
                self._write_all(records)
            except OSError as error:
                LOG.warning("fence records: the record of %s's fence was not written (%s): a "
                            "takeover will find no record and take guests by home only",
                            victim, error)
                return None
            return record

    def of(self, victim: str, key: int) -> PreemptRecord | None:
        """The record of `victim` with `key` made in this boot, or None. Raises
        FenceRecordsUnreadable."""
        with self._lock:
            record = self._read_all().get(victim)
        if record is None or record.key != key or record.boot_id != self.boot_id:
            return None
        return record

    def _read_all(self) -> dict[str, PreemptRecord]:
        try:
            data = json.loads(self.path.read_text())
            records = wire.items(wire.obj(data, "fence records"), "records",
                                 PreemptRecord.from_json, "fence records")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:  # JSON and wire format errors are ValueErrors
            raise FenceRecordsUnreadable(f"{self.path}: {error}") from None
        return {record.victim: record for record in records}

    def _write_all(self, records: dict[str, PreemptRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(
            {"records": [r.to_jsonable() for r in records.values()]}, indent=1))
        os.replace(temporary, self.path)
