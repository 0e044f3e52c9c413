"""A stand-in DRBD handler for tests: records the environment and argv drbdadm gave it.

Usage (as a drbd.conf handler string): python handler_recorder.py RECORD.json EXIT_STATUS
"""
from __future__ import annotations

import json
import os
import sys


def main() -> int:
    record_path, exit_status = sys.argv[1], int(sys.argv[2])
    with open(record_path, "w", encoding="utf-8") as record:
        # Our own two arguments are not DRBD's: report argv as DRBD's hop left it.
        json.dump({"environ": dict(os.environ), "argv": sys.argv[:1]}, record)
    return exit_status


if __name__ == "__main__":
    sys.exit(main())
