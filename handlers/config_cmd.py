"""`stonewall config check`: validate the configuration file and print a normalised summary.

Exit status: 0 valid, 1 the file cannot be read, 2 invalid (one problem per line on stderr).
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
    check.add_argument("--skip-agents", action="store_true",
                       help="do not run the fence agents for their metadata (when checking on "
                            "a machine without them)")
    check.set_defaults(func=check_command)


def check_command(args: argparse.Namespace) -> int:
    """Run `config check`; returns the exit status."""
    path = resolve_config_path(args.config, os.environ)
    try:
        config = load_config(path)
        problems = [] if args.skip_secrets else password_file_problems(config)
        if not args.skip_agents:
            problems += _agent_problems(config, not args.skip_secrets)
        if problems:
            raise ConfigError(problems)
    except ConfigError as err:
        _report(err.problems, args.json)
        return EXIT_UNREADABLE if isinstance(err, ConfigUnreadable) else EXIT_INVALID
    summary = summarise(config)
    print(json.dumps({"valid": True, **summary}, indent=2) if args.json else render_text(summary))
    return EXIT_VALID


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
