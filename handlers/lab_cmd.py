"""`stonewall lab demo`: the failover demo on the embedded lab (root: it runs tgtd)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser("lab", help="the embedded lab (tgtd, BMCs on loopback)",
                                description="A private cluster on this machine, for the demo.")
    actions = lab.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    demo = actions.add_parser(
        "demo", help="run the failover demo and stop the lab",
        description="Build the lab (tgtd with LUNs on two paths per node, two nodes with "
                    "watchdog stand-ins, BMCs and libvirt test hypervisors, guests writing "
                    "stamped blocks), crash node-a, let node-b fence it through the DRBD "
                    "fence-peer handler and take its guests over, check the one rule. Exit 0 "
                    "when all of that succeeded.")
    demo.set_defaults(func=lambda args: _demo())


def _demo() -> int:
    from stonewall.lab.demo import run_demo
    return run_demo()
