"""A lab guest: writes stamped blocks to its LUN through its node's data path, as QEMU writes
to /dev/mapper/<map> and the kernel sends each write down one path of the map.

The paths are the node's kernel nexuses (lab/kernel_standin.py, the nexus stand-in), never the
service's control sessions. Path choice and errors follow dm-multipath:
- each write goes to the next usable path in turn: the default selector, service-time,
  picks the path with the least outstanding work and moves it to the tail of the list, so
  one writer with one write in flight alternates over equal paths;
- a transport error or a timeout fails that path, and the write is retried on the next one
  (a failed path is tried again after FAILED_PATH_RETRY seconds, as multipathd's checker
  reinstates it);
- RESERVATION CONFLICT is not a path error (the kernel's blk_path_error() is false for
  BLK_STS_NEXUS): the write fails at once, on every path alike;
- UNIT ATTENTION is retried on the same path (up to UNIT_ATTENTION_RETRIES), as the sd
  driver does.

Runs in the node's process group, so a node crash, a power-off or a watchdog reset ends it.
Every write is logged (JSON line) with what the data path answered before the next one, so
the invariant checker can compare what the writer was told with what is on the disk.

    python -m stonewall.lab.guest --maps FILE --node N --guest NAME --lun LUN --log FILE
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

from stonewall.lab.nexus import OUTCOME_DONE, NexusConnection, ProtocolError
from stonewall.lab.stamps import Stamp, encode
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.sense import SenseFormatError, SenseKey, decode_sense
from stonewall.storage.scsi.types import ScsiStatus

RING = 64  # blocks a guest cycles through
PERIOD = 0.05  # seconds between writes
WRITE_TIMEOUT = 1.0  # seconds one write may take on one path
FAILED_PATH_RETRY = 1.0  # seconds before a failed path is tried again
UNIT_ATTENTION_RETRIES = 5  # as the sd driver retries a command that met UNIT ATTENTION


@dataclass
class MapPath:
    name: str
    device: str
    connection: NexusConnection | None = None
    failed_at: float | None = None


@dataclass
class GuestMap:
    """A dm-multipath map as the guest's writes see it."""

    socket: str
    paths: list[MapPath]
    next: int = 0
    log: list[str] = field(default_factory=list)

    def write(self, lba: int, block: bytes) -> dict[str, object]:
        """One WRITE(10) of one block; the answer as the writer logs it."""
        last = "no usable path"
        for _ in range(len(self.paths)):
            path = self.paths[self.next]
            self.next = (self.next + 1) % len(self.paths)
            if path.failed_at is not None and time.monotonic() - path.failed_at < FAILED_PATH_RETRY:
                continue
            answer = self.write_through(path, lba, block)
            if answer is not None:
                return answer
            last = f"{path.name} failed"
        return {"written": False, "path": None, "error": "NoPath", "detail": last}

    def close(self) -> None:
        for path in self.paths:
            if path.connection is not None:
                path.connection.close()
                path.connection = None

    def write_through(self, path: MapPath, lba: int, block: bytes) -> dict[str, object] | None:
        """The SAN's answer, or None when the path failed (the caller tries the next)."""
        for attempt in range(UNIT_ATTENTION_RETRIES + 1):
            try:
                if path.connection is None:
                    path.connection = NexusConnection(self.socket, path.device)
                outcome, result = path.connection.execute(cdb.write_10(lba, 1), WRITE_TIMEOUT,
                                                          data_out=block)
            except (OSError, ProtocolError):
                outcome, result = -1, None
            if outcome != OUTCOME_DONE or result is None:
                if path.connection is not None:
                    path.connection.close()
                    path.connection = None
                path.failed_at = time.monotonic()
                return None
            path.failed_at = None
            if result.status == ScsiStatus.GOOD:
                return {"written": True, "path": path.name}
            if result.status == ScsiStatus.RESERVATION_CONFLICT:
                return {"written": False, "path": path.name, "error": "ReservationConflict"}
            if _is_unit_attention(result.sense) and attempt < UNIT_ATTENTION_RETRIES:
                continue
            return {"written": False, "path": path.name, "error": "CheckCondition",
                    "detail": result.sense.hex()}
        return {"written": False, "path": path.name, "error": "UnitAttention"}


def _is_unit_attention(sense: bytes) -> bool:
    try:
        return decode_sense(sense).key is SenseKey.UNIT_ATTENTION
    except (SenseFormatError, ValueError):
        return False


def load_map(maps_file: str, lun: str) -> GuestMap:
    """The map of `lun` from the node kernel's maps.json (lab/kernel_standin.py)."""
    with open(maps_file) as handle:
        entry = json.load(handle)[lun]
    return GuestMap(entry["socket"], [MapPath(p["name"], p["device"]) for p in entry["paths"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", required=True, help="the node kernel's maps.json")
    parser.add_argument("--node", required=True)
    parser.add_argument("--guest", required=True)
    parser.add_argument("--lun", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--first-sequence", type=int, default=0)
    args = parser.parse_args(argv)
    guest_map = load_map(args.maps, args.lun)
    sequence = args.first_sequence
    print("READY", flush=True)
    with open(args.log, "a", buffering=1) as log:
        while True:
            stamp = Stamp(time.time(), args.node, args.guest, sequence)
            answer = guest_map.write(sequence % RING, encode(stamp))
            record = {"time": stamp.time, "ack": time.time(), "sequence": sequence,
                      "node": args.node, "guest": args.guest, **answer}
            log.write(json.dumps(record) + "\n")
            if answer.get("written"):
                sequence += 1
            time.sleep(PERIOD)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        os._exit(130)
