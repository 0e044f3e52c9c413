"""`stonewall fabric unfence [--node NAME] [--timeout S]`: this node turns its own SAN ports
(the devices of every `fabric` level) back on, only in a fresh boot (docs/fencing.md,
stonewall.fencing.fabric_unfence). Run it at the start of the node's service, before the
holder joins.

Exit status: 0 every port verified on; 1 a port did not verify; 3 refused in this boot;
2 usage or configuration error.
"""
from __future__ import annotations

import argparse
import os
import sys

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import FenceLevelKind
from stonewall.fencing.fabric_unfence import UnfenceRefused, fabric_unfence
from stonewall.storage.bootid import BootRecords, current_boot_id

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `fabric unfence` to the stonewall command."""
    fabric = subparsers.add_parser("fabric", help="this node's SAN switch ports",
                                   description="This node's SAN switch ports (fabric levels).")
    actions = fabric.add_subparsers(dest="fabric_action", metavar="ACTION", required=True)
    unfence = actions.add_parser(
        "unfence", help="turn this node's SAN ports back on (only in a fresh boot)",
        description="Turn this node's SAN ports back on and verify them. Refused (exit 3) in "
                    "a boot this node joined or was fenced in.")
    unfence.add_argument("--node", metavar="NAME", help="this node (default: the host name)")
    unfence.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS")
    unfence.set_defaults(func=unfence_command)


def unfence_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(resolve_config_path(args.config, os.environ))
        me = local_node(config, args.node, os.environ)
    except (ConfigError, UnknownLocalNode) as err:
        print(f"stonewall fabric: {err}", file=sys.stderr)
        return EXIT_USAGE
    groups = [level.devices for level in config.fencing
              if level.kind is FenceLevelKind.FABRIC and level.devices]
    if not groups:
        print("stonewall fabric: no fabric level is configured: nothing to unfence")
        return EXIT_OK
    records = BootRecords(config.paths.state_dir, current_boot_id(config.paths.boot_id))
    status = EXIT_OK
    for group in groups:
        try:
            result = fabric_unfence(me, group, records, Deadline.after(args.timeout),
                                    SYSTEM_CLOCK, os.environ)
        except UnfenceRefused as err:
            print(f"stonewall fabric: {me.name}: unfence refused: {err}", file=sys.stderr)
            return EXIT_REFUSED
        print(f"{me.name}: {result.summary()}",
              file=sys.stdout if result.verified else sys.stderr)
        status = status if result.verified else EXIT_FAILED
    return status
