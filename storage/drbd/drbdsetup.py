"""DRBD's own view of its resources on this node: `drbdsetup status --json`, run as an
argument list with a deadline and parsed into status.py's typed values.

DRBD 9's utils only: drbd-utils cannot give JSON for an 8.4 module, and without the kernel
module drbdsetup exits 20 ("Failed to modprobe drbd", measured with drbd-utils 9.22). Every
such case is `DrbdStatusUnavailable`: callers that use this view to corroborate (the
split-brain handler, `stonewall status`) then say they could not, and decide on the SAN's
evidence alone, as before."""
from __future__ import annotations

from stonewall.clock import Deadline
from stonewall.process import ProcessError, ProgramNotFound, run_process
from stonewall.storage.drbd.status import DrbdStatusError, ResourceStatus, parse_status_json

PROGRAM = "drbdsetup"
ANSWER_SECONDS = 3.0  # drbdsetup answers from the kernel at once, or not at all
# A resource with 32 volumes and 31 peers is ~60 KiB of JSON; 4 MiB covers any real node.
_JSON_LIMIT = 4 * 1024 * 1024


class DrbdStatusUnavailable(Exception):
    """drbdsetup is missing, failed, gave no JSON or did not answer before the deadline."""


def drbd_status(deadline: Deadline, resource: str | None = None,
                program: str = PROGRAM) -> tuple[ResourceStatus, ...]:
    """The status of `resource` (every resource when None) as DRBD reports it."""
    argv = [program, "status", "--json"] + ([resource] if resource else [])
    if deadline.remaining() <= 0:
        raise DrbdStatusUnavailable(f"{' '.join(argv)}: no time left")
    try:
        done = run_process(argv, deadline, output_limit=_JSON_LIMIT)
    except ProgramNotFound:
        raise DrbdStatusUnavailable(f"{program} is not installed") from None
    except ProcessError as err:
        raise DrbdStatusUnavailable(f"{program} cannot run: {err}") from None
    if done.timed_out:
        raise DrbdStatusUnavailable(f"{' '.join(argv)} did not answer in time")
    if not done.ok:
        last = (done.text("stderr").strip().splitlines() or ["no message"])[-1]
        raise DrbdStatusUnavailable(f"{' '.join(argv)} exited {done.returncode}: {last}")
    if done.stdout_dropped:
        raise DrbdStatusUnavailable(f"{' '.join(argv)}: more than {_JSON_LIMIT} bytes of JSON")
    try:
        return parse_status_json(done.text())
    except DrbdStatusError as err:
        raise DrbdStatusUnavailable(str(err)) from err
