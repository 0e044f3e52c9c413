"""`fence_stonewall`: the Pacemaker fence agent. Pacemaker decides when a node is fenced;
this agent does it for storage, through the local node's session holder.

Actions and exit statuses (fence-agents FenceAgentAPI.md, reference/pacemaker.md A.2-A.3):
  off           preempt the target's key on every covered LUN and path, arbiter first, and
                verify it gone: 0 fenced (verified), 1 anything else (holder not running,
                unreachable LUN, timeout, lost race, refused). `off` of this node is refused.
  on            unfencing, run by the target on itself: join (register on every path,
                reserve where no reservation exists): 0 joined, 1 not (refused in a boot in
                which this node was fenced).
  status        0 the target's key is registered, 2 it is not (verified on every LUN), 1 cannot tell.
  monitor       0 config, holder and every covered LUN readable; 1 not.
  list          the configured node names, one per line: 0, or 1 without a configuration.
  metadata      the XML description: always 0, reads nothing (runs as user hacluster).
  validate-all  parameters and configuration only, no holder or SAN contact: 0 valid, 1 not.

Every decision is one line on stderr (Pacemaker copies it into its log; `verbose` adds one
with the evidence, an unknown stdin key one warning before it); `off` and `on` also append a
record to the event log (`paths.event_log`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.keys import format_key
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import ClusterConfig, Node
from stonewall.eventlog import Event, EventLog, EventLogError
from stonewall.handlers.fence_agent_metadata import AGENT_NAME, metadata_xml
from stonewall.handlers.fence_agent_params import (
    AgentRequest, AgentUsageError, read_request, stdin_request_text)
from stonewall.holder.client import (HolderClient, HolderError, HolderUnavailable,
                                     storage_shortfall)
from stonewall.holder.client import socket_path
from stonewall.log import decision_logger

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_OFF = 2  # status only: reachable, and the target is off (fenced)


class Holder(Protocol):
    """What the agent asks of the node's session holder (stonewall.holder.client)."""

    def state(self, deadline: Deadline) -> dict[str, Any]: ...

    def join(self, deadline: Deadline) -> dict[str, Any]: ...

    def verify(self, node: str, lun_names: list[str] | None, present: bool,
               deadline: Deadline) -> dict[str, Any]: ...

    def preempt(self, victim_node: str, lun_names: list[str] | None,
                deadline: Deadline) -> dict[str, Any]: ...


def holder_for(config: ClusterConfig) -> Holder:
    """The client of this node's holder, at `<paths.runtime_dir>/holder.sock`."""
    return HolderClient(socket_path(config.paths.runtime_dir))


@dataclass(frozen=True)
class Outcome:
    """How one action ended: exit status, a one-word result, and one line for stderr."""

    exit_code: int
    result: str  # fenced, not-fenced, refused, unfenced, on, off, unknown, usable, ...
    message: str
    actor: str | None = None  # this node, once the holder said who it is
    details: Mapping[str, Any] = field(default_factory=dict)


# -- the LUNs a device covers ----------------------------------------------------------------
def covered_luns(config: ClusterConfig, request: AgentRequest) -> list[str] | None:
    """The LUN names the device covers, arbiter first; None = every configured LUN.

    Raises AgentUsageError for a LUN, DRBD resource or guest the configuration lacks."""
    if not request.scoped:
        return None
    names: list[str] = list(request.luns)
    resources = {resource.name: resource for resource in config.drbd_resources}
    guests = {guest.name: guest for guest in config.guests}
    for kind, wanted, known in (("DRBD resource", request.drbd_resources, resources),
                                ("guest", request.guests, guests)):
        for name in wanted:
            if name not in known:
                raise AgentUsageError(f"{kind} {name!r} is not in {config.source}")
            names.extend(known[name].luns)
    try:
        ordered = config.luns_in_arbiter_order(tuple(dict.fromkeys(names)))
    except KeyError as err:
        raise AgentUsageError(f"LUN {err.args[0]!r} is not in {config.source}") from None
    return [lun.name for lun in ordered]


def _lun_names(config: ClusterConfig, luns: list[str] | None) -> list[str]:
    """The covered LUNs by name, arbiter first (None = every configured LUN)."""
    return luns if luns is not None else [lun.name for lun in config.luns_in_arbiter_order()]


def _lun_text(config: ClusterConfig, luns: list[str] | None) -> str:
    names = _lun_names(config, luns)
    return f"{len(names)} LUNs ({', '.join(names)})"


def _configured_node(config: ClusterConfig, target: str | None, action: str) -> str:
    if not target:
        raise AgentUsageError(f"action {action!r} needs a target: plug, port or nodename")
    try:
        return config.node(target).name
    except KeyError:
        known = ", ".join(node.name for node in config.nodes)
        raise AgentUsageError(f"node {target!r} is not in {config.source} (nodes: {known}); "
                              "map cluster names with pcmk_host_map") from None


