"""The verdicts of DRBD's read-only handlers (handlers/drbd_handlers.py is their entry point):

  unfence-peer  is the fenced peer registered again? Nothing is registered here: only the
                peer's own holder can register its key, and it refuses to in the boot it was
                fenced in.
  split-brain   which node owns the storage (fencing/split_brain.py), and the commands that
                resolve it; nothing is resolved automatically. DRBD's own view of the
                resource here (`drbdsetup status --json`) corroborates it: whether DRBD still
                sees the split (the peer not connected), and whether the node whose changes
                are discarded is Primary here (`drbdadm secondary` refuses while the device
                is open).

Each takes the node's holder and a deadline and returns a `Finding`; none prints or exits."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stonewall.clock import Deadline
from stonewall.config.model import Node
from stonewall.fencing.split_brain import commands_text, resolution_commands, storage_owner
from stonewall.holder.api import Holder, HolderFailure
from stonewall.storage.drbd.env import DrbdVersion
from stonewall.storage.drbd.status import ConnectionState, ResourceStatus, Role, summary


@dataclass(frozen=True)
class Finding:
    """What a read-only handler found: `affirmative` is DRBD's advisory "yes" (exit 0)."""

    affirmative: bool
    outcome: str  # registered, still-fenced, unknown; owner-found, ambiguous
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


def peer_unfence(holder: Holder, peer: Node, luns: Sequence[str],
                 deadline: Deadline) -> Finding:
    """Whether `peer` is registered on every one of `luns` again; changes nothing."""
    try:
        report = holder.verify(peer.name, luns, True, deadline)
    except HolderFailure as err:
        return Finding(False, "unknown", f"cannot read the peer's registration: {err}")
    details = {"verification": report.to_jsonable()}
    if report.proven:
        return Finding(True, "registered", f"{peer.name} is registered on every LUN "
                       f"({', '.join(luns)}); nothing to undo", details)
    absent = [check.lun for check in report.checks if check.verdict is False]
    silent = [lun for lun in report.luns
              if (check := report.check(lun)) is None or check.verdict is None]
    unread = f"; no path answered for {', '.join(silent)}" if silent else ""
    if not absent:
        return Finding(False, "unknown", f"cannot tell whether {peer.name} is "
                       f"registered{unread}", details)
    return Finding(False, "still-fenced",
                   f"{peer.name} is not registered on {', '.join(absent)}{unread}; left as is: "
                   "it registers again only after a reboot, when its own holder joins "
                   "(refused in the boot it was fenced in)", details)


def split_brain(holder: Holder, me: Node, peer: Node, resource: str, version: DrbdVersion,
                luns: Sequence[str], last_fence: Mapping[str, Any] | None,
                drbd: ResourceStatus | str, peer_names: Mapping[int, str],
                deadline: Deadline) -> Finding:
    """Who owns the resource's storage and how to resolve; change nothing. `drbd` is DRBD's
    status of the resource here, or why it could not be read."""
    try:
        views = holder.views(luns, deadline)
        unread = ""
    except HolderFailure as err:
        views, unread = {}, f"cannot read the LUNs: {err}"
    ownership = storage_owner(views, me, peer)
    seen = _drbd_view(drbd, me, peer, ownership.other, peer_names)
    details: dict[str, Any] = {"owner": ownership.owner, "reason": unread or ownership.reason,
                               "last_fence": last_fence, "resolved": False, "drbd": seen}
    if ownership.owner is None or ownership.other is None:
        template = resolution_commands(resource, version, "<node that keeps its data>",
                                       "<node whose changes are discarded>")
        details["commands"] = {node: list(lines) for node, lines in template.items()}
        return Finding(False, "ambiguous",
                       f"split brain, storage ownership is ambiguous "
                       f"({unread or ownership.reason}); nothing resolved, choose ONE node "
                       f"whose changes are discarded: {commands_text(template)}; {seen}",
                       details)
    commands = resolution_commands(resource, version, ownership.owner, ownership.other)
    details["commands"] = {node: list(lines) for node, lines in commands.items()}
    return Finding(True, "owner-found",
                   f"split brain, {ownership.owner} owns the storage ({ownership.reason}); "
                   f"not resolved automatically; to keep {ownership.owner}'s data: "
                   f"{commands_text(commands)}; {seen}", details)


def _drbd_view(drbd: ResourceStatus | str, me: Node, peer: Node, discards: str | None,
               peer_names: Mapping[int, str]) -> str:
    """DRBD's side of the story, in one clause."""
    if isinstance(drbd, str):
        return f"DRBD's view here unavailable ({drbd})"
    notes = [f"DRBD here: {summary(drbd, peer_names)}"]
    peer_ids = [node_id for node_id, name in peer_names.items() if name == peer.name]
    connection = drbd.connection(peer_ids[0]) if peer_ids else None
    if connection is not None and connection.connection_state is ConnectionState.CONNECTED:
        notes.append(f"DRBD reports {peer.name} connected again: its after-sb policy may "
                     "have resolved the split already; check before discarding anything")
    if discards == me.name and drbd.role is Role.PRIMARY:
        notes.append(f"{me.name} is Primary here: stop what uses the device before "
                     "`drbdadm secondary`, which refuses while it is open")
    return "; ".join(notes)
