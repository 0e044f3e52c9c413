"""DRBD's fence-peer, unfence-peer and split-brain handlers (docs/fencing.md, docs/drbd.md).

Entry points: the console scripts `stonewall-drbd-fence-peer`, `stonewall-drbd-unfence-peer`
and `stonewall-drbd-split-brain` (`fence_peer_main` ...), and `stonewall drbd fence-peer |
unfence-peer | split-brain`. Both take `[--config FILE] [--node NAME]` and, when the program
is DRBD's usermode helper, DRBD's `<handler> <resource|minor-N>` arguments.

Each is thin: environment -> resource, peer and LUNs -> one decision -> exit status and one
log line (syslog + stderr), plus one event-log record whenever the configuration can be read
(a refused call too).

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
from stonewall.fencing.drbd_verdicts import Finding, peer_unfence, split_brain
from stonewall.fencing.topology import FenceVerdict, fence_peer
from stonewall.holder.client import HolderClient
from stonewall.log import decision_fields, decision_logger
from stonewall.storage.drbd.drbdsetup import ANSWER_SECONDS, DrbdStatusUnavailable, drbd_status
from stonewall.storage.drbd.env import HandlerEnv, HandlerEnvError, parse_handler_env
from stonewall.storage.drbd.exitcodes import (
    FencePeerOutcome, FencePeerExit, advisory_exit_code, exit_code_for)
from stonewall.storage.drbd.resolve import FenceTarget, ResolveError, resolve_fence_target
from stonewall.storage.drbd.status import ResourceStatus
from stonewall.config.timing import t_safe

LOG_IDENT = "stonewall-drbd"
# unfence-peer and split-brain only read the SAN; this bounds them when no storage level
# gives a timeout.
DEFAULT_READ_TIMEOUT = 10.0

_DRBD_OUTCOME = {
    FenceVerdict.FENCED_BY_STORAGE: FencePeerOutcome.PEER_FENCED_BY_STORAGE,
    FenceVerdict.POWERED_OFF: FencePeerOutcome.PEER_POWERED_OFF,
    # Its SAN ports are down: it can no longer write the shared storage (as after a preempt).
    FenceVerdict.FABRIC_FENCED: FencePeerOutcome.PEER_FENCED_BY_STORAGE,
    FenceVerdict.T_SAFE_ELAPSED: FencePeerOutcome.PEER_UNREACHABLE_CONSIDERED_DEAD,
    FenceVerdict.LOST_RACE: FencePeerOutcome.FAILED,
    FenceVerdict.FAILED: FencePeerOutcome.FAILED,
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
                        node_adapters(config, clock, environ, node=call.me.name), clock,
                        power_delay=call.me.power_delay, t_safe=t_safe(config.watchdog))
    code = exit_code_for(_DRBD_OUTCOME[result.verdict], call.env.version)
    message = (f"{call.what}: {result.summary()} -> exit {code} "
               f"({FencePeerExit(code).name})")
    return Decision(code, "fenced" if result.fenced else result.verdict.value, message,
                    result.to_jsonable())


# -- unfence-peer and split-brain (verdicts: fencing/drbd_verdicts.py) ------------------------
def decide_unfence_peer(call: HandlerCall, clock: Clock, environ: Mapping[str, str]
                        ) -> Decision:
    """Report whether the peer is registered again; never register anything."""
    finding = peer_unfence(_holder(call), call.target.peer, call.luns,
                           Deadline.after(_read_timeout(call.config), clock))
    return _decision(call, finding)


def decide_split_brain(call: HandlerCall, clock: Clock, environ: Mapping[str, str]
                       ) -> Decision:
    """Say who owns the storage and how to resolve; change nothing (no config allows more)."""
    deadline = Deadline.after(_read_timeout(call.config), clock)
    finding = split_brain(_holder(call), call.me, call.target.peer, call.env.resource,
                          call.env.version, call.luns,
                          _last_fence(call.config, call.me.name, call.target.peer.name),
                          _drbd_status(call, deadline), dict(call.target.resource.peers),
                          deadline)
    return _decision(call, finding)


def _drbd_status(call: HandlerCall, deadline: Deadline) -> ResourceStatus | str:
    """DRBD's status of the resource here, or why it cannot be had."""
    try:
        found = drbd_status(deadline.earlier(ANSWER_SECONDS), call.env.resource)
    except DrbdStatusUnavailable as err:
        return str(err)
    return next((status for status in found if status.name == call.env.resource),
                f"drbdsetup does not know resource {call.env.resource}")


def _decision(call: HandlerCall, finding: Finding) -> Decision:
    return Decision(advisory_exit_code(finding.affirmative), finding.outcome,
                    f"{call.what}: {finding.message}", finding.details)


def _last_fence(config: ClusterConfig, me: str, peer: str) -> dict[str, Any] | None:
    """The newest record of a fence between the two nodes that succeeded, if any."""
    fences = [record for record in read_events(config.paths.event_log)
              if record.get("outcome") == "fenced" and {record.get("actor"),
                                                        record.get("target")} == {me, peer}]
    return fences[-1] if fences else None


def _holder(call: HandlerCall) -> HolderClient:
    """This node's holder; it must serve the node DRBD names as us."""
    return HolderClient(call.config, call.me.name)


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
        _record_refusal(handler, None, err, failed, config_option, node_option, environ, clock,
                        log)
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
        _record_refusal(handler, env.resource, err, failed, config_option, node_option, environ,
                        clock, log)
        return failed
    try:
        decision = decide(call, clock, environ)
    except Exception as err:  # a bug must still end in the safe status, logged
        log.error("%s: %s: %s -> exit %d", call.what, type(err).__name__, err, failed)
        return failed
    (log.info if decision.exit_code == 0 or decision.outcome == "fenced" else log.error)(
        "%s", decision.message, extra=decision_fields(peer=call.target.peer.name,
                                                      luns=call.luns, outcome=decision.outcome))
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


def _record_refusal(handler: str, resource: str | None, err: Exception, exit_code: int,
                    config_option: str | None, node_option: str | None,
                    environ: Mapping[str, str], clock: Clock, log: Any) -> None:
    """One "refused" event for a call that never reached a decision, when the configuration
    (which names the event log) can be read; without it the log line is the only record."""
    try:
        config = load_config(resolve_config_path(config_option, environ))
    except ConfigError:
        return
    try:
        actor: str | None = local_node(config, node_option, environ).name
    except UnknownLocalNode:
        actor = None
    event = Event(source=f"drbd {handler}", actor=actor, action=handler, target=None,
                  outcome="refused",
                  details={"resource": resource, "exit": exit_code, "error": type(err).__name__,
                           "reason": str(err)})
    try:
        EventLog(config.paths.event_log, clock).append(event)
    except EventLogError as problem:
        log.error("%s: %s (the refusal stands)", handler, problem)


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
