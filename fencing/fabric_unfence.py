"""Unfencing a fabric-fenced node: its SAN ports go back on only in a boot that began after
they were cut.

A fabric fence cuts a node off the SAN but leaves it running, with dirty page cache, QEMU
processes mid-write and a multipath layer queueing I/O to paths that will come back. Turning
its ports on in that same boot would let the queued writes of a node the cluster has written
off reach the storage its peer now owns: two writers. So the rule is the storage level's
(DESIGN 3, stonewall.storage.bootid): the node itself turns its ports on, at the start of its
service, and only when this boot is not one it joined before (a node that joined in this boot
and then lost its ports may have been fabric-fenced in it) and not one it was fenced in. The
reboot that its watchdog forces (its storage became unreachable) is what makes the ports
safe to turn on again.
"""
from __future__ import annotations

from collections.abc import Mapping

from stonewall.clock import Clock, Deadline
from stonewall.config.model import Node
from stonewall.fencing.agent_level import GroupResult, drive_group
from stonewall.power.agent import AgentAction, Runner
from stonewall.process import run_process
from stonewall.storage.bootid import BootRecords


class UnfenceRefused(Exception):
    """This boot is not one in which the node's ports may be turned on."""


def check_may_unfence(records: BootRecords) -> None:
    """Raise UnfenceRefused unless this is a fresh boot: neither fenced in nor joined."""
    record = records.read()
    if record.fenced_boot == records.boot_id:
        raise UnfenceRefused(f"this node was fenced in boot {records.boot_id}; its SAN ports "
                             "go back on only after a reboot")
    if record.registered_boot == records.boot_id:
        raise UnfenceRefused(f"this node joined the cluster in boot {records.boot_id}: a "
                             "fabric fence since then left it running with writes queued for "
                             "the SAN; its ports go back on only after a reboot")


def fabric_unfence(me: Node, group: str, records: BootRecords, deadline: Deadline,
                   clock: Clock, environ: Mapping[str, str], runner: Runner = run_process
                   ) -> GroupResult:
    """Turn `me`'s ports of `group` on and verify each reads on; UnfenceRefused first when
    this boot may not."""
    check_may_unfence(records)
    return drive_group(me, group, AgentAction.ON, deadline, clock, environ, runner)