def _local_node(config: ClusterConfig, holder: Holder, deadline: Deadline) -> Node:
    """The node the holder serves: this node, as far as the SAN is concerned."""
    name = str(holder.state(deadline).get("node"))
    try:
        return config.node(name)
    except KeyError:
        raise AgentUsageError(f"the holder serves node {name!r}, which is not in "
                              f"{config.source}; holder and agent read different "
                              "configurations") from None


def _holder_failure(err: Exception, actor: str | None, what: str) -> Outcome:
    """A holder that is down, timed out or refused: never success."""
    if isinstance(err, HolderError) and err.kind in ("Refused", "FencedBoot"):
        return Outcome(EXIT_FAILED, "refused", f"{what}: refused by the holder: {err}", actor)
    return Outcome(EXIT_FAILED, "failed", f"{what}: {err}", actor)


# -- the actions that need the holder --------------------------------------------------------
def fence_off(config: ClusterConfig, target: str, luns: list[str] | None, holder: Holder,
              deadline: Deadline) -> Outcome:
    """Preempt `target` on the covered LUNs through the holder; 0 only when verified gone."""
    what = f"off {target}"
    actor = None
    try:
        local = _local_node(config, holder, deadline)
        actor = local.name
        if config.node(target).key == local.key:
            return Outcome(EXIT_FAILED, "refused",
                           f"{what}: refused: {target} is this node; a node never fences its "
                           f"own key {format_key(local.key)}", actor)
        result = holder.preempt(target, luns, deadline)
    except (HolderUnavailable, HolderError) as err:
        return _holder_failure(err, actor, what)
    details = {"luns": _lun_names(config, luns), "preempt": result.get("preempt"),
               "verification": result.get("verification")}
    if result.get("fenced") is True:
        return Outcome(EXIT_OK, "fenced", f"{what}: fenced: key "
                       f"{format_key(config.node(target).key)} verified gone from "
                       f"{_lun_text(config, luns)}", actor, details)
    preempt = result.get("preempt") or {}
    if preempt.get("lost_race"):
        reason = f"this node lost the race: {preempt.get('lost_detail') or 'own key gone'}"
    else:
        reason = "; ".join(storage_shortfall(result)) or "the holder did not prove it"
    return Outcome(EXIT_FAILED, "not-fenced", f"{what}: NOT fenced: {reason}", actor, details)


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
    except (HolderUnavailable, HolderError) as err:
        return _holder_failure(err, actor, what)
    details = {"registered": result.get("registered"), "reserved": result.get("reserved")}
    if result.get("ok") is True:
        return Outcome(EXIT_OK, "unfenced", f"{what}: unfenced: key "
                       f"{format_key(local.key)} registered on every path of "
                       f"{_lun_text(config, None)}", actor, details)
    failures = [f"{item.get('lun')} via {item.get('path')}: {item.get('detail')}"
                for report in (result.get("registered"), result.get("reserved")) if report
                for item in report.get("outcomes", []) if not item.get("ok")]
    return Outcome(EXIT_FAILED, "not-unfenced",
                   f"{what}: NOT unfenced: {'; '.join(failures) or 'the holder reported failure'}",
                   actor, details)


def target_status(config: ClusterConfig, target: str, luns: list[str] | None, holder: Holder,
                  deadline: Deadline) -> Outcome:
    """0 registered somewhere, 2 verified absent on every covered LUN, 1 cannot tell."""
    what = f"status {target}"
    try:
        report = holder.verify(target, luns, False, deadline)
    except (HolderUnavailable, HolderError) as err:
        return _holder_failure(err, None, what)
    checks = report.get("checks", [])
    verdicts = [check.get("verdict") for check in checks]
    if False in verdicts:
        where = [str(check.get("lun")) for check in checks if check.get("verdict") is False]
        return Outcome(EXIT_OK, "on", f"{what}: on (key registered on {', '.join(where)})",
                       details=report)
    if verdicts and all(verdict is True for verdict in verdicts):
        return Outcome(EXIT_OFF, "off", f"{what}: off (key absent from "
                       f"{_lun_text(config, luns)})", details=report)
    return Outcome(EXIT_FAILED, "unknown", f"{what}: cannot tell (a LUN did not answer)",
                   details=report)


def device_monitor(config: ClusterConfig, luns: list[str] | None, holder: Holder,
                   deadline: Deadline) -> Outcome:
    """0 when the holder answers and every covered LUN is readable on at least one path.

    This node's own registration is not required: Pacemaker starts the device (a monitor)
    before it unfences the node."""
    try:
        actor = _local_node(config, holder, deadline).name
        report = holder.verify(actor, luns, True, deadline)
    except (HolderUnavailable, HolderError) as err:
        return _holder_failure(err, None, "monitor")
    unreadable = [check.get("lun") for check in report.get("checks", [])
                  if not check.get("paths_up")]
    if unreadable or not report.get("checks"):
        return Outcome(EXIT_FAILED, "unusable",
                       f"monitor: no path answered for {', '.join(map(str, unreadable)) or 'any LUN'}",
                       actor, report)
    return Outcome(EXIT_OK, "usable", f"monitor: holder of {actor} answers, "
                   f"{_lun_text(config, luns)} readable", actor, report)


