"""A `stonewall` command line for the hook tests: the real `vm` subcommands (argument parsing,
handlers/qemu_hook.py's hook_main, decide, may_run) with the views source wired to state files.

  python hook_runner.py [--config FILE] vm hook run -- GUEST OPERATION SUB-OP EXTRA

Environment: STONEWALL_TEST_VIEWS = directory of <lun>.json state files (views_files.py).
It exits 97 if libvirt was loaded: the hook must never talk to libvirt.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from views_files import state_file_views

from stonewall.handlers import vm_cmd


def main() -> int:
    parser = argparse.ArgumentParser(prog="stonewall")
    parser.add_argument("--config")
    subparsers = parser.add_subparsers(required=True)
    views_dir = Path(os.environ["STONEWALL_TEST_VIEWS"])
    vm_cmd.register(subparsers, views_source=lambda config: state_file_views(views_dir))
    args = parser.parse_args()
    status = args.func(args)
    if "libvirt" in sys.modules:
        print("hook_runner: the hook loaded libvirt", file=sys.stderr)
        return 97
    return status


if __name__ == "__main__":
    sys.exit(main())
