"""The node's session holder: the one long-lived owner of the node's registered nexuses.

Registrations belong to I_T nexuses and tgtd ties them to the session (reference/scsi-pr.md),
so every action that needs the node's registration (preempt a peer, reserve a guest LUN) runs
here, on sessions logged in once with a stable identity. The holder never re-registers to
"repair" a lost registration: only `join`, and never in a fenced boot."""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from stonewall.clock import Clock, Deadline
from stonewall.config.keys import describe_key
from stonewall.config.model import ClusterConfig, Lun, LunRole, Node, Transport
from stonewall.holder.api import (
    HolderRefused, HolderState, JoinOutcome, PathState, StorageFenceOutcome)
from stonewall.holder.fence_records import FenceRecords, FenceRecordsUnreadable, PreemptRecord
from stonewall.holder.handoffs import Direction, Handoff, HandoffRefused, Handoffs
from stonewall.storage import ownership
from stonewall.storage.bootid import BootRecords, FencedBoot
from stonewall.storage.multipath.errors import MultipathError
from stonewall.storage.paths import (KernelRoots, LunPath, PathSet, PathSetupError, close_paths,
                                     connect_paths, data_paths, new_data_paths, plan_paths)
from stonewall.storage.scsi.errors import ScsiError
from stonewall.storage.scsi.iscsi import dropped_sessions
from stonewall.storage.view import LunView


class Refused(HolderRefused):
    """The request is not allowed (fencing ourselves, unknown node or LUN, fenced boot)."""


