"""The `stonewall` command: one parser, subcommands registered by the handlers/ modules.

Each handler module exposes `register(subparsers)`, which adds its parser(s) and sets
`func(args) -> exit status`. Handler modules keep heavy imports (libvirt, pyghmi) inside
their functions, so `stonewall --help` and the fence path stay fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from stonewall import __version__

SUBCOMMAND_MODULES = (
    "stonewall.handlers.status_cmd",
    "stonewall.handlers.config_cmd",
    "stonewall.handlers.holder_cmd",
    "stonewall.handlers.drbd_config_cmd",
    "stonewall.handlers.power_cmd",
    "stonewall.handlers.fabric_cmd",
    "stonewall.handlers.watchdog_cmd",
    "stonewall.handlers.multipath_cmd",
    "stonewall.handlers.pacemaker_cmd",
)

# Commands timed from process start (`status`, measured in benchmarks/): their parser alone is
# built, so the command imports its own handler module and not every other one.
OWN_PARSER = {"status": "stonewall.handlers.status_cmd"}

EPILOG = """\
exit status: 0 success; 1 something needs attention or the action failed; 2 invalid input or
configuration (each subcommand's --help gives its own exact meanings).
configuration: --config, else $STONEWALL_CONFIG, else /etc/stonewall/cluster.yaml.
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full argument parser, or the one of handler module `only`."""
    parser = argparse.ArgumentParser(
        prog="stonewall",
        description="Storage-centric fencing for KVM clusters: SCSI-3 persistent "
                    "reservations decide which node owns a guest's storage.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"stonewall {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="cluster configuration (default: $STONEWALL_CONFIG or "
                             "/etc/stonewall/cluster.yaml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if only is not None:
        importlib.import_module(only).register(subparsers)
        return parser
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    from stonewall.handlers import vm_cmd
    from stonewall.holder.client import HolderClient
    from stonewall.holder.views import views_source
    vm_cmd.register(subparsers, views_source=views_source, holder_source=HolderClient)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns its exit status."""
    args = build_parser(OWN_PARSER.get(_command(sys.argv[1:] if argv is None else argv))
                        ).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("stonewall: interrupted", file=sys.stderr)
        return 130


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv` (after the global options), if any."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


if __name__ == "__main__":
    sys.exit(main())
