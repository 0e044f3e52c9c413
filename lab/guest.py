"""A lab guest: writes stamped blocks to its LUN through its node's registered nexus (the
holder's lab-only `write`), as a real guest's I/O goes through its node's kernel nexus.

Runs in the node's process group, so a node crash, a power-off or a watchdog reset ends it.
Every write the SAN acknowledged is appended to the log (JSON line) before the next one, so
the invariant checker can compare what the writer was told with what is on the disk.

    python -m stonewall.lab.guest --config CFG --guest NAME --lun LUN --log FILE
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from stonewall.clock import Deadline
from stonewall.config.loader import load_config
from stonewall.holder.api import HolderFailure
from stonewall.holder.client import HolderClient
from stonewall.lab.stamps import Stamp, encode

RING = 64  # blocks a guest cycles through
PERIOD = 0.05  # seconds between writes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--guest", required=True)
    parser.add_argument("--lun", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--first-sequence", type=int, default=0)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    client = HolderClient(config, args.node)
    sequence = args.first_sequence
    print("READY", flush=True)
    with open(args.log, "a", buffering=1) as log:
        while True:
            stamp = Stamp(time.time(), args.node, args.guest, sequence)
            try:
                answer = client.write_block(args.lun, sequence % RING, encode(stamp),
                                            Deadline.after(1.0))
            except HolderFailure as exc:
                answer = {"written": False, "error": type(exc).__name__, "detail": str(exc)}
            record = {"time": stamp.time, "ack": time.time(), "sequence": sequence,
                      "node": args.node, "guest": args.guest, **answer}
            log.write(json.dumps(record) + "\n")
            if answer.get("written"):
                sequence += 1
            time.sleep(PERIOD)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        os._exit(130)
