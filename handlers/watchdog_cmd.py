"""`stonewall watchdog timing`: the self-fencing bounds worked out for the configured
watchdog settings (or the built-in defaults), T_safe included.

Exit status: 0 printed, 1 the configuration cannot be read, 2 it is invalid.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

from stonewall.config.errors import ConfigError, ConfigUnreadable
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import WatchdogSettings
from stonewall.watchdog.timing import format_timing_table, t_safe, timing_table

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `watchdog timing` to the stonewall command."""
    watchdog = subparsers.add_parser("watchdog", help="the self-fencing watchdog service",
                                     description="The self-fencing watchdog service.")
    actions = watchdog.add_subparsers(dest="watchdog_action", metavar="ACTION", required=True)
    timing = actions.add_parser(
        "timing", help="print the self-fencing time bounds and T_safe",
        description="Print, for the configured watchdog settings, the worst case from a "
                    "preemption or from the last good ownership check to the node's reset, "
                    "and T_safe. Exit status: 0 printed, 1 unreadable config, 2 invalid.")
    timing.add_argument("--defaults", action="store_true",
                        help="use the built-in default settings instead of the configuration")
    timing.add_argument("--json", action="store_true", help="print the rows as JSON")
    timing.set_defaults(func=timing_command)


def timing_command(args: argparse.Namespace) -> int:
    """Run `watchdog timing`; returns the exit status."""
    if args.defaults:
        settings = WatchdogSettings()
    else:
        try:
            settings = load_config(resolve_config_path(args.config, os.environ)).watchdog
        except ConfigError as err:
            for problem in err.problems:
                print(problem, file=sys.stderr)
            return EXIT_UNREADABLE if isinstance(err, ConfigUnreadable) else EXIT_INVALID
    rows = timing_table(settings)
    if args.json:
        print(json.dumps({"settings": asdict(settings), "t_safe": t_safe(settings),
                          "rows": [asdict(row) for row in rows]}, indent=2))
    else:
        print(format_timing_table(rows))
    return EXIT_OK
