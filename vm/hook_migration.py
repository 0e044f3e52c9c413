"""The libvirt hook's part in live migration, through this node's holder (DESIGN 10).

On the destination libvirt runs `migrate begin` and then `prepare begin` for one incoming
migration, and no hook between the source pausing and the destination resuming. So:
- `stonewall vm migrate` (vm/migration.py) left a permit in this node's holder: `migrate
  begin` and `prepare begin` each consume it once, and the LUNs move later, while the
  destination is paused;
- a plain `virsh migrate` (or virt-manager) left no permit: at `migrate begin` this node
  registers beside the source, but only when exactly one other node is registered on every
  path of each guest LUN (a node is registered on a guest's LUNs only while the guest runs
  there, so that node is the source and runs it) and that node is live (its key is on every
  arbiter LUN: it was not fenced). The record this opens admits the one `prepare begin` that
  follows. Type 7 lets both registrants write until the source unregisters at its `release
  end`; QEMU's migration protocol, not the SAN, keeps one of them running then;
- at `release end` (the guest is off here) this node unregisters from the guest's LUNs,
  except on the source of a `vm migrate`, which hands them over itself.
"""
from __future__ import annotations

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig, LunRole, Node
from stonewall.holder.api import Holder, HolderFailure, HolderRefused
from stonewall.holder.handoffs import Direction
from stonewall.vm import guest_registration as registration
from stonewall.vm.mapping import GuestStorage

HOOK_PERMIT_TTL = 30.0  # seconds from `migrate begin` to `prepare begin` (measured: 10 ms)


class NotAdmitted(Exception):
    """The incoming migration is refused; the message says why (one line)."""


def admit_migrate_begin(guest: str, storage: GuestStorage, node: Node, config: ClusterConfig,
                        holder: Holder, deadline: Deadline) -> bool:
    """True: a permit or a plain migration from a live, registered source admits it. False:
    no migration is in flight here (judge the call as a start: the destination may own the
    LUNs already). Raises NotAdmitted."""
    try:
        holder.admit_incoming(guest, "migrate", deadline)
        return True
    except HolderRefused:
        pass  # no permit of `vm migrate`: a plain migration, judged below
    except HolderFailure as error:
        raise NotAdmitted(f"this node's holder did not answer: {error}") from None
    try:
        return _admit_plain(guest, storage, node, config, holder, deadline)
    except HolderFailure as error:
        raise NotAdmitted(f"this node's holder did not answer: {error}") from None


def admit_prepare_begin(guest: str, holder: Holder, deadline: Deadline) -> bool:
    """True when the `migrate begin` admitted just before covers this `prepare begin`."""
    try:
        handoff = holder.admit_incoming(guest, "prepare", deadline)
    except HolderFailure:
        return False  # judged as a start, which reads the SAN afresh
    if handoff.by_hook:
        try:
            holder.close_handoff(guest, deadline)  # its one prepare is done
        except HolderFailure:
            pass  # it expires with its lifetime
    return True


def release_after_stop(guest: str, storage: GuestStorage, config: ClusterConfig,
                       holder: Holder, deadline: Deadline) -> str | None:
    """`release end`: the guest is off here, so this node unregisters from its guest LUNs,
    unless `vm migrate` hands them over (an outgoing record). One line when a LUN kept our
    key, else None."""
    luns = registration.guest_role_luns(config, storage)
    if not luns:
        return None
    try:
        state = holder.state(deadline)
        if any(h.guest == guest and h.direction is Direction.OUTGOING for h in state.handoffs):
            return None
        held = set(state.guest_luns_held)
        released = registration.release(holder, [lun for lun in luns if lun.name in held],
                                        deadline)
    except HolderFailure as error:
        return f"stonewall: {guest} is off, but its LUNs were not released: {error}"
    kept = [f"{r.lun}: {r.detail}" for r in released if not r.ok]
    return f"stonewall: {guest} is off, but still registered on {'; '.join(kept)}" if kept \
        else None


def _admit_plain(guest: str, storage: GuestStorage, node: Node, config: ClusterConfig,
                 holder: Holder, deadline: Deadline) -> bool:
    luns = registration.guest_role_luns(config, storage)
    if not luns:
        return False
    arbiters = [lun.name for lun in config.luns if lun.role is LunRole.ARBITER]
    views = registration.read_views(holder, [lun.name for lun in luns] + arbiters, deadline)
    sources: set[int] = set()
    for lun in luns:
        view = views.get(lun.name)
        if view is None or not view.reachable:
            raise NotAdmitted(f"LUN {lun.name}: no path answered (cannot tell who runs it)")
        sources |= {key for p in view.up_paths for key in (p.keys or ()) if key != node.key}
    if not sources:
        return False  # nobody else runs it: judged as a start
    if len(sources) != 1:
        raise NotAdmitted("the guest's LUNs are registered by different nodes")
    key = sources.pop()
    unregistered = [f"{lun.name} path {p.path}" for lun in luns
                    for p in views[lun.name].up_paths if key not in (p.keys or ())]
    if unregistered:
        raise NotAdmitted(f"the source is not registered on {', '.join(unregistered)}")
    source = next((n for n in config.nodes if n.key == key), None)
    if source is None or source.name == node.name:
        raise NotAdmitted(f"the guest's LUNs are registered by key 0x{key:016x}, which names "
                          "no other node of the cluster")
    for name in arbiters:
        view = views.get(name)
        if view is None or not view.reachable or any(
                key not in (p.keys or ()) for p in view.up_paths):
            raise NotAdmitted(f"{source.name} is not registered on arbiter LUN {name}: it may "
                              "have been fenced")
    try:
        holder.open_handoff(guest, source.name, Direction.INCOMING, [lun.name for lun in luns],
                            HOOK_PERMIT_TTL, deadline, by_hook=True)
        holder.admit_incoming(guest, "migrate", deadline)
    except HolderRefused as error:
        raise NotAdmitted(str(error)) from None
    claimed = []
    for lun in luns:
        result = holder.claim(lun.name, deadline, source.name)
        if not result.ok:
            registration.release(holder, claimed, deadline)
            holder.close_handoff(guest, deadline)
            raise NotAdmitted(f"LUN {lun.name}: {result.detail}")
        claimed.append(lun)
    return True