# -- the entry point ---------------------------------------------------------------------------
@dataclass
class AgentServices:
    """The outside world of one agent run (tests hand in their own clock or holder)."""

    environ: Mapping[str, str]
    clock: Clock = SYSTEM_CLOCK
    connect_holder: Callable[[ClusterConfig], Holder] = holder_for


def run_agent(request: AgentRequest, services: AgentServices, out: TextIO,
              log: logging.Logger) -> int:
    """Carry out one request; output (metadata, list) to `out`, one line per decision to
    `log`; returns the exit status."""
    if request.action == "metadata":
        out.write(metadata_xml())
        return EXIT_OK
    path = resolve_config_path(request.config_path, services.environ)
    try:
        config = load_config(path)
        luns = covered_luns(config, request)
    except ConfigError as problem:
        first = problem.problems[0] if problem.problems else path
        log.error("%s: configuration %s unusable: %s", request.action, path, first)
        return EXIT_FAILED
    except AgentUsageError as problem:
        log.error("%s: %s", request.action, problem)
        return EXIT_FAILED
    if request.action == "validate-all":
        log.info("validate-all: parameters valid; %s, %d nodes in %s", _lun_text(config, luns),
                 len(config.nodes), path)
        return EXIT_OK
    if request.action == "list":
        out.write("".join(f"{node.name}\n" for node in config.nodes))
        return EXIT_OK
    if request.action == "off" and request.delay:
        # fence-agents' `delay`: only before off, and the action's own timeout starts after it.
        log.info("off: waiting %g s (delay) before fencing", request.delay)
        services.clock.sleep(request.delay)
    deadline = Deadline.after(request.timeout, services.clock)
    try:
        outcome = _run_holder_action(request, config, luns, services, deadline)
    except AgentUsageError as problem:
        outcome = Outcome(EXIT_FAILED, "refused", f"{request.action}: {problem}")
    (log.info if outcome.exit_code != EXIT_FAILED else log.error)("%s", outcome.message)
    if request.verbose and outcome.details:
        log.info("%s: evidence: %s", request.action,
                 json.dumps(outcome.details, sort_keys=True, default=str))
    if request.action in ("off", "on"):
        _record(config, request, outcome, services.clock, log)
    return outcome.exit_code


def _run_holder_action(request: AgentRequest, config: ClusterConfig, luns: list[str] | None,
                       services: AgentServices, deadline: Deadline) -> Outcome:
    if request.action == "monitor":
        return device_monitor(config, luns, services.connect_holder(config), deadline)
    target = _configured_node(config, request.target, request.action)
    holder = services.connect_holder(config)
    if request.action == "off":
        return fence_off(config, target, luns, holder, deadline)
    if request.action == "on":
        return unfence_on(config, target, holder, deadline)
    return target_status(config, target, luns, holder, deadline)


def _record(config: ClusterConfig, request: AgentRequest, outcome: Outcome, clock: Clock,
            log: logging.Logger) -> None:
    event = Event(source=AGENT_NAME, actor=outcome.actor, action=request.action,
                  target=request.target, outcome=outcome.result,
                  details={"exit": outcome.exit_code, "message": outcome.message,
                           "target_from": request.target_source, **outcome.details})
    try:
        EventLog(config.paths.event_log, clock).append(event)
    except EventLogError as problem:
        log.error("%s: %s (the outcome above stands)", request.action, problem)


def _agent_log(request: AgentRequest) -> logging.Logger:
    """The decision logger, also writing to `debug_file` when one is asked for; a debug file
    that cannot be opened is a warning, never a reason not to fence."""
    log = decision_logger(AGENT_NAME)
    for name in request.ignored:
        log.warning("warning: ignoring unknown parameter %r", name)
    if request.debug_file:
        try:
            debug = logging.FileHandler(request.debug_file)
        except OSError as problem:
            log.warning("warning: cannot open debug_file %r: %s", request.debug_file,
                        problem.strerror or problem)
        else:
            debug.setFormatter(logging.Formatter(f"%(asctime)s {AGENT_NAME}: %(message)s"))
            log.addHandler(debug)
    return log


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point of `fence_stonewall`; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        request = read_request(arguments,
                               None if arguments else stdin_request_text(sys.stdin.buffer))
    except AgentUsageError as problem:
        print(f"{AGENT_NAME}: {problem}", file=sys.stderr)
        return EXIT_FAILED
    return run_agent(request, AgentServices(os.environ), sys.stdout, _agent_log(request))


if __name__ == "__main__":
    sys.exit(main())
