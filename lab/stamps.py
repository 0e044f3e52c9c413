"""Stamped blocks: what a lab guest writes, and what the invariant checker reads back.

Each write is one 512-byte block: magic, node, guest, sequence number, wall time, CRC32. A
guest writes sequence n at LBA (n mod ring). The checker reads every block of the ring and
judges the one rule: after the fence point, no block accepted from the fenced node."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

BLOCK = 512
MAGIC = b"STWSTAMP"
_LAYOUT = struct.Struct(">8s32s32sQd")  # magic, node, guest, sequence, time


@dataclass(frozen=True, order=True)
class Stamp:
    time: float
    node: str
    guest: str
    sequence: int


def encode(stamp: Stamp) -> bytes:
    """The block for `stamp`."""
    body = _LAYOUT.pack(MAGIC, stamp.node.encode()[:32], stamp.guest.encode()[:32],
                        stamp.sequence, stamp.time)
    return (body + struct.pack(">I", zlib.crc32(body))).ljust(BLOCK, b"\0")


def decode(block: bytes) -> Stamp | None:
    """The stamp in `block`, or None for a block never written (or torn)."""
    size = _LAYOUT.size
    if len(block) < size + 4 or block[:8] != MAGIC:
        return None
    body = block[:size]
    if struct.unpack_from(">I", block, size)[0] != zlib.crc32(body):
        return None
    _magic, node, guest, sequence, time = _LAYOUT.unpack(body)
    return Stamp(time, node.rstrip(b"\0").decode(), guest.rstrip(b"\0").decode(), sequence)


@dataclass(frozen=True)
class Violation:
    lun: str
    stamp: Stamp
    reason: str


def check_after_fence(lun: str, stamps: list[Stamp], fenced_node: str,
                      fence_point: float, acknowledged: list[Stamp]) -> list[Violation]:
    """The one rule on one LUN: nothing of `fenced_node` accepted after `fence_point` —
    neither on the disk nor in the writer's own list of acknowledged writes."""
    found = [Violation(lun, s, "on disk, written by the fenced node after the fence point")
             for s in stamps if s.node == fenced_node and s.time > fence_point]
    found += [Violation(lun, s, "acknowledged by the SAN to the fenced node after the fence "
                                "point") for s in acknowledged
              if s.node == fenced_node and s.time > fence_point]
    return found


def check_handoff(lun: str, stamps: list[Stamp], source: str, destination: str,
                  handoff_point: float, acknowledged: list[Stamp]) -> list[Violation]:
    """The one rule across a migration's handoff on one LUN: nothing of `source` accepted
    after `handoff_point` (its key was read gone), nothing of `destination` before it, on
    the disk or in the writers' lists of acknowledged writes."""
    found = check_after_fence(lun, stamps, source, handoff_point, acknowledged)
    found += [Violation(lun, s, "written by the destination before the source gave the LUN "
                                "up") for s in stamps + acknowledged
              if s.node == destination and s.time < handoff_point]
    return found
