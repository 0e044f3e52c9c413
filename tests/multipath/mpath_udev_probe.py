"""Run by test_multipath_udev.py under `unshare --mount --propagation private`: mounts a
built host tree over /sys and (with `with-udev`) its udev database at /run/udev, all inside
this process's private mount namespace, then prints what discover_udev() finds as JSON.

Usage: mpath_udev_probe.py TREE_ROOT with-udev|without-udev
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys


def main() -> int:
    tree, mode = sys.argv[1], sys.argv[2]
    mounts = [["mount", "--bind", f"{tree}/sys", "/sys"],
              ["mount", "-t", "tmpfs", "stonewall-test-run", "/run"]]
    for command in mounts:
        subprocess.run(command, check=True, timeout=10)
    if mode == "with-udev":
        os.makedirs("/run/udev")
        subprocess.run(["mount", "--bind", f"{tree}/run/udev", "/run/udev"], check=True,
                       timeout=10)
    # libudev refuses device directories not on a sysfs file system unless told otherwise
    # (systemd's ENVIRONMENT.md: "useful for testing purposes"); the tree is on tmpfs/ext4.
    os.environ["SYSTEMD_DEVICE_VERIFY_SYSFS"] = "0"

    from stonewall.storage.multipath.errors import UdevUnavailable
    from stonewall.storage.multipath.udev import discover_udev
    try:
        found = discover_udev()
    except UdevUnavailable as error:
        print(json.dumps({"unavailable": str(error)}))
        return 0
    print(json.dumps({"discovery": dataclasses.asdict(found)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
