"""DRBD's fence-peer, unfence-peer and split-brain handlers (docs/fencing.md, docs/drbd.md).

Entry points: the console scripts `stonewall-drbd-fence-peer`, `stonewall-drbd-unfence-peer`
and `stonewall-drbd-split-brain` (`fence_peer_main` ...), and `stonewall drbd fence-peer |
unfence-peer | split-brain`. Both take `[--config FILE] [--node NAME]` and, when the program
is DRBD's usermode helper, DRBD's `<handler> <resource|minor-N>` arguments.

Each is thin: environment -> resource, peer and LUNs -> one decision -> exit status and one
log line (syslog + stderr), plus one event-log record once the configuration is known.

fence-peer exits with DRBD's "fenced" statuses (4 storage, 7 power, 5 T_safe) only after
verification; anything else, including every error, exits 1, which DRBD reads as "helper
broken" and which keeps I/O frozen under `fencing resource-and-stonith`.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import ClusterConfig, FenceLevelKind, Node
from stonewall.eventlog import Event, EventLog, EventLogError, read_events
from stonewall.fencing.adapters import node_adapters
from stonewall.fencing.split_brain import (
    commands_text, resolution_commands, storage_owner)
from stonewall.fencing.topology import FenceResult, Verdict, fence_peer
from stonewall.holder.client import HolderClient, HolderError, HolderUnavailable
from stonewall.holder.client import socket_path
from stonewall.log import decision_logger
from stonewall.storage.drbd.env import HandlerEnv, HandlerEnvError, parse_handler_env
from stonewall.storage.drbd.exitcodes import (
    FenceOutcome, FencePeerExit, advisory_exit_code, exit_code_for)
from stonewall.storage.drbd.resolve import FenceTarget, ResolveError, resolve_fence_target
from stonewall.storage.view import view_from_json
from stonewall.watchdog.timing import t_safe

LOG_IDENT = "stonewall-drbd"
# unfence-peer and split-brain only read the SAN; this bounds them when no storage level
# gives a timeout.
DEFAULT_READ_TIMEOUT = 10.0

_DRBD_OUTCOME = {
    Verdict.FENCED_BY_STORAGE: FenceOutcome.PEER_FENCED_BY_STORAGE,
    Verdict.POWERED_OFF: FenceOutcome.PEER_POWERED_OFF,
    # Its SAN ports are down: it can no longer write the shared storage (as after a preempt).
    Verdict.FABRIC_FENCED: FenceOutcome.PEER_FENCED_BY_STORAGE,
    Verdict.T_SAFE_ELAPSED: FenceOutcome.PEER_UNREACHABLE_CONSIDERED_DEAD,
    Verdict.LOST_RACE: FenceOutcome.FAILED,
    Verdict.FAILED: FenceOutcome.FAILED,
}

# Everything that means "this call cannot be tied to a configured resource, peer and node".
_SETUP_ERRORS = (ConfigError, ResolveError, UnknownLocalNode)


@dataclass(frozen=True)
class HandlerCall:
    """One handler invocation, resolved against the configuration."""

    handler: str  # fence-peer, unfence-peer, split-brain
    config: ClusterConfig
    env: HandlerEnv
    target: FenceTarget
    me: Node

    @property
    def luns(self) -> list[str]:
        """The resource's LUNs, arbiter first."""
        return [lun.name for lun in self.config.luns_in_arbiter_order(self.target.lun_names)]

    @property
    def what(self) -> str:
        return f"{self.handler} {self.env.resource} peer {self.target.peer.name}"


@dataclass(frozen=True)
class Decision:
    """What a handler concluded: exit status, a one-word outcome, one log line, details."""

    exit_code: int
    outcome: str
    message: str
    details: Mapping[str, Any]


