"""`stonewall drbd config`: print the drbd.conf lines that hand fencing to stonewall; and
`stonewall drbd fence-peer|unfence-peer|split-brain` (stonewall.handlers.drbd_handlers)."""
from __future__ import annotations

import argparse
import sys

from stonewall.storage.drbd.env import DrbdVersion, InvalidResourceNameError
from stonewall.storage.drbd.snippets import drbd_config_snippet

EXIT_OK = 0
EXIT_USAGE = 2  # argparse's own code for bad arguments; we use it for a bad resource name too


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `drbd config` to the `stonewall` command line."""
    drbd = subparsers.add_parser("drbd", help="DRBD integration",
                                 description="DRBD integration (see docs/drbd.md).")
    commands = drbd.add_subparsers(dest="drbd_command", metavar="COMMAND", required=True)
    config = commands.add_parser(
        "config", help="print the drbd.conf fencing policy and handler lines",
        description="Print the fencing policy and the handlers { } section that make DRBD "
                    "call stonewall's fence-peer, unfence-peer and split-brain handlers.")
    config.add_argument("--drbd", choices=[v.value for v in DrbdVersion],
                        default=DrbdVersion.V9.value,
                        help="DRBD version of the nodes (default: %(default)s)")
    config.add_argument("--resource", metavar="R",
                        help="name the resource the lines are for (default: the common section)")
    config.set_defaults(func=run_drbd_config)
    _register_handlers(commands)


def _register_handlers(commands: argparse._SubParsersAction) -> None:
    """`drbd fence-peer|unfence-peer|split-brain`: the handlers, for drbd.conf lines that call
    `stonewall drbd <handler>` instead of the stonewall-drbd-* programs."""
    # Imported here: the handlers pull in the holder client and the power adapter, which
    # `stonewall drbd config` does not need.
    from stonewall.handlers.drbd_handlers import add_handler_arguments, subcommand
    for name, text in (("fence-peer", "fence the peer DRBD names (exit 4/5/7 only when "
                                      "verified, 1 otherwise: I/O stays frozen)"),
                       ("unfence-peer", "report whether the peer is registered again; "
                                        "never registers anything"),
                       ("split-brain", "report who owns the storage and the commands that "
                                       "resolve the split brain")):
        parser = commands.add_parser(name, help=text, description=text + ". Reads DRBD's "
                                     "handler environment; see docs/fencing.md.")
        add_handler_arguments(parser)
        parser.set_defaults(func=subcommand)


def run_drbd_config(args: argparse.Namespace) -> int:
    """Print the snippet; exit status 0, or 2 for an unusable resource name."""
    try:
        text = drbd_config_snippet(DrbdVersion(args.drbd), args.resource)
    except InvalidResourceNameError as error:
        print(f"stonewall drbd config: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(text)
    return EXIT_OK
