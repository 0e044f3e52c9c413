"""What the Pacemaker agent's actions decide (handlers/fence_agent.py is their entry point):

  off      the storage fence of fencing.topology with one storage level: the same per-peer
           lock, lost-race rule and verification as DRBD's fence-peer;
  on       unfencing: this node joins (only the target may unfence itself);
  status   is the target's key registered on the covered LUNs;
  monitor  does the holder answer and can every covered LUN be read.

Each takes the node's holder (holder.api.Holder), the configuration and a deadline, and
returns an `Outcome`; none prints or exits. A holder that is down, refuses or cannot be
trusted is never success."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from stonewall.clock import Clock, Deadline
from stonewall.config.keys import format_key
from stonewall.config.model import ClusterConfig, FenceLevel, FenceLevelKind, Node
from stonewall.fencing.lock import peer_lock
from stonewall.fencing.topology import FenceAdapters, FenceVerdict, fence_peer
from stonewall.holder.api import Holder, HolderFailure, HolderRefused

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_OFF = 2  # status only: reachable, and the target is off (fenced)


class UnknownHolderNode(Exception):
    """The holder serves a node the agent's configuration does not name."""


@dataclass(frozen=True)
class Outcome:
    """How one action ended: exit status, a one-word result, and one line for stderr."""

    exit_code: int
    result: str  # fenced, not-fenced, refused, unfenced, on, off, unknown, usable, ...
    message: str
    actor: str | None = None  # this node, once the holder said who it is
    details: Mapping[str, Any] = field(default_factory=dict)


def lun_names(config: ClusterConfig, luns: Sequence[str] | None) -> list[str]:
    """The covered LUNs by name, arbiter first (None = every configured LUN)."""
    return list(luns) if luns is not None else [
        lun.name for lun in config.luns_in_arbiter_order()]


def _lun_text(config: ClusterConfig, luns: Sequence[str] | None) -> str:
    names = lun_names(config, luns)
    return f"{len(names)} LUNs ({', '.join(names)})"


def _local_node(config: ClusterConfig, holder: Holder, deadline: Deadline) -> Node:
    """The node the holder serves: this node, as far as the SAN is concerned."""
    name = holder.state(deadline).node
    try:
        return config.node(name)
    except KeyError:
        raise UnknownHolderNode(f"the holder serves node {name!r}, which is not in "
                                f"{config.source}; holder and agent read different "
                                "configurations") from None


def _holder_failure(err: Exception, actor: str | None, what: str) -> Outcome:
    if isinstance(err, HolderRefused):
        return Outcome(EXIT_FAILED, "refused", f"{what}: refused by the holder: {err}", actor)
    return Outcome(EXIT_FAILED, "failed", f"{what}: {err}", actor)


def fence_off(config: ClusterConfig, target: str, luns: Sequence[str] | None, holder: Holder,
              deadline: Deadline, clock: Clock) -> Outcome:
    """Fence `target` by storage through the topology; 0 only when verified gone."""
    what = f"off {target}"
    try:
        local = _local_node(config, holder, deadline)
    except (HolderFailure, UnknownHolderNode) as err:
        return _holder_failure(err, None, what)
    peer = config.node(target)
    if peer.key == local.key:
        return Outcome(EXIT_FAILED, "refused",
                       f"{what}: refused: {target} is this node; a node never fences its "
                       f"own key {format_key(local.key)}", local.name)
    adapters = FenceAdapters(storage=holder, power_off=None, sleep=clock.sleep,
                             serialise=partial(peer_lock, config.paths.runtime_dir,
                                               clock=clock))
    level = FenceLevel(FenceLevelKind.STORAGE, deadline.remaining())
    result = fence_peer(peer, lun_names(config, luns), [level], adapters, clock)
    details = result.to_jsonable()
    if result.fenced:
        return Outcome(EXIT_OK, "fenced", f"{what}: fenced: key {format_key(peer.key)} "
                       f"verified gone from {_lun_text(config, luns)}", local.name, details)
    reason = "; ".join([a.reason for a in result.attempts] + ([result.reason] if result.reason
                                                               else []))
    if result.verdict is FenceVerdict.LOST_RACE:
        reason = f"this node lost the race; {reason}"
    return Outcome(EXIT_FAILED, "not-fenced", f"{what}: NOT fenced: {reason}", local.name,
                   details)


def unfence_on(config: ClusterConfig, target: str, holder: Holder, deadline: Deadline) -> Outcome:
    """Join the cluster's LUNs as this node; only the target may unfence itself."""
    what = f"on {target}"
    actor = None
    try:
        local = _local_node(config, holder, deadline)
        actor = local.name
        if target != actor:
            return Outcome(EXIT_FAILED, "refused",
                           f"{what}: refused: unfencing registers this node's own key, so it "
                           f"runs on {target} itself, not on {actor}", actor)
        result = holder.join(deadline)
    except (HolderFailure, UnknownHolderNode) as err:
        return _holder_failure(err, actor, what)
    details = result.to_jsonable()
    if result.ok:
        return Outcome(EXIT_OK, "unfenced", f"{what}: unfenced: key "
                       f"{format_key(local.key)} registered on every path of "
                       f"{_lun_text(config, None)}", actor, details)
    failures = [f"{item.lun} via {item.path}: {item.detail}" for item in result.failures()]
    return Outcome(EXIT_FAILED, "not-unfenced",
                   f"{what}: NOT unfenced: {'; '.join(failures) or 'the holder reported failure'}",
                   actor, details)


def target_status(config: ClusterConfig, target: str, luns: Sequence[str] | None,
                  holder: Holder, deadline: Deadline) -> Outcome:
    """0 registered somewhere, 2 verified absent on every covered LUN, 1 cannot tell."""
    what = f"status {target}"
    try:
        report = holder.verify(target, luns, False, deadline)
    except HolderFailure as err:
        return _holder_failure(err, None, what)
    details = report.to_jsonable()
    present = [check.lun for check in report.checks if check.verdict is False]
    if present:
        return Outcome(EXIT_OK, "on", f"{what}: on (key registered on {', '.join(present)})",
                       details=details)
    if report.proven:
        return Outcome(EXIT_OFF, "off", f"{what}: off (key absent from "
                       f"{_lun_text(config, luns)})", details=details)
    return Outcome(EXIT_FAILED, "unknown", f"{what}: cannot tell (a LUN did not answer)",
                   details=details)


def device_monitor(config: ClusterConfig, luns: Sequence[str] | None, holder: Holder,
                   deadline: Deadline) -> Outcome:
    """0 when the holder answers and every covered LUN is readable on at least one path.

    This node's own registration is not required: Pacemaker starts the device (a monitor)
    before it unfences the node."""
    try:
        actor = _local_node(config, holder, deadline).name
        report = holder.verify(actor, luns, True, deadline)
    except (HolderFailure, UnknownHolderNode) as err:
        return _holder_failure(err, None, "monitor")
    unreadable = [lun for lun in report.luns
                  if (check := report.check(lun)) is None or not check.paths_up]
    details = report.to_jsonable()
    if unreadable or not report.luns:
        return Outcome(EXIT_FAILED, "unusable",
                       f"monitor: no path answered for {', '.join(unreadable) or 'any LUN'}",
                       actor, details)
    return Outcome(EXIT_OK, "usable", f"monitor: holder of {actor} answers, "
                   f"{_lun_text(config, luns)} readable", actor, details)