def resolve_call(handler: str, env: HandlerEnv, config_option: str | None,
                 node_option: str | None, environ: Mapping[str, str]) -> HandlerCall:
    """Load the configuration and find the resource, the peer and this node.

    Raises one of ConfigError, ResolveError, UnknownLocalNode."""
    config = load_config(resolve_config_path(config_option, environ))
    target = resolve_fence_target(config, env)
    return HandlerCall(handler, config, env, target,
                       _this_node(config, target, env, node_option, environ))


def _this_node(config: ClusterConfig, target: FenceTarget, env: HandlerEnv,
               node_option: str | None, environ: Mapping[str, str]) -> Node:
    # DRBD 9 names us by node id; 8.4 does not, so fall back to --node / $STONEWALL_NODE /
    # the host name, which docs/config.md says match DRBD's `on` names.
    by_drbd = target.resource.peers.get(env.my_node_id) if env.my_node_id is not None else None
    claimed = node_option or environ.get("STONEWALL_NODE")
    if by_drbd is not None and claimed and claimed != by_drbd:
        raise UnknownLocalNode(f"this node is {claimed} (--node or STONEWALL_NODE), but "
                               f"DRBD_MY_NODE_ID {env.my_node_id} is {by_drbd} in resource "
                               f"{target.resource.name}")
    me = local_node(config, by_drbd or claimed, environ)
    if me.name == target.peer.name:
        raise UnknownLocalNode(f"this node resolves to {me.name}, the peer DRBD names")
    return me


# -- fence-peer -------------------------------------------------------------------------------
def decide_fence_peer(call: HandlerCall, clock: Clock, environ: Mapping[str, str]) -> Decision:
    """Run the topology against the peer; the DRBD status says "fenced" only when verified."""
    config = call.config
    result = fence_peer(call.target.peer, call.luns, config.fencing,
                        node_adapters(config, clock, environ), clock,
                        power_delay=call.me.power_delay, t_safe=t_safe(config.watchdog))
    code = exit_code_for(_DRBD_OUTCOME[result.verdict], call.env.version)
    message = (f"{call.what}: {result.summary()} -> exit {code} "
               f"({FencePeerExit(code).name})")
    return Decision(code, "fenced" if result.fenced else result.verdict.value, message,
                    _result_details(result))


def _result_details(result: FenceResult) -> dict[str, Any]:
    return {
        "verdict": result.verdict.value,
        "luns": list(result.luns),
        "elapsed": round(result.elapsed, 3),
        "lock_wait": round(result.lock_wait, 3),
        "reason": result.reason,
        "levels": [{"level": a.kind.value, "devices": a.devices, "follow_up": a.follow_up,
                    "started": round(a.started, 3),
                    "duration": round(a.duration, 3), "verified": a.verified,
                    "reason": a.reason, **a.details} for a in result.attempts],
    }


# -- unfence-peer -----------------------------------------------------------------------------
def decide_unfence_peer(call: HandlerCall, clock: Clock, environ: Mapping[str, str]
                        ) -> Decision:
    """Report whether the peer is registered again; never register anything.

    Only the peer's own holder can register its key (registrations belong to its nexuses),
    and it refuses to in the boot it was fenced in. So there is nothing for this node to undo:
    a resync that finished does not prove the peer rebooted."""
    deadline = Deadline.after(_read_timeout(call.config), clock)
    try:
        answer = _holder(call.config).verify(call.target.peer.name, call.luns, True, deadline)
    except (HolderUnavailable, HolderError) as err:
        return Decision(advisory_exit_code(False), "unknown",
                        f"{call.what}: cannot read the peer's registration: {err}", {})
    if answer.get("proven") is True:
        return Decision(advisory_exit_code(True), "registered",
                        f"{call.what}: {call.target.peer.name} is registered on every LUN "
                        f"({', '.join(call.luns)}); nothing to undo", {"verification": answer})
    checks = answer.get("checks", [])
    absent = [str(check.get("lun")) for check in checks if check.get("verdict") is False]
    silent = [str(check.get("lun")) for check in checks if check.get("verdict") is None]
    unread = f"; no path answered for {', '.join(silent)}" if silent else ""
    if not absent:
        return Decision(advisory_exit_code(False), "unknown",
                        f"{call.what}: cannot tell whether {call.target.peer.name} is "
                        f"registered{unread}", {"verification": answer})
    return Decision(advisory_exit_code(False), "still-fenced",
                    f"{call.what}: {call.target.peer.name} is not registered on "
                    f"{', '.join(absent)}{unread}; left as is: it registers again only after "
                    "a reboot, when its own holder joins (refused in the boot it was fenced "
                    "in)", {"verification": answer})


