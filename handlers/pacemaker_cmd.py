"""`stonewall pacemaker install-agent`: link /usr/sbin/fence_stonewall to the agent.

Exit status: 0 linked or already linked; 1 a file that is not stonewall's link is in the way,
or the link cannot be written; 2 no fence_stonewall executable was found.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stonewall.handlers.fence_agent_install import (
    DEFAULT_SBIN_DIR, AgentInstallError, AgentNotFound, install_agent)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NOT_FOUND = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `pacemaker install-agent` to the stonewall command."""
    pacemaker = subparsers.add_parser("pacemaker", help="integration with Pacemaker's fencer",
                                      description="Integration with Pacemaker's fencer.")
    actions = pacemaker.add_subparsers(dest="pacemaker_action", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install-agent", help="link /usr/sbin/fence_stonewall so pacemaker-fenced finds it",
        description="Link <sbin-dir>/fence_stonewall to the fence_stonewall executable "
                    "(pacemaker-fenced runs agents only from /usr/sbin). Idempotent; never "
                    "replaces a file that is not its own link.",
        epilog="exit status: 0 linked or unchanged; 1 something else is in the way or the "
               "link cannot be written; 2 no fence_stonewall executable found")
    install.add_argument("--sbin-dir", type=Path, default=DEFAULT_SBIN_DIR,
                         help="where the fencer looks (default: %(default)s)")
    install.add_argument("--source", type=Path,
                         help="the executable to link to (default: fence_stonewall beside this "
                              "Python, else on $PATH)")
    install.set_defaults(func=install_agent_command)


def install_agent_command(args: argparse.Namespace) -> int:
    """Run `pacemaker install-agent`; returns the exit status."""
    try:
        result = install_agent(args.sbin_dir, args.source)
    except AgentNotFound as err:
        print(f"stonewall pacemaker install-agent: {err}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except AgentInstallError as err:
        print(f"stonewall pacemaker install-agent: {err}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"{result.link} -> {result.source}: {result.action.value}")
    return EXIT_OK
