"""`stonewall status`: who is registered on each LUN and path, and who holds the reservation.

It only reads (PERSISTENT RESERVE IN), through holder/views.py: the node's holder when one
runs, else reader sessions of its own."""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any, Callable, TypeVar

from stonewall.clock import Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import ClusterConfig
from stonewall.holder.views import read_views
from stonewall.storage import status_report
from stonewall.storage.path_errors import PathSetupError
from stonewall.watchdog.snapshot import (Health, SnapshotMissing, SnapshotUnreadable,
                                          current_reading)

T = TypeVar("T")

EXIT_HELP = """\
exit status:
  0  every LUN is as expected (all nodes registered on every path, reservation held)
  1  something needs attention (a fenced node, a path down, split keys, a foreign key,
     no reservation, an unreachable LUN), or this node's watchdog service does
     (self-fencing, not petting, stopped writing its status), or DRBD here reports a
     configured resource suspended, disconnected from a peer or not UpToDate
  2  nothing could be read (bad configuration, or no LUN answered on any path)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status", help="show registrations and reservations per LUN and path",
        description="Show, for every configured LUN (arbiter first), the registered keys as "
                    "node names, the reservation holder and type, the paths up and down, and "
                    "a verdict. Reads only; never changes a reservation.",
        epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("--json", action="store_true", help="JSON instead of the table")
    status.add_argument("--paths", action="store_true", help="one extra line per path")
    status.add_argument("--lun", action="append", metavar="NAME", help="only this LUN "
                        "(repeatable)")
    status.add_argument("--direct", action="store_true",
                        help="read through own sessions even when the holder runs")
    status.add_argument("--node", help="this node's name (for its initiator name)")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    status.add_argument("--watch", type=float, metavar="SECONDS",
                        help="refresh every SECONDS until interrupted")
    status.set_defaults(func=run_status)


def watchdog_section(config: ClusterConfig) -> dict[str, object]:
    """This node's watchdog service as its status file says (no file: not running here,
    which is no fault of the LUNs: status may run on any machine)."""
    try:
        data, reading = current_reading(config.paths.runtime_dir)
    except SnapshotMissing:
        return {"running": False, "attention": False,
                "summary": "no watchdog service on this machine (no status file)"}
    except SnapshotUnreadable as exc:
        return {"running": False, "attention": True, "summary": f"cannot tell: {exc}"}
    settings = data["watchdog"]
    age = "-" if reading.last_check_age is None else f"{reading.last_check_age:.2f}s"
    margin = "-" if reading.margin_left is None else f"{reading.margin_left:.2f}s"
    return {"running": reading.service_running, "state": reading.state,
            "health": reading.health.value, "last_check_age": reading.last_check_age,
            "margin_left": reading.margin_left, "device": settings.get("device"),
            "timeout": settings.get("timeout"), "attention": reading.health is Health.ATTENTION,
            "summary": f"{reading.state}, {reading.why}; last good check {age} ago, margin "
                       f"{margin}, device {settings.get('device')} (timeout "
                       f"{settings.get('timeout')}s)"}


def drbd_section(config: ClusterConfig, deadline: Deadline) -> dict[str, object] | None:
    """DRBD's own view of the configured resources here (`drbdsetup status --json`); None
    when the configuration names no DRBD resource. Unreadable (no DRBD 9 here) is no fault
    of the LUNs: status may run on any machine."""
    if not config.drbd_resources:
        return None
    # Imported here: a configuration without DRBD resources does not pay for them.
    from stonewall.storage.drbd.drbdsetup import (
        ANSWER_SECONDS, DrbdStatusUnavailable, drbd_status)
    from stonewall.storage.drbd.status import attention as drbd_attention
    from stonewall.storage.drbd.status import summary as drbd_summary
    try:
        found = {status.name: status
                 for status in drbd_status(deadline.earlier(ANSWER_SECONDS))}
    except DrbdStatusUnavailable as exc:
        return {"available": False, "attention": False, "resources": [],
                "summary": f"cannot read DRBD's status here: {exc}"}
    resources, lines, problems = [], [], []
    for resource in config.drbd_resources:
        status = found.get(resource.name)
        if status is None:
            lines.append(f"{resource.name}: not up here")
            resources.append({"name": resource.name, "up": False})
            continue
        lines.append(drbd_summary(status, dict(resource.peers)))
        problems += drbd_attention(status)
        resources.append({"name": resource.name, "up": True,
                          "role": status.role.value if status.role else None,
                          "summary": lines[-1], "attention": drbd_attention(status)})
    return {"available": True, "attention": bool(problems), "resources": resources,
            "summary": " | ".join(lines)}


def _in_background(call: Callable[[], T], deadline: Deadline) -> Callable[[], T]:
    """Start `call` on a thread now; the function returned waits for its result (or raises
    its exception, or TimeoutError when it has none a second after `deadline`, which `call`
    keeps itself)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:  # raised again in the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def result() -> T:
        thread.join(deadline.remaining() + 1.0)
        if "error" in outcome:
            raise outcome["error"]
        if "value" not in outcome:
            raise TimeoutError("no answer before the deadline")
        return outcome["value"]  # type: ignore[no-any-return]
    return result


def migrations_line(config: ClusterConfig, deadline: Deadline) -> str:
    """"migrations: web1 migrating (kvm-a → kvm-b)" while this node's holder has a live
    migration's handoff in flight; empty otherwise, or when no holder answers."""
    from stonewall.holder.api import HolderFailure
    from stonewall.holder.client import HolderClient

    try:
        handoffs = HolderClient(config).state(deadline).handoffs
    except HolderFailure:
        return ""
    if not handoffs:
        return ""
    return "\nmigrations: " + "; ".join(f"{h.guest} {h.describe()}" for h in handoffs)


def run_status(args: argparse.Namespace) -> int:
    try:
        config = load_config(resolve_config_path(args.config, os.environ))
        for name in args.lun or ():
            config.lun(name)
    except ConfigError as exc:
        print(f"stonewall status: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"stonewall status: unknown LUN {exc.args[0]}", file=sys.stderr)
        return 2
    while True:
        deadline = Deadline.after(args.timeout)
        # DRBD's own status is a process of its own (drbdsetup): it runs while the holder
        # reads the LUNs, not after.
        drbd_later = _in_background(lambda: drbd_section(config, deadline), deadline)
        try:
            views = read_views(config, args.lun, args.node, args.direct, deadline)
        except PathSetupError as exc:
            print(f"stonewall status: {exc}", file=sys.stderr)
            return 2
        statuses = status_report.build(config, views)
        watchdog = watchdog_section(config)
        try:
            drbd = drbd_later()
        except TimeoutError as exc:
            drbd = {"available": False, "attention": False, "resources": [],
                    "summary": f"cannot read DRBD's status here: {exc}"}
        text = (status_report.to_json(config, statuses, watchdog, drbd) if args.json
                else status_report.to_table(config, statuses, args.paths)
                + f"\nwatchdog: {watchdog['summary']}"
                + (f"\ndrbd: {drbd['summary']}" if drbd is not None else "")
                + migrations_line(config, deadline))
        if args.watch:
            print("\033[H\033[2J" + time.strftime("%H:%M:%S ") + config.cluster, flush=True)
        print(text, flush=True)
        if not args.watch:
            status = status_report.exit_status(statuses)
            attention = watchdog["attention"] or (drbd is not None and drbd["attention"])
            return max(status, 1) if attention else status
        time.sleep(args.watch)
