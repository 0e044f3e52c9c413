"""What a DRBD handler's exit status means to DRBD, and which status each outcome gets.

fence-peer: the kernel reads `(status >> 8) & 0xff` (conn_try_outdate_peer(), identical switch
in 8.4 drbd_nl.c and 9 drbd_nl.c); values 3..7 are `enum drbd_peer_state` in drbd-headers'
linux/drbd.h ("These values are part of the ABI!"). Anything else is "fence-peer helper broken":
no state change, and under `fencing resource-and-stonith` I/O stays frozen. That is our failure
mode on purpose. Exit 0 is NOT success for fence-peer.

unfence-peer and split-brain: DRBD ignores the status (it only appears in the kernel log and in
`drbdsetup events2` as `response helper ... status:<raw>`).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType

from stonewall.storage.drbd.env import DrbdVersion


class FencePeerExit(IntEnum):
    """fence-peer exit statuses and what the kernel does with each (reference/drbd.md 2.1)."""

    # Not 3..7: the kernel logs "fence-peer helper broken, returned 1", changes nothing and
    # "eventually leaves IO frozen"; a promotion that needed fencing fails.
    FAILED = 1
    # Kernel names: P_INCONSISTENT, P_OUTDATED, P_DOWN, P_PRIMARY, P_FENCING.
    PEER_INCONSISTENT = 3  # peer disks set Inconsistent
    PEER_OUTDATED = 4  # "peer was fenced": peer disks set Outdated
    PEER_DOWN = 5  # "unreachable, assumed dead": peer Outdated only if our disk is UpToDate
    PEER_PRIMARY = 6  # "peer is active": OUR disks set Outdated
    PEER_STONITHED = 7  # "peer was stonithed": peer disks set Outdated, like 4

    @property
    def kernel_log(self) -> str:
        """The text the kernel logs for this status."""
        return _KERNEL_LOG[self]


_KERNEL_LOG: Mapping[FencePeerExit, str] = MappingProxyType({
    FencePeerExit.FAILED: "fence-peer helper broken, returned 1",
    FencePeerExit.PEER_INCONSISTENT: "fence-peer helper returned 3 (peer is inconsistent or worse)",
    FencePeerExit.PEER_OUTDATED: "fence-peer helper returned 4 (peer was fenced)",
    FencePeerExit.PEER_DOWN: "fence-peer helper returned 5 (peer is unreachable, assumed to be "
                             "dead) - or, if our disk is not UpToDate, (peer unreachable, doing "
                             "nothing since disk != UpToDate)",
    FencePeerExit.PEER_PRIMARY: "fence-peer helper returned 6 (peer is active)",
    FencePeerExit.PEER_STONITHED: "fence-peer helper returned 7 (peer was stonithed)",
})


class FencePeerOutcome(Enum):
    """What the fence-peer decision established about the peer."""

    PEER_FENCED_BY_STORAGE = "peer-fenced-by-storage"  # peer's key preempted and verified gone
    PEER_POWERED_OFF = "peer-powered-off"  # IPMI power-off verified
    PEER_ALREADY_OUTDATED = "peer-already-outdated"  # nothing to do, peer cannot be promoted
    # Confirmed dead/unreachable; DRBD outdates the peer only while our disk is UpToDate, so
    # with a Consistent disk this outcome fences nothing and I/O stays frozen (safe).
    PEER_UNREACHABLE_CONSIDERED_DEAD = "peer-unreachable-considered-dead"
    FAILED = "failed"  # not proven fenced


# The kernel's switch is literally the same in 8.4 (drbd-8.4.7 drbd_nl.c:539-600) and 9
# (drbd_nl.c:874-925); both versions are listed so a new generation has to be looked at.
_V84_AND_V9_CODES: Mapping[FencePeerOutcome, FencePeerExit] = MappingProxyType({
    FencePeerOutcome.PEER_FENCED_BY_STORAGE: FencePeerExit.PEER_OUTDATED,
    FencePeerOutcome.PEER_POWERED_OFF: FencePeerExit.PEER_STONITHED,
    # "peer got outdated, or was already outdated" (kernel comment on P_OUTDATED); 3 would
    # claim Inconsistent, which is more than we know.
    FencePeerOutcome.PEER_ALREADY_OUTDATED: FencePeerExit.PEER_OUTDATED,
    FencePeerOutcome.PEER_UNREACHABLE_CONSIDERED_DEAD: FencePeerExit.PEER_DOWN,
    FencePeerOutcome.FAILED: FencePeerExit.FAILED,
})
_FENCE_PEER_CODES: Mapping[DrbdVersion, Mapping[FencePeerOutcome, FencePeerExit]] = (
    MappingProxyType({DrbdVersion.V8_4: _V84_AND_V9_CODES, DrbdVersion.V9: _V84_AND_V9_CODES}))


def exit_code_for(outcome: FencePeerOutcome, version: DrbdVersion) -> int:
    """The fence-peer exit status that tells DRBD `version` about `outcome`.

    FAILED maps to a status outside 3..7, which keeps I/O frozen under resource-and-stonith.
    """
    try:
        codes = _FENCE_PEER_CODES[DrbdVersion(version)]
    except ValueError:
        raise ValueError(f"unknown DRBD version {version!r}: expected one of "
                         f"{[v.value for v in DrbdVersion]}") from None
    if not isinstance(outcome, FencePeerOutcome):
        raise TypeError(f"expected a FencePeerOutcome, got {outcome!r}")
    return int(codes[outcome])


class AdvisoryExit(IntEnum):
    """unfence-peer and split-brain statuses: DRBD ignores them, operators read them in the
    kernel log ("helper command: ... exit code N") and in events2."""

    DONE = 0
    FAILED = 1


def advisory_exit_code(succeeded: bool) -> int:
    """Exit status of an unfence-peer or split-brain handler."""
    return int(AdvisoryExit.DONE if succeeded else AdvisoryExit.FAILED)


@dataclass(frozen=True)
class HelperStatus:
    """A helper's raw status as the kernel reports it (events2 `status:`, kernel log 0x...).

    The kernel passes call_usermodehelper()'s return value: a wait status, or a negative errno
    when the helper could not run at all, printed unsigned (4294967294 = -ENOENT).
    """

    raw: int
    exit_code: int | None  # set when the helper exited normally
    signal: int | None  # set when the helper was killed by a signal
    errno: int | None  # set when the kernel could not start the helper

    @classmethod
    def from_raw(cls, raw: int) -> "HelperStatus":
        """Decode `raw` (0 .. 2**32-1)."""
        if not 0 <= raw < 1 << 32:
            raise ValueError(f"helper status {raw} is outside 0..2**32-1")
        if raw >= 1 << 31:
            return cls(raw, None, None, (1 << 32) - raw)
        if os.WIFSIGNALED(raw):
            return cls(raw, None, os.WTERMSIG(raw), None)
        if os.WIFEXITED(raw):
            return cls(raw, os.WEXITSTATUS(raw), None, None)
        raise ValueError(f"helper status {raw:#x} is neither an exit, a signal nor an errno")