# -- split-brain ------------------------------------------------------------------------------
def decide_split_brain(call: HandlerCall, clock: Clock, environ: Mapping[str, str]
                       ) -> Decision:
    """Say who owns the storage and how to resolve; change nothing (no config allows more)."""
    deadline = Deadline.after(_read_timeout(call.config), clock)
    peer, resource = call.target.peer, call.env.resource
    last_fence = _last_fence(call.config, call.me.name, peer.name)
    try:
        answer = _holder(call.config).views(call.luns, deadline)
        views = {name: view_from_json(data) for name, data in answer.items()}
    except (HolderUnavailable, HolderError) as err:
        views, unread = {}, f"cannot read the LUNs: {err}"
    else:
        unread = ""
    ownership = storage_owner(views, call.me, peer)
    details: dict[str, Any] = {"owner": ownership.owner, "reason": unread or ownership.reason,
                               "last_fence": last_fence, "resolved": False}
    if ownership.owner is None or ownership.other is None:
        template = resolution_commands(resource, call.env.version, "<node that keeps its data>",
                                       "<node whose changes are discarded>")
        details["commands"] = {node: list(lines) for node, lines in template.items()}
        return Decision(advisory_exit_code(False), "ambiguous",
                        f"{call.what}: split brain, storage ownership is ambiguous "
                        f"({unread or ownership.reason}); nothing resolved, choose ONE node "
                        f"whose changes are discarded: {commands_text(template)}", details)
    commands = resolution_commands(resource, call.env.version, ownership.owner,
                                   ownership.other)
    details["commands"] = {node: list(lines) for node, lines in commands.items()}
    return Decision(advisory_exit_code(True), "owner-found",
                    f"{call.what}: split brain, {ownership.owner} owns the storage "
                    f"({ownership.reason}); not resolved automatically; to keep "
                    f"{ownership.owner}'s data: {commands_text(commands)}", details)


def _last_fence(config: ClusterConfig, me: str, peer: str) -> dict[str, Any] | None:
    """The newest record of a fence between the two nodes that succeeded, if any."""
    fences = [record for record in read_events(config.paths.event_log)
              if record.get("outcome") == "fenced" and {record.get("actor"),
                                                        record.get("target")} == {me, peer}]
    return fences[-1] if fences else None


def _holder(config: ClusterConfig) -> HolderClient:
    return HolderClient(socket_path(config.paths.runtime_dir))


def _read_timeout(config: ClusterConfig) -> float:
    return next((level.timeout for level in config.fencing
                 if level.kind is FenceLevelKind.STORAGE), DEFAULT_READ_TIMEOUT)


# -- running a handler ------------------------------------------------------------------------
Decide = Callable[[HandlerCall, Clock, Mapping[str, str]], Decision]

_HANDLERS: dict[str, tuple[Decide, int]] = {
    # handler -> (decision, status for a call that could not be resolved)
    "fence-peer": (decide_fence_peer, int(FencePeerExit.FAILED)),
    "unfence-peer": (decide_unfence_peer, advisory_exit_code(False)),
    "split-brain": (decide_split_brain, advisory_exit_code(False)),
}


