"""The smallest fence entry point: a fresh process asks the node's holder to preempt a peer
on every configured LUN and exits 0 only when the holder proved the peer's key gone.

    python -m stonewall.benchmarks.preempt_client --config FILE --victim NODE [--timeout S]

Exit status: 0 fenced and verified; 1 anything else (holder down, refused, not proven).
The benchmark times it beside the DRBD handler and the Pacemaker agent: it is the floor
they share (Python start, the holder's socket, the holder's work)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from stonewall.clock import Deadline
from stonewall.config.loader import load_config
from stonewall.holder.api import HolderFailure
from stonewall.holder.client import HolderClient


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stonewall.benchmarks.preempt_client",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the fencing node's configuration")
    parser.add_argument("--victim", required=True, help="node to fence")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    args = parser.parse_args(argv)
    try:
        result = HolderClient(load_config(args.config)).preempt(args.victim, None,
                                                                Deadline.after(args.timeout))
    except HolderFailure as exc:
        print(f"preempt_client: {exc}", file=sys.stderr)
        return 1
    if not result.fenced:
        print(f"preempt_client: {args.victim} not proven fenced", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
