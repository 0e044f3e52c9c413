"""`stonewall vm list`: for each guest, who owns its storage, where it runs, and whether those
agree. Built from values passed in (placements per node, domain states per node); rendering
as a table or JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Mapping, Sequence

from stonewall.holder.handoffs import Handoff
from stonewall.vm.libvirt_conn import DomainState
from stonewall.vm.placement import Placement


class GuestVerdict(Enum):
    OK = "ok"
    MIGRATING = "migrating"  # a live migration's handoff is in flight (reason names it)
    RUNS_TWICE = "runs on more than one node"
    STALE_REGISTRATION = "registered but not running here"
    RUNS_WITHOUT_OWNERSHIP = "runs without ownership"
    OWNED_BUT_STOPPED = "owned but stopped"
    CANNOT_TELL = "cannot tell"


@dataclass(frozen=True)
class GuestRow:
    guest: str
    owners: tuple[str, ...]  # nodes that may run it (own every LUN)
    running_on: tuple[str, ...]  # nodes where a QEMU process of it exists
    states: Mapping[str, DomainState]  # node -> state; UNKNOWN where nobody could tell
    verdict: GuestVerdict
    reasons: tuple[str, ...]  # why, one line each; empty for plain "ok"
    warnings: tuple[str, ...] = ()  # disk set-ups that weaken the guard (placement warnings)


def guest_verdict(guest: str, placements: Mapping[str, Placement],
                  states: Mapping[str, DomainState], *, registrants: Sequence[str] = (),
                  migration: Handoff | None = None) -> GuestRow:
    """Judge one guest from its placement on every node and its state on every node.

    A node present in `placements` but missing from `states` counts as UNKNOWN. A definite
    problem (two copies, a copy on a non-owner) is reported even when other nodes cannot tell.
    `registrants`: the nodes registered on its guest LUNs; `migration`: a live migration of
    it in flight (a holder's record), whose two nodes may both show it meanwhile."""
    all_states = {node: states.get(node, DomainState.UNKNOWN) for node in placements}
    owners = tuple(node for node, p in placements.items() if p.allowed)
    running = tuple(node for node, state in all_states.items() if state.active)
    unknown = tuple(node for node, state in all_states.items() if state is DomainState.UNKNOWN)
    trespassing = tuple(node for node in running
                        if not placements[node].allowed and not placements[node].cannot_tell)

    # Warnings depend on the guest's disks only, so every node's placement carries the same.
    warnings = next((p.warnings for p in placements.values()), ())

    def row(verdict: GuestVerdict, reasons: Sequence[str] = ()) -> GuestRow:
        return GuestRow(guest, owners, running, all_states, verdict, tuple(reasons), warnings)

    if migration is not None and set(running) <= {migration.source, migration.destination}:
        return row(GuestVerdict.MIGRATING, [migration.describe()])
    if len(running) > 1:
        return row(GuestVerdict.RUNS_TWICE, [f"a QEMU process exists on {', '.join(running)}"])
    stale = [node for node in registrants if node in all_states and node not in running
             and all_states[node] is not DomainState.UNKNOWN]
    if stale and running:
        return row(GuestVerdict.STALE_REGISTRATION, [
            f"{node} is registered on its LUNs but does not run it (it runs on "
            f"{', '.join(running)}): `stonewall vm stop {guest}` on {node} releases them"
            for node in stale])
    if trespassing:
        return row(GuestVerdict.RUNS_WITHOUT_OWNERSHIP,
                   [f"on {node}: {reason}"
                    for node in trespassing for reason in placements[node].reasons])
    if unknown:
        return row(GuestVerdict.CANNOT_TELL, [f"state on {node} is unknown" for node in unknown])
    unsure = tuple(node for node, p in placements.items() if p.cannot_tell)
    if unsure:
        return row(GuestVerdict.CANNOT_TELL,
                   [f"on {node}: {reason}"
                    for node in unsure for reason in placements[node].reasons])
    if running:
        return row(GuestVerdict.OK)
    if owners:
        return row(GuestVerdict.OWNED_BUT_STOPPED)
    return row(GuestVerdict.OK, ["stopped, and no node owns its storage"])


def render_table(rows: Sequence[GuestRow]) -> str:
    """One line per guest under a header, columns padded to their widest cell."""
    table = [("GUEST", "OWNER", "RUNS ON", "VERDICT")]
    table += [(r.guest, ",".join(r.owners) or "-", ",".join(r.running_on) or "-",
               r.reasons[0] if r.verdict is GuestVerdict.MIGRATING else r.verdict.value)
              for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in table]
    details = [f"  {r.guest}: {reason}" for r in rows for reason in r.reasons]
    details += [f"  {r.guest}: warning: {warning}" for r in rows for warning in r.warnings]
    return "\n".join(lines + details) + "\n"


def render_json(rows: Sequence[GuestRow]) -> str:
    """The rows as a JSON document: {"guests": [...]}; states by node in lower-case words."""
    return json.dumps({"guests": [{
        "guest": r.guest,
        "owners": list(r.owners),
        "running_on": list(r.running_on),
        "states": {node: state.value for node, state in r.states.items()},
        "verdict": r.verdict.name.lower(),
        "reasons": list(r.reasons),
        "warnings": list(r.warnings),
    } for r in rows]}, indent=2) + "\n"
