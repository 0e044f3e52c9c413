"""Stamped blocks: what a lab guest writes, and what the invariant checker reads back.

Each write is one 512-byte block: magic, node, guest, sequence number, wall time, CRC32. A
guest writes sequence n at LBA (n mod ring). The checker reads every block of the ring and
judges: after a fence point, no block accepted from the fenced node; no two nodes' writes
acknowledged in overlapping windows; no acknowledged write lost."""
from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
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


def check_acknowledged_kept(lun: str, stamps: list[Stamp], acknowledged: list[Stamp],
                            ring: int) -> list[Violation]:
    """No acknowledged write lost: each block of the ring holds the last write the SAN
    acknowledged to that block, or a later one (a write in flight when its writer died may
    land without an acknowledgement). A guest writes sequence n at block n mod `ring`."""
    on_disk = {stamp.sequence % ring: stamp for stamp in stamps}
    last: dict[int, Stamp] = {}
    for stamp in acknowledged:
        block = stamp.sequence % ring
        if block not in last or stamp.time > last[block].time:
            last[block] = stamp
    found = []
    for block, stamp in sorted(last.items()):
        held = on_disk.get(block)
        if held is None or (held != stamp and held.time < stamp.time):
            found.append(Violation(lun, stamp, f"acknowledged, but block {block} holds "
                                               f"{'nothing' if held is None else held}"))
    return found


def check_single_writer(lun: str, acknowledged: list[Stamp],
                        start_of: Callable[[Stamp], int]) -> list[Violation]:
    """The one rule over time: the acknowledged writes of each start of the guest span a
    window (first to last), and the windows of two different nodes never overlap.
    `start_of` names the start a stamp belongs to (each start numbers its own writes)."""
    windows: dict[tuple[str, int], tuple[Stamp, Stamp]] = {}
    for stamp in sorted(acknowledged):
        key = (stamp.node, start_of(stamp))
        first, _ = windows.get(key, (stamp, stamp))
        windows[key] = (first, stamp)
    found = []
    spans = sorted(windows.items(), key=lambda item: item[1][0].time)
    for index, ((node, _), (_first, last)) in enumerate(spans):
        for (other, _), (other_first, _other_last) in spans[index + 1:]:
            if other != node and other_first.time < last.time:
                found.append(Violation(lun, other_first,
                                       f"acknowledged to {other} while {node} still wrote "
                                       f"(its write at {last.time:.3f} was acknowledged)"))
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
