"""DRBD's own view of its resources on this node: `drbdsetup status --json`, run as an
argument list with a deadline and parsed into status.py's typed values.

DRBD 9's utils only: drbd-utils cannot give JSON for an 8.4 module, and without the kernel
module drbdsetup exits 20 ("Failed to modprobe drbd", measured with drbd-utils 9.22). Every
such case is `DrbdStatusUnavailable`: callers that use this view to corroborate (the
split-brain handler, `stonewall status`) then say they could not, and decide on the SAN's
evidence alone, as before."""
from __future__ import annotations

import subprocess

from stonewall.clock import Deadline
from stonewall.storage.drbd.status import DrbdStatusError, ResourceStatus, parse_status_json

PROGRAM = "drbdsetup"
ANSWER_SECONDS = 3.0  # drbdsetup answers from the kernel at once, or not at all


class DrbdStatusUnavailable(Exception):
    """drbdsetup is missing, failed, gave no JSON or did not answer before the deadline."""


def drbd_status(deadline: Deadline, resource: str | None = None,
                program: str = PROGRAM) -> tuple[ResourceStatus, ...]:
    """The status of `resource` (every resource when None) as DRBD reports it."""
    argv = [program, "status", "--json"] + ([resource] if resource else [])
    if deadline.remaining() <= 0:
        raise DrbdStatusUnavailable(f"{' '.join(argv)}: no time left")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=deadline.remaining(), check=False)
    except FileNotFoundError:
        raise DrbdStatusUnavailable(f"{program} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DrbdStatusUnavailable(f"{' '.join(argv)} did not answer in time") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DrbdStatusUnavailable(f"{' '.join(argv)} exited {done.returncode}: {last}")
    try:
        return parse_status_json(done.stdout)
    except DrbdStatusError as err:
        raise DrbdStatusUnavailable(str(err)) from err
