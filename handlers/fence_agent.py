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
  manpage       this agent's manual page, fence_stonewall(8), in roff: always 0, reads nothing.
  validate-all  parameters and configuration only, no holder or SAN contact: 0 valid, 1 not.

The decisions live in fencing/agent_actions.py (`off` runs fencing.topology's storage level,
the decision DRBD's fence-peer runs too); this module parses, calls one, and maps it to an
exit status and one line on stderr (Pacemaker copies it into its log). `off` and `on` also
append a record to the event log (`paths.event_log`).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import ClusterConfig
from stonewall.eventlog import Event, EventLog, EventLogError
from stonewall.fencing.agent_actions import (
    EXIT_FAILED, EXIT_OK, Outcome, device_monitor, fence_off, lun_names, target_status,
    unfence_on)
from stonewall.handlers.fence_agent_metadata import AGENT_NAME, metadata_xml
from stonewall.handlers.fence_agent_params import (
    AgentRequest, AgentUsageError, read_request, stdin_request_text)
from stonewall.holder.api import Holder
from stonewall.holder.client import HolderClient
from stonewall.log import decision_fields, decision_logger


def holder_for(config: ClusterConfig) -> Holder:
    """The client of this node's holder, at `<paths.runtime_dir>/holder.sock`."""
    return HolderClient(config)


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


def _configured_node(config: ClusterConfig, target: str | None, action: str) -> str:
    if not target:
        raise AgentUsageError(f"action {action!r} needs a target: plug, port or nodename")
    try:
        return config.node(target).name
    except KeyError:
        known = ", ".join(node.name for node in config.nodes)
        raise AgentUsageError(f"node {target!r} is not in {config.source} (nodes: {known}); "
                              "map cluster names with pcmk_host_map") from None


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
    if request.action == "manpage":
        from stonewall.handlers.fence_agent_manpage import manpage
        out.write(manpage())
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
        names = lun_names(config, luns)
        log.info("validate-all: parameters valid; %d LUNs (%s), %d nodes in %s", len(names),
                 ", ".join(names), len(config.nodes), path)
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
    (log.info if outcome.exit_code != EXIT_FAILED else log.error)(
        "%s", outcome.message, extra=decision_fields(
            peer=request.target, luns=lun_names(config, luns), outcome=outcome.result))
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
        return fence_off(config, target, luns, holder, deadline, services.clock)
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
