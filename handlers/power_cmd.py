"""`stonewall power status|on|off NODE [--json] [--timeout S]`: operator power commands
through the node's BMC (see docs/power.md).

Exit status: 0 done and verified (status: the state was read, on or off); 1 the BMC failed
(unreachable, credentials refused, deadline passed, state unknown or never reached);
2 usage or configuration error (bad config, unknown node, no ipmi section, unusable secret).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import Any

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import IpmiSettings
from stonewall.config.secrets import SecretError, read_secret
from stonewall.power.errors import IpmiSettingsError
from stonewall.power.fence import (
    PowerAttempt, PowerChangeResult, power_off_verified, power_on_verified, power_status)
from stonewall.power.ipmi import IpmiClient
from stonewall.power.protocol import PowerState

EXIT_OK = 0
EXIT_BMC_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command cannot run as asked (config, node, secret, settings)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `power status|on|off` to the stonewall command."""
    power = subparsers.add_parser(
        "power", help="read or switch a node's power through its BMC (IPMI)",
        description="Read or switch a node's power through its BMC. Exit status: 0 done and "
                    "verified, 1 the BMC failed or the state was not verified, 2 usage or "
                    "configuration error.")
    actions = power.add_subparsers(dest="power_action", metavar="ACTION", required=True)
    for action, text in (("status", "read the power state"),
                         ("on", "power on and wait until the BMC reports on"),
                         ("off", "hard power off and wait until the BMC reports off")):
        parser = actions.add_parser(action, help=text, description=text + ".")
        parser.add_argument("node", metavar="NODE", help="node name from the configuration")
        parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
        parser.add_argument("--timeout", type=float, metavar="SECONDS",
                            help="deadline for the whole action (default: the node's "
                                 "ipmi.timeout)")
        parser.set_defaults(func=power_command)


def power_command(args: argparse.Namespace) -> int:
    """Run `power ACTION NODE`; returns the exit status."""
    try:
        settings, client = client_for(args.config, args.node)
        seconds = settings.timeout if args.timeout is None else args.timeout
        if seconds <= 0:
            raise UsageError(f"--timeout must be positive, not {seconds}")
    except UsageError as error:
        print(f"stonewall power: {error}", file=sys.stderr)
        return EXIT_USAGE
    deadline = Deadline.after(seconds, SYSTEM_CLOCK)
    if args.power_action == "status":
        attempt = power_status(client, deadline, SYSTEM_CLOCK)
        known = attempt.state in (PowerState.ON, PowerState.OFF)
        line = (f"{args.node}: power is {attempt.state.value}" if known else
                f"{args.node}: power state not known: {attempt.detail}")
        report(args, known, line, status_document(attempt))
        return EXIT_OK if known else EXIT_BMC_FAILED
    drive = power_off_verified if args.power_action == "off" else power_on_verified
    result = drive(client, deadline, SYSTEM_CLOCK, settings.poll_interval)
    report(args, result.verified, f"{args.node}: power {result.summary()}",
           change_document(result))
    return EXIT_OK if result.verified else EXIT_BMC_FAILED


def client_for(config_path: str | None, node_name: str) -> tuple[IpmiSettings, IpmiClient]:
    """The node's IPMI settings and a client for its BMC; UsageError when there are none."""
    path = resolve_config_path(config_path, os.environ)
    try:
        config = load_config(path)
    except ConfigError as error:
        raise UsageError(f"configuration {path} is not usable:\n{error}") from None
    try:
        node = config.node(node_name)
    except KeyError:
        known = ", ".join(n.name for n in config.nodes)
        raise UsageError(f"no node {node_name!r} in {path} (nodes: {known})") from None
    if node.ipmi is None:
        raise UsageError(f"node {node_name} has no ipmi section in {path}")
    try:
        return node.ipmi, IpmiClient(node.ipmi, read_secret(node.ipmi.password, os.environ))
    except (SecretError, IpmiSettingsError) as error:
        raise UsageError(f"node {node_name}: {error}") from None


def report(args: argparse.Namespace, ok: bool, line: str, document: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps({"node": args.node, "action": args.power_action, "ok": ok,
                          "message": line, **document}, indent=2))
    else:
        print(line, file=sys.stdout if ok else sys.stderr)


def status_document(attempt: PowerAttempt) -> dict[str, Any]:
    return {"state": attempt.state.value if attempt.state else None,
            "reason": attempt.failure.value if attempt.failure else None,
            "elapsed": round(attempt.duration, 3)}


def change_document(result: PowerChangeResult) -> dict[str, Any]:
    return {"target": result.target.value, "verified": result.verified,
            "reason": result.reason.value if result.reason else None,
            "elapsed": round(result.elapsed, 3),
            "attempts": [{**asdict(a), "started": round(a.started, 3),
                          "duration": round(a.duration, 3)} for a in result.attempts]}
