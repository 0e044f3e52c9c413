"""`stonewall lab demo`: the demo on the embedded lab (needs root: it runs tgtd)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser("lab", help="the embedded lab (tgtd on loopback)",
                                description="A private lab on this machine, for the demo.")
    actions = lab.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    demo = actions.add_parser("demo", help="run the demo and stop the lab",
                              description="Start tgtd with four LUNs on two portals, start two "
                                          "nodes' holders, fence one by storage, show status. "
                                          "Exit 0 when the fence was verified.")
    demo.set_defaults(func=lambda args: _demo())


def _demo() -> int:
    from stonewall.lab.demo import run_demo
    return run_demo()
