"""The node's session holder: the one long-lived owner of the node's registered nexuses.

Registrations belong to I_T nexuses and tgtd ties them to the session (reference/scsi-pr.md),
so every action that needs the node's registration (preempt a peer, reserve a guest LUN) runs
here, on sessions logged in once with a stable identity. The holder never re-registers to
"repair" a lost registration: only `join`, and never in a fenced boot."""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from stonewall.clock import Clock, Deadline
from stonewall.config.model import ClusterConfig, Lun, Node
from stonewall.holder.api import FenceOutcome, HolderRefused, HolderState, JoinOutcome, PathState
from stonewall.storage import ownership
from stonewall.storage.bootid import BootRecords, FencedBoot
from stonewall.storage.paths import (KernelRoots, PathSet, close_paths, connect_paths,
                                     plan_paths)
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.errors import ReservationConflict, ScsiError, UnitAttention
from stonewall.storage.scsi.status import raise_for_status
from stonewall.storage.view import LunView


BLOCK_SIZE = 512  # tgtd's file-backed LUNs


class Refused(HolderRefused):
    """The request is not allowed (fencing ourselves, unknown node or LUN, fenced boot)."""


class NodeHolder:
    """Sessions and registration of one node, with the operations other entry points ask for."""

    def __init__(self, config: ClusterConfig, node: Node, clock: Clock,
                 boot_records: BootRecords, kernel: KernelRoots | None = None) -> None:
        """`kernel` locates sg LUNs (default: $STONEWALL_SYSFS_ROOT / $STONEWALL_DEV_ROOT,
        else /sys and /dev)."""
        self.config = config
        self.node = node
        self.clock = clock
        self.boot_records = boot_records
        self.lock = threading.RLock()  # one fence/join/reserve at a time on this node
        self.abort_support = ownership.AbortSupport()
        kernel = kernel or KernelRoots.from_environment(os.environ)
        self.paths: PathSet = plan_paths(list(config.luns), node.initiator, role="holder",
                                         discovery=kernel.discover, dev_root=kernel.dev)

    # -- life cycle ----------------------------------------------------------------------
    def connect(self, deadline: Deadline) -> None:
        """Log in every path (no registration happens here)."""
        connect_paths(self.paths, deadline)

    def close(self) -> None:
        close_paths(self.paths)

    def refresh(self, deadline: Deadline) -> list[str]:
        """Reconnect dropped paths with the same initiator port identity, and find out
        whether each reconnected nexus still carries our registration: REGISTER with our key
        as both keys changes nothing on a registered nexus and is refused (RESERVATION
        CONFLICT) on an unregistered one, so it can never bring a preempted key back.
        Returns one line per path whose registration was lost."""
        lost = []
        for lun_paths in self.paths.values():
            for path in lun_paths:
                if path.session is None or path.session.check_connection():
                    continue
                try:
                    path.session.reconnect(deadline)
                    path.error = None
                except ScsiError as exc:
                    path.mark_down(str(exc))
                    continue
                if path.registered and path.device is not None:
                    try:
                        path.device.register(self.node.key, self.node.key, deadline)
                    except ScsiError as exc:
                        path.registered = False
                        lost.append(f"{path.lun.name} via {path.name}: registration lost "
                                    f"after reconnect ({type(exc).__name__})")
        return lost

    # -- helpers -------------------------------------------------------------------------
    def _luns(self, names: Sequence[str] | None) -> list[Lun]:
        try:
            return self.config.luns_in_arbiter_order(tuple(names) if names else None)
        except KeyError as exc:
            raise Refused(f"unknown LUN {exc.args[0]}") from None

    def _subset(self, luns: list[Lun]) -> PathSet:
        return {lun.name: self.paths[lun.name] for lun in luns}

    def _node(self, name: str) -> Node:
        try:
            return self.config.node(name)
        except KeyError:
            raise Refused(f"unknown node {name!r}") from None

    # -- operations ----------------------------------------------------------------------
    def join(self, deadline: Deadline) -> JoinOutcome:
        """Register on every path of every LUN and reserve unreserved shared LUNs; refused
        in a boot in which this node was fenced."""
        with self.lock:
            self.boot_records.check_may_join()
            if self.boot_records.read().registered_boot == self.boot_records.boot_id:
                # A restart in the boot we joined in: if a peer preempted us meanwhile,
                # registering would bring the fenced key back (reference/scsi-pr.md), so look
                # first. No atomic "register only if still present" exists; this narrows the
                # window to one read.
                report = ownership.verify(self.paths, self.node.key, False, deadline,
                                          self.clock)
                gone = [check.lun for check in report.checks if check.verdict is True]
                if gone:
                    self.boot_records.mark_fenced()
                    raise FencedBoot(f"our key was preempted on {', '.join(gone)} since this "
                                     f"node joined in boot {self.boot_records.boot_id}")
            registered = ownership.register_paths(self.paths, self.node.key, deadline,
                                                  self.clock)
            self.boot_records.mark_registered()
            reserved = ownership.reserve_unreserved(self.paths, self.node.key, deadline,
                                                    self.clock)
            return JoinOutcome(registered, reserved)

    def views(self, lun_names: Sequence[str] | None,
              deadline: Deadline) -> dict[str, LunView]:
        return ownership.read_views(self._subset(self._luns(lun_names)), deadline, self.clock)

    def verify(self, node_name: str, lun_names: Sequence[str] | None, present: bool,
               deadline: Deadline) -> ownership.VerifyReport:
        key = self._node(node_name).key
        return ownership.verify(self._subset(self._luns(lun_names)), key, present, deadline,
                                self.clock)

    def preempt(self, victim_name: str, lun_names: Sequence[str] | None,
                deadline: Deadline) -> FenceOutcome:
        """Fence `victim_name` on the LUNs (arbiter first) and verify its key gone."""
        victim = self._node(victim_name)
        if victim.name == self.node.name or victim.key == self.node.key:
            raise Refused("a node does not fence itself")
        luns = self._luns(lun_names)
        with self.lock:
            report = ownership.preempt_peer(self._subset(luns), luns, self.node.key,
                                            victim.key, deadline, self.clock,
                                            self.abort_support)
            if report.lost_race:
                self.boot_records.mark_fenced()
            verification = ownership.verify(self._subset(luns), victim.key, False, deadline,
                                            self.clock)
            return FenceOutcome(victim.name, tuple(lun.name for lun in luns), report,
                                verification)

    def reserve(self, lun_name: str, deadline: Deadline) -> ownership.PathOutcome:
        """Take a guest LUN's configured reservation."""
        lun = self._luns([lun_name])[0]
        with self.lock:
            return ownership.reserve_lun(self.paths[lun.name], self.node.key, lun.reservation,
                                         deadline, self.clock)

    def release(self, lun_name: str, deadline: Deadline) -> ownership.PathOutcome:
        lun = self._luns([lun_name])[0]
        with self.lock:
            return ownership.release_lun(self.paths[lun.name], self.node.key, lun.reservation,
                                         deadline, self.clock)

    def write_block(self, lun_name: str, lba: int, data_hex: str,
                    deadline: Deadline) -> dict[str, object]:
        """The lab's guest I/O: WRITE(10) of one block through our nexus, failing over between
        paths like dm-multipath; the SAN's verdict (e.g. RESERVATION CONFLICT) is returned."""
        if not self.config.lab_guest_io:
            raise Refused("write is for lab guests only (config lab_guest_io)")
        lun = self._luns([lun_name])[0]
        try:
            block = bytes.fromhex(data_hex)
        except ValueError:
            raise Refused("data must be hex") from None
        if len(block) != BLOCK_SIZE or lba < 0:
            raise Refused(f"one block of {BLOCK_SIZE} bytes at a non-negative LBA")
        last = "no registered path is up"
        for path in self.paths[lun.name]:
            if not (path.up and path.registered and path.session is not None):
                continue
            try:
                result = path.session.execute(cdb.write_10(lba, 1), deadline, data_out=block)
                raise_for_status(result, f"WRITE(10) on {lun.name} via {path.name}")
                return {"written": True, "path": path.name}
            except (ReservationConflict, UnitAttention) as exc:
                return {"written": False, "path": path.name, "error": type(exc).__name__,
                        "detail": str(exc)}
            except ScsiError as exc:
                last = f"{type(exc).__name__}: {exc}"
        return {"written": False, "path": None, "error": "NoPath", "detail": last}

    def state(self, deadline: Deadline | None = None) -> HolderState:
        """Sessions and registration as the holder knows them (no I/O, so no deadline
        is needed; the Holder protocol passes one)."""
        record = self.boot_records.read()
        return HolderState(
            self.node.name, self.node.key, self.boot_records.boot_id,
            record.fenced_boot == self.boot_records.boot_id,
            record.registered_boot == self.boot_records.boot_id,
            tuple(PathState(lun, p.name, p.up, p.registered, p.error)
                  for lun, ps in self.paths.items() for p in ps))
