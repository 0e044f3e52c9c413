"""The libvirt `qemu` hook: refuse to start a guest on a node that does not own its storage.

libvirt runs the hook as `HOOK GUEST OPERATION SUB-OPERATION EXTRA` with the domain XML on
stdin, synchronously, for every operation (reference vm.md section 1). Rules kept here:
- Only `prepare begin`, `migrate begin` and `restore begin` are judged; every other operation
  exits 0 (`release end` after unregistering, see below). `reconnect` in particular must
  never fail: libvirt kills the running QEMU when it does.
- Incoming migration runs `migrate begin` before `prepare begin` on the destination, and
  `prepare` carries no sign that it belongs to a migration. Without the node's holder both
  are judged as starts. With it (`holder`), a migration is admitted only by what the holder
  keeps in memory: the permit of `stonewall vm migrate`, or the record this hook opens for a
  plain `virsh migrate` from a live, registered source (vm/hook_migration.py); each admits
  one `migrate begin` and one `prepare begin`. Nothing stored in /run is trusted.
- `release end` (the guest is off here) unregisters this node from the guest's LUNs through
  the holder; it never fails (libvirt cannot abort it).
- The hook never calls libvirt (the daemon waits for us: deadlock). It learns ownership from
  an injected `read_views(lun_names, deadline)` and answers before its deadline; no answer in
  time, or any error, refuses the start.
- Nothing is written to stdout: for `migrate` and `restore` stdout replaces the domain XML,
  and empty output means "unchanged".

The entry point libvirt runs (read stdin, decide, one line, exit status) is
handlers/qemu_hook.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Sequence

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, Node
from stonewall.holder.api import Holder
from stonewall.messages import printable
from stonewall.storage.view import ReadViews
from stonewall.bounded import DeadlineExceeded, call_before
from stonewall.vm.hook_migration import (
    NotAdmitted, admit_migrate_begin, admit_prepare_begin, release_after_stop)
from stonewall.vm.mapping import GuestStorage, guest_luns
from stonewall.vm.placement import Placement, may_run

DEFAULT_TIMEOUT = 10.0  # seconds the hook may block a start while it reads ownership

EXIT_ALLOWED = 0
EXIT_REFUSED = 1  # any non-zero status from prepare/migrate/restore aborts the operation
EXIT_USAGE = 2


class HookUsageError(ValueError):
    """argv is not what libvirt passes to a qemu hook."""


class Operation(Enum):
    """The guest operations whose `begin` the hook judges; the verb is for the message."""

    PREPARE = "prepare", "start"
    MIGRATE = "migrate", "receive the incoming migration of"
    RESTORE = "restore", "restore"

    def __init__(self, libvirt_name: str, verb: str) -> None:
        self.libvirt_name = libvirt_name
        self.verb = verb


_JUDGED = {(op.libvirt_name, "begin"): op for op in Operation}


@dataclass(frozen=True)
class HookCall:
    guest: str
    operation: str
    sub_operation: str
    extra: str

    @property
    def judged(self) -> Operation | None:
        """The operation to judge, or None for the operations the hook lets through."""
        return _JUDGED.get((self.operation, self.sub_operation))


@dataclass(frozen=True)
class HookDecision:
    exit_code: int
    message: str | None = None  # one line for stderr; libvirt appends it to its error
    placement: Placement | None = None


def parse_hook_argv(argv: Sequence[str]) -> HookCall:
    """Read `argv` as libvirt passes it: [hook path, guest, operation, sub-operation, extra]."""
    args = list(argv[1:])
    if len(args) < 3 or not all(args[:3]):
        raise HookUsageError(
            "expected the arguments libvirt passes to a qemu hook: GUEST OPERATION SUB-OPERATION "
            f"[EXTRA], got {args!r}")
    extra = args[3] if len(args) > 3 else "-"
    return HookCall(args[0], args[1], args[2], extra)


def decide(call: HookCall, domain_xml: str, *, load_config: Callable[[], ClusterConfig],
           node_name: str, read_views: ReadViews, deadline: Deadline,
           holder: Callable[[ClusterConfig], Holder] | None = None) -> HookDecision:
    """Allow or refuse one hook call. A configuration, XML or views failure refuses.
    `holder`: this node's holder, for migrations and `release end`."""
    operation = call.judged
    if (call.operation, call.sub_operation) == ("release", "end") and holder is not None:
        return _released(call, domain_xml, load_config, node_name, holder, deadline)
    if operation is None:
        return HookDecision(EXIT_ALLOWED)

    def refuse(reason: str, placement: Placement | None = None) -> HookDecision:
        return HookDecision(EXIT_REFUSED, f"stonewall: refusing to {operation.verb} "
                                          f"{printable(call.guest)} on {node_name}: "
                                          f"{printable(reason)}", placement)

    try:
        config = load_config()
    except Exception as error:  # any config failure: we cannot judge, so we refuse
        return refuse(f"cannot read the cluster configuration: {error}")
    try:
        node = config.node(node_name)
    except KeyError:
        return refuse(f"this node ({node_name}) is not in the cluster configuration")
    try:
        storage = guest_luns(config, call.guest, domain_xml)
    except ValueError as error:
        return refuse(f"cannot read the domain XML: {error}")
    if not storage.managed:
        return HookDecision(EXIT_ALLOWED)
    if holder is not None and operation in (Operation.MIGRATE, Operation.PREPARE):
        try:
            if _admitted(call.guest, operation, storage, node, config, holder(config),
                         deadline):
                return HookDecision(EXIT_ALLOWED)
        except NotAdmitted as error:
            return refuse(str(error))
    try:
        views = call_before(deadline, lambda: read_views(storage.luns, deadline),
                            "read LUN ownership") if storage.luns else {}
    except DeadlineExceeded:
        return refuse(f"LUN ownership ({', '.join(storage.luns)}) could not be read in time")
    except Exception as error:  # a views source that fails must not let the start through
        return refuse(f"cannot read the ownership of LUN {', '.join(storage.luns)}: {error}")
    placement = may_run(storage, node, views, config)
    if placement.allowed:
        return HookDecision(EXIT_ALLOWED, placement=placement)
    return refuse("; ".join(placement.reasons), placement)


def _admitted(guest: str, operation: Operation, storage: GuestStorage, node: Node,
              config: ClusterConfig, holder: Holder, deadline: Deadline) -> bool:
    if operation is Operation.MIGRATE:
        return call_before(deadline, lambda: admit_migrate_begin(
            guest, storage, node, config, holder, deadline), "admit the migration")
    return call_before(deadline, lambda: admit_prepare_begin(guest, holder, deadline),
                       "admit the migration")


def _released(call: HookCall, domain_xml: str, load_config: Callable[[], ClusterConfig],
              node_name: str, holder: Callable[[ClusterConfig], Holder],
              deadline: Deadline) -> HookDecision:
    """`release end`: always exit 0; one line when this node could not unregister."""
    try:
        config = load_config()
        storage = guest_luns(config, call.guest, domain_xml)
        if not storage.managed:
            return HookDecision(EXIT_ALLOWED)
        line = call_before(deadline, lambda: release_after_stop(
            call.guest, storage, config, holder(config), deadline), "release the guest's LUNs")
    except Exception as error:  # noqa: BLE001 - release cannot be aborted: report, exit 0
        line = f"stonewall: {printable(call.guest)} is off, but its LUNs were not released: " \
               f"{printable(str(error))}"
    return HookDecision(EXIT_ALLOWED, line)