def run_handler(handler: str, config_option: str | None, node_option: str | None,
                helper_argv: Sequence[str], environ: Mapping[str, str],
                clock: Clock = SYSTEM_CLOCK) -> int:
    """Resolve, decide, log one line and append one event; returns the exit status."""
    log = decision_logger(LOG_IDENT)
    try:
        env = parse_handler_env(environ, [handler, *helper_argv])
    except HandlerEnvError as err:
        failed = _HANDLERS[handler][1]
        log.error("%s: refused, %s: %s -> exit %d", handler, type(err).__name__, err, failed)
        return failed
    # As DRBD's usermode helper the program is called for every helper: argv names which.
    # Helpers stonewall does not handle get drbdadm's answer for an unconfigured one (0).
    handler = env.handler or handler
    if handler not in _HANDLERS:
        log.info("%s %s: no stonewall handler, nothing to do -> exit 0", handler, env.resource)
        return 0
    decide, failed = _HANDLERS[handler]
    try:
        call = resolve_call(handler, env, config_option, node_option, environ)
    except _SETUP_ERRORS as err:
        log.error("%s %s: refused, %s: %s -> exit %d", handler, env.resource,
                  type(err).__name__, str(err).replace("\n", "; "), failed)
        return failed
    try:
        decision = decide(call, clock, environ)
    except Exception as err:  # a bug must still end in the safe status, logged
        log.error("%s: %s: %s -> exit %d", call.what, type(err).__name__, err, failed)
        return failed
    (log.info if decision.exit_code == 0 or decision.outcome == "fenced" else log.error)(
        "%s", decision.message)
    _record(call, decision, clock, log)
    return decision.exit_code


def _record(call: HandlerCall, decision: Decision, clock: Clock, log: Any) -> None:
    event = Event(source=f"drbd {call.handler}", actor=call.me.name, action=call.handler,
                  target=call.target.peer.name, outcome=decision.outcome,
                  details={"resource": call.env.resource, "drbd": call.env.version.value,
                           "exit": decision.exit_code, **decision.details})
    try:
        EventLog(call.config.paths.event_log, clock).append(event)
    except EventLogError as err:
        log.error("%s: %s (the decision stands)", call.what, err)


# -- command lines ----------------------------------------------------------------------------
def add_handler_arguments(parser: argparse.ArgumentParser) -> None:
    """--node and DRBD's usermode-helper arguments (shared by scripts and subcommands)."""
    parser.add_argument("--node", metavar="NAME",
                        help="this node's name (default: from DRBD_MY_NODE_ID, else "
                             "$STONEWALL_NODE, else the host name)")
    parser.add_argument("helper_args", nargs="*", metavar="HANDLER RESOURCE",
                        help="only when run as DRBD's usermode helper: the handler name and "
                             "the resource (or minor-N)")


def _script_main(handler: str, argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"stonewall-drbd-{handler}",
        description=f"DRBD {handler} handler (docs/fencing.md). Run by drbdadm from "
                    "drbd.conf with no arguments.")
    parser.add_argument("--config", metavar="FILE",
                        help="cluster configuration (default: $STONEWALL_CONFIG or "
                             "/etc/stonewall/cluster.yaml)")
    add_handler_arguments(parser)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        # argparse exits 2 on bad usage; for fence-peer 2 is also "helper broken", but say
        # so explicitly: the status that keeps I/O frozen.
        return _HANDLERS[handler][1] if exit_.code else 0
    return run_handler(handler, args.config, args.node, args.helper_args, os.environ)


def fence_peer_main(argv: Sequence[str] | None = None) -> int:
    """`stonewall-drbd-fence-peer`."""
    return _script_main("fence-peer", argv)


def unfence_peer_main(argv: Sequence[str] | None = None) -> int:
    """`stonewall-drbd-unfence-peer`."""
    return _script_main("unfence-peer", argv)


def split_brain_main(argv: Sequence[str] | None = None) -> int:
    """`stonewall-drbd-split-brain`."""
    return _script_main("split-brain", argv)


def subcommand(args: argparse.Namespace) -> int:
    """`stonewall drbd fence-peer|unfence-peer|split-brain` (set as the parsers' func)."""
    return run_handler(args.drbd_command, args.config, args.node, args.helper_args, os.environ)
