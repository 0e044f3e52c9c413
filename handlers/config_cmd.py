"""`stonewall config check`: validate the configuration file and print a normalised summary.

Exit status: 0 valid, 1 the file cannot be read (or, with --on-node, this host has a problem),
2 invalid (one problem per line on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from stonewall.config.errors import ConfigError, ConfigProblem, ConfigUnreadable
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import ClusterConfig
from stonewall.config.secrets import password_file_problems
from stonewall.config.summary import render_text, summarise

EXIT_VALID = 0
EXIT_UNREADABLE = 1
EXIT_INVALID = 2
EXIT_HOST_PROBLEM = 1  # --on-node: the file is valid, this host does not match it


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `config check` to the stonewall command."""
    config = subparsers.add_parser("config", help="work with the cluster configuration file",
                                   description="Work with the cluster configuration file.")
    actions = config.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate the configuration and print a normalised summary",
        description="Validate the configuration file (--config, $STONEWALL_CONFIG or "
                    "/etc/stonewall/cluster.yaml) and print a normalised summary. Exit status: "
                    "0 valid, 1 unreadable, 2 invalid (one problem per line on stderr).")
    check.add_argument("--json", action="store_true", help="print the summary (or the problems) as JSON")
    check.add_argument("--skip-secrets", action="store_true",
                       help="do not read the IPMI password files (when checking on another machine)")
    check.add_argument("--on-node", action="store_true",
                       help="also check this host against the file: this node, sg LUN maps and "
                            "paths, the watchdog device, directories, secrets, the holder "
                            "socket and every BMC; one line per problem with its fix, exit 1 "
                            "if there is one")
    check.add_argument("--node", metavar="NAME",
                       help="with --on-node: this node's name (default: $STONEWALL_NODE, else "
                            "the host name)")
    check.add_argument("--skip-agents", action="store_true",
                       help="do not run the fence agents for their metadata (when checking on "
                            "a machine without them)")
    check.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    """Run `config check`; returns the exit status."""
    path = resolve_config_path(args.config, os.environ)
    try:
        config = load_config(path)
        # --on-node reads the secrets among the host's checks, each with its fix.
        problems = [] if args.skip_secrets or args.on_node else password_file_problems(config)
        if not args.skip_agents:
            problems += _agent_problems(config, not args.skip_secrets)
        if problems:
            raise ConfigError(problems)
    except ConfigError as err:
        _report(err.problems, args.json)
        return EXIT_UNREADABLE if isinstance(err, ConfigUnreadable) else EXIT_INVALID
    if args.on_node:
        return _on_node(config, args)
    summary = summarise(config)
    print(json.dumps({"valid": True, **summary}, indent=2) if args.json else render_text(summary))
    return EXIT_VALID


def _on_node(config: ClusterConfig, args: argparse.Namespace) -> int:
    from stonewall.handlers.node_check import Host, check_node
    from stonewall.storage.paths import KernelRoots

    host = Host(os.environ, KernelRoots.of(config.paths).discover)
    findings = check_node(config, args.node, host)
    problems = [finding for finding in findings if not finding.ok]
    if args.json:
        print(json.dumps({"valid": True, "host_ok": not problems, "findings": [
            {"check": f.check, "ok": f.ok, "text": f.text, "fix": f.fix} for f in findings]},
            indent=2))
    else:
        for finding in findings:
            print(f"{'ok' if finding.ok else 'PROBLEM'}: {finding}",
                  file=sys.stdout if finding.ok else sys.stderr)
        print(f"{config.source}: {len(findings)} checks on this host, {len(problems)} "
              f"problem(s)")
    return EXIT_HOST_PROBLEM if problems else EXIT_VALID


def _agent_problems(config: ClusterConfig, check_secrets: bool) -> list[ConfigProblem]:
    """Fence devices checked against their agents' metadata (cached in the state dir)."""
    from stonewall.config.agent_check import agent_problems
    from stonewall.power.agent_metadata import MetadataCache

    if not any(node.fence_devices for node in config.nodes):
        return []
    cache_dir = os.path.join(config.paths.state_dir, "agent-metadata")
    writable = os.access(config.paths.state_dir, os.W_OK)
    return agent_problems(config, MetadataCache(cache_dir if writable else None), check_secrets)


def _report(problems: tuple[ConfigProblem, ...], as_json: bool) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)
    if as_json:
        print(json.dumps({"valid": False, "problems": [vars(p) for p in problems]}, indent=2))