class NodeHolder:
    """Sessions and registration of one node, with the operations other entry points ask for."""

    def __init__(self, config: ClusterConfig, node: Node, clock: Clock,
                 boot_records: BootRecords) -> None:
        """The kernel's path devices are found under the config's `paths.sysfs` and
        `paths.dev`."""
        self.config = config
        self.node = node
        self.clock = clock
        self.boot_records = boot_records
        self.lock = threading.RLock()  # one fence/join/claim at a time on this node
        self.abort_support = ownership.AbortSupport()
        self.kernel = KernelRoots.of(config.paths)
        self.paths: PathSet = plan_paths(list(config.luns), node.initiator, role="holder",
                                         discovery=self.kernel.discover,
                                         dev_root=self.kernel.dev)
        self.handoffs = Handoffs(node.name, clock)  # live migrations in flight (section 10)
        # which LUNs held each victim's key when this node preempted it (the takeover's
        # evidence of the guests the victim ran)
        self.fence_records = FenceRecords(config.paths.state_dir, boot_records.boot_id, clock)

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
        CONFLICT) on an unregistered one, so it can never bring a preempted key back. A
        nexus that lost its registration (tgtd: a re-login is a new nexus) is registered
        again only where that is provably safe (ownership.adopt_path, `lapsed`).
        Returns one line per path whose registration was lost, and what became of it."""
        sessions = [p.session for ps in self.paths.values() for p in ps if p.session]
        dropped = set(map(id, dropped_sessions(sessions)))
        if not dropped:
            return []
        with self.lock:
            back = [path for ps in self.paths.values() for path in ps
                    if path.session is not None and id(path.session) in dropped
                    and path.reconnect(deadline)]
            lost: list[str] = []
            lapsed = []
            for path in back:
                if not (path.registered and path.device is not None):
                    continue
                where = f"{path.lun.name} via {path.name}"
                try:
                    if ownership.probe_registration(path, self.node.key, deadline,
                                                    self.clock):
                        continue
                    lost.append(f"{where}: registration lost after reconnect")
                    lapsed.append(path)
                except ScsiError as exc:
                    lost.append(f"{where}: registration unknown after reconnect "
                                f"({type(exc).__name__}): not used to act")
                path.registered = False
            # Every lapsed nexus is marked first, so none is taken for proof of another.
            return lost + [self._adopt(path, deadline, lapsed=True) for path in lapsed]

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
        """Register on every path of every arbiter and shared LUN and reserve the unreserved
        ones; refused in a boot in which this node was fenced. Guest LUNs are claimed one by
        one with their guest (`claim`); a registration this node's data path still carries
        there (its guest survived a restart of the service) is found and kept."""
        with self.lock:
            self.boot_records.check_may_join()
            node_wide = self._subset([lun for lun in self.config.luns
                                      if lun.role is not LunRole.GUEST])
            if self.boot_records.read().registered_boot == self.boot_records.boot_id:
                # A restart in the boot we joined in: if a peer preempted us meanwhile,
                # registering would bring the fenced key back (reference/scsi-pr.md), so look
                # first. No atomic "register only if still present" exists; this narrows the
                # window to one read.
                report = ownership.verify(node_wide, self.node.key, False, deadline,
                                          self.clock)
                gone = [check.lun for check in report.checks if check.verdict is True]
                if gone:
                    self.boot_records.mark_fenced()
                    raise FencedBoot(f"our key was preempted on {', '.join(gone)} since this "
                                     f"node joined in boot {self.boot_records.boot_id}")
            registered = ownership.register_paths(node_wide, self.node.key, deadline,
                                                  self.clock)
            self.boot_records.mark_registered()
            reserved = ownership.reserve_unreserved(node_wide, self.node.key, deadline,
                                                    self.clock)
            self._find_held_guest_luns(deadline)
            return JoinOutcome(registered, reserved)

    def _find_held_guest_luns(self, deadline: Deadline) -> None:
        """Mark the data paths of guest LUNs that carry our key (probed per nexus)."""
        for lun in self.config.luns:
            if lun.role is not LunRole.GUEST:
                continue
            for path in data_paths(self.paths[lun.name]):
                if path.up:
                    try:
                        path.registered = ownership.probe_registration(
                            path, self.node.key, deadline, self.clock)
                    except ScsiError:
                        continue

    def held_guest_luns(self) -> list[str]:
        """Guest LUNs on which this node is registered (it runs, or may run, their guest)."""
        return [lun.name for lun in self.config.luns if lun.role is LunRole.GUEST
                and any(p.registered for p in self.paths[lun.name])]

    def views(self, lun_names: Sequence[str] | None,
              deadline: Deadline) -> dict[str, LunView]:
        return ownership.read_views(self._subset(self._luns(lun_names)), deadline, self.clock)

    def verify(self, node_name: str, lun_names: Sequence[str] | None, present: bool,
               deadline: Deadline) -> ownership.VerifyReport:
        key = self._node(node_name).key
        return ownership.verify(self._subset(self._luns(lun_names)), key, present, deadline,
                                self.clock)

    def preempt(self, victim_name: str, lun_names: Sequence[str] | None,
                deadline: Deadline) -> StorageFenceOutcome:
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
            self.fence_records.note(victim.name, victim.key, report, verification,
                                    {lun.name for lun in luns if lun.role is LunRole.ARBITER})
            return StorageFenceOutcome(victim.name, tuple(lun.name for lun in luns), report,
                                       verification)

    def fence_record(self, victim_name: str,
                     deadline: Deadline | None = None) -> PreemptRecord | None:
        """What this node's preempts of `victim_name` found in this boot (no I/O on the SAN:
        the deadline is the protocol's); None when this node did not preempt it in this boot."""
        victim = self._node(victim_name)
        try:
            return self.fence_records.of(victim.name, victim.key)
        except FenceRecordsUnreadable as error:
            raise Refused(f"the fence records cannot be read: {error}") from None

    def claim(self, lun_name: str, deadline: Deadline,
              handoff_from: str | None = None) -> ownership.ClaimOutcome:
        """Make this node the registrant of a guest LUN before its guest starts here
        (refused in a fenced boot, before joining, and while another node is registered).
        `handoff_from`: the source of a live migration this node's hook admitted (a prepared
        permit covering the LUN); that node alone may stay registered meanwhile."""
        lun = self._guest_lun(lun_name)
        with self.lock:
            self._check_joined()
            source_key = None
            if handoff_from is not None:
                source_key = self._node(handoff_from).key
                try:
                    self.handoffs.for_claim(lun.name, handoff_from)
                except HandoffRefused as error:
                    raise Refused(str(error)) from None
            outcome = ownership.claim_lun(self.paths[lun.name], lun, self.node.key, deadline,
                                          self.clock, handing_over=source_key)
            return self._named(outcome)

    def _check_joined(self) -> None:
        self.boot_records.check_may_join()
        if self.boot_records.read().registered_boot != self.boot_records.boot_id:
            raise Refused("this node has not joined in this boot: start its service first")

    # -- live migration (holder/handoffs.py) ----------------------------------------------
    def open_handoff(self, guest: str, peer: str, direction: Direction,
                     luns: Sequence[str], ttl: float,
                     deadline: Deadline | None = None, by_hook: bool = False) -> Handoff:
        """Issue a permit for an incoming migration of `guest` from `peer`, or note an
        outgoing one to `peer` (no I/O: the deadline is the protocol's); refused in a fenced
        boot, before joining, for a LUN that is not a guest LUN, and while another migration
        of `guest` is in flight here."""
        self._node(peer)
        names = tuple(self._guest_lun(name).name for name in luns)
        self._check_joined()
        try:
            return self.handoffs.open(guest, peer, direction, names, ttl, by_hook)
        except HandoffRefused as error:
            raise Refused(str(error)) from None

    def admit_incoming(self, guest: str, stage: str,
                       deadline: Deadline | None = None) -> Handoff:
        """The hook's `migrate begin` / `prepare begin`: consume the permit, once each."""
        try:
            return self.handoffs.admit(guest, stage)
        except HandoffRefused as error:
            raise Refused(str(error)) from None

    def close_handoff(self, guest: str, deadline: Deadline | None = None) -> Handoff:
        try:
            return self.handoffs.close(guest)
        except HandoffRefused as error:
            raise Refused(str(error)) from None

    def release(self, lun_name: str, deadline: Deadline) -> ownership.ClaimOutcome:
        """Unregister this node from a guest LUN (its guest is verified off)."""
        lun = self._guest_lun(lun_name)
        with self.lock:
            return self._named(ownership.release_guest_lun(self.paths[lun.name], lun,
                                                           self.node.key, deadline, self.clock))

    def _guest_lun(self, name: str) -> Lun:
        lun = self._luns([name])[0]
        if lun.role is not LunRole.GUEST:
            raise Refused(f"LUN {name} is not a guest LUN: its registration follows the node, "
                          "not a guest")
        return lun

    def _named(self, outcome: ownership.ClaimOutcome) -> ownership.ClaimOutcome:
        if not outcome.others:
            return outcome
        names = ", ".join(describe_key(self.config, key) for key in outcome.others)
        return replace(outcome, detail=f"{outcome.detail} ({names})")

    def check_own(self, deadline: Deadline) -> tuple[ownership.VerifyReport, list[str]]:
        """The watchdog's self-check: our key on the LUNs we hold, as our data path sees
        it. Paths that appeared, or came back as new nexuses, are registered first when
        that is safe (ownership.adopt_path); one that finds us preempted marks this boot
        fenced. Returns the verdicts and one line per path it registered or refused."""
        with self.lock:
            lines = self._adopt_new_paths(deadline)
            held = set(self.held_guest_luns())
            chosen = {name: ps for name, ps in self.paths.items()
                      if self.config.lun(name).role is not LunRole.GUEST or name in held}
            check = ownership.verify_own(chosen, self.node.key, deadline, self.clock)
            for path in check.lapsed:
                path.registered = False
                lines.append(self._adopt(path, deadline, lapsed=True))
            return check.report, [line for line in lines if line]

    def _adopt_new_paths(self, deadline: Deadline) -> list[str]:
        sg_luns = [lun for lun in self.config.luns if lun.transport is Transport.SG]
        if not sg_luns:
            return []
        try:
            discovery = self.kernel.discover()
        except MultipathError as exc:
            return [f"path discovery failed: {exc}"]
        lines = []
        for lun in sg_luns:
            try:
                found = new_data_paths(lun, self.paths[lun.name], discovery, self.kernel.dev)
            except PathSetupError as exc:
                lines.append(str(exc))
                continue
            for path in found:
                self.paths[lun.name].insert(len(data_paths(self.paths[lun.name])), path)
                lines.append(self._adopt(path, deadline))
        return lines

    def _adopt(self, path: LunPath, deadline: Deadline, *, lapsed: bool = False) -> str:
        """Register `path` (new, or `lapsed`: see ownership.adopt_path) where that is safe;
        one line saying what happened ("" when the LUN is not ours)."""
        where = f"{path.lun.name} via {path.name}"
        if self.boot_records.fenced_in_this_boot():
            return f"{where}: not registered (this node was fenced in this boot)"
        result = ownership.adopt_path(path, self.paths[path.lun.name], self.node.key,
                                      deadline, self.clock, lapsed=lapsed)
        if result is ownership.AdoptResult.PREEMPTED:
            self.boot_records.mark_fenced()
        if result is ownership.AdoptResult.NOT_OURS:
            return ""
        return f"{where}: {'lapsed' if lapsed else 'new'} path {result.value}"

    def state(self, deadline: Deadline | None = None) -> HolderState:
        """Sessions and registration as the holder knows them (no I/O, so no deadline
        is needed; the Holder protocol passes one)."""
        record = self.boot_records.read()
        return HolderState(
            self.node.name, self.node.key, self.boot_records.boot_id,
            record.fenced_boot == self.boot_records.boot_id,
            record.registered_boot == self.boot_records.boot_id,
            tuple(PathState(lun, p.name, p.up, p.registered, p.error, p.kind.value)
                  for lun, ps in self.paths.items() for p in ps),
            tuple(lun.name for lun in self.config.luns if lun.role is LunRole.GUEST),
            self.handoffs.current())
