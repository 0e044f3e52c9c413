"""After a DRBD split brain: which node owns the storage, and the exact commands that resolve
it by discarding the other node's changes.

The SAN is the witness: a node whose key is gone from the resource's LUNs was fenced and
cannot have been the legitimate writer since, so the node still registered owns the data.
When both or neither are registered, or a LUN did not answer, ownership is ambiguous and
nothing is chosen. Whatever the verdict, only ONE side's data is ever named for discarding.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stonewall.config.model import Node
from stonewall.storage.drbd.env import DrbdVersion
from stonewall.storage.view import LunView


@dataclass(frozen=True)
class Ownership:
    """Who owns the resource's storage, and why (per LUN where it is not clear)."""

    owner: str | None  # node name, None when ambiguous
    other: str | None  # the node whose changes are discarded, None when ambiguous
    reason: str


def storage_owner(views: Mapping[str, LunView], me: Node, peer: Node) -> Ownership:
    """The node registered on every path that answered of every LUN while the other is absent
    from all of them; otherwise no owner."""
    if not views:
        return Ownership(None, None, "no LUN was read")
    unreachable = sorted(name for name, view in views.items() if not view.reachable)
    if unreachable:
        return Ownership(None, None, f"no path answered for {', '.join(unreachable)}")
    for owner, other in ((me, peer), (peer, me)):
        if all(view.registered_everywhere(owner.key) and view.absent_everywhere(other.key)
               for view in views.values()):
            return Ownership(owner.name, other.name,
                             f"{owner.name} is registered on every LUN and {other.name}'s key "
                             "is gone (it was fenced)")
    both = [name for name, view in views.items()
            if view.registered_everywhere(me.key) and view.registered_everywhere(peer.key)]
    if len(both) == len(views):
        return Ownership(None, None, f"both {me.name} and {peer.name} are registered on every "
                                     "LUN: neither was fenced")
    return Ownership(None, None, "registrations differ between LUNs or paths: "
                     + "; ".join(f"{name}: {_keys_text(view, me, peer)}"
                                 for name, view in sorted(views.items())))


def _keys_text(view: LunView, me: Node, peer: Node) -> str:
    states = []
    for node in (me, peer):
        if view.registered_everywhere(node.key):
            states.append(f"{node.name} registered")
        elif view.absent_everywhere(node.key):
            states.append(f"{node.name} absent")
        else:
            states.append(f"{node.name} on some paths")
    return ", ".join(states)


def resolution_commands(resource: str, version: DrbdVersion, keep: str, discard: str
                        ) -> dict[str, tuple[str, ...]]:
    """The commands, per node, that resync `discard` from `keep` (reference/drbd.md 4).

    `--discard-my-data` is honoured only when connecting from StandAlone, hence the
    disconnect first; the survivor reconnects only if it is StandAlone too."""
    if keep == discard:
        raise ValueError("the node that keeps its data cannot also discard it")
    discard_connect = (f"drbdadm connect --discard-my-data {resource}"
                       if DrbdVersion(version) is DrbdVersion.V9
                       else f"drbdadm -- --discard-my-data connect {resource}")
    return {
        discard: (f"drbdadm disconnect {resource}", f"drbdadm secondary {resource}",
                  discard_connect),
        keep: (f"drbdadm disconnect {resource}", f"drbdadm connect {resource}"),
    }


def commands_text(commands: Mapping[str, tuple[str, ...]]) -> str:
    """`on NODE: cmd; cmd` per node, in one line."""
    return " | ".join(f"on {node}: {'; '.join(lines)}" for node, lines in commands.items())
