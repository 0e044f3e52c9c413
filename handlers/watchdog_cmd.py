"""`stonewall watchdog run|status|timing`: the self-fencing service, its status, and the
bounds worked out for the configured watchdog settings (T_safe included).

Exit status of `timing`: 0 printed, 1 the configuration cannot be read, 2 it is invalid.
`run` and `status`: see RUN_EXITS and STATUS_EXITS (docs/watchdog.md).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import asdict

from stonewall.config.errors import ConfigError, ConfigUnreadable
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.model import ClusterConfig, WatchdogSettings
from stonewall.watchdog.snapshot import (
    Health, SnapshotMissing, SnapshotUnreadable, current_reading, render_text)
from stonewall.config.timing import format_timing_table, t_safe, timing_table

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_INVALID = 2

RUN_EXITS = """\
exit status:
  0  clean stop: the watchdog was disarmed (magic close), no guest depended on the LUNs
  1  unexpected error (systemd restarts the service)
  2  configuration or watchdog device refused (not restarted)
  3  this node was fenced in this boot: nothing registered, nothing armed (not restarted)
  4  ownership could not be proven at start, storage unreachable: nothing armed
A stop (SIGTERM) is refused while a guest that uses the LUNs runs, and while self-fencing;
the service keeps petting (or keeps waiting for the reset) and retries every interval.
"""

STATUS_EXIT_OK = 0
STATUS_EXIT_ATTENTION = 1
STATUS_EXIT_UNKNOWN = 2
STATUS_EXITS = """\
exit status:
  0  the service runs and pets the watchdog under a fresh ownership proof
  1  attention: self-fencing, stopped, not yet petting, or the service is not running
  2  cannot tell: bad configuration, or no readable status file
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `watchdog run`, `watchdog status` and `watchdog timing` to the stonewall command."""
    watchdog = subparsers.add_parser("watchdog", help="the self-fencing watchdog service",
                                     description="The self-fencing watchdog service.")
    actions = watchdog.add_subparsers(dest="watchdog_action", metavar="ACTION", required=True)
    timing = actions.add_parser(
        "timing", help="print the self-fencing time bounds and T_safe",
        description="Print, for the configured watchdog settings, the worst case from a "
                    "preemption or from the last good ownership check to the node's reset, "
                    "and T_safe. Exit status: 0 printed, 1 unreadable config, 2 invalid.")
    timing.add_argument("--defaults", action="store_true",
                        help="use the built-in default settings instead of the configuration")
    timing.add_argument("--json", action="store_true", help="print the rows as JSON")
    timing.set_defaults(func=timing_command)
    run = actions.add_parser(
        "run", help="run the self-fencing service (and the node's holder) in the foreground",
        description="Join (register this node's key on every LUN path) unless this boot was "
                    "fenced, prove ownership, arm the watchdog, serve the holder socket, and "
                    "pet the watchdog only while ownership stays proven. Prints READY once "
                    "armed. SIGTERM requests a clean stop.",
        epilog=RUN_EXITS, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--node", help="act as this node (default: $STONEWALL_NODE or hostname)")
    run.set_defaults(func=run_command)
    status = actions.add_parser(
        "status", help="show the running service's state",
        description="Read <runtime_dir>/watchdog.json, written by the service every interval, "
                    "and show the state, the last check and its age, the margin left before "
                    "petting stops, the device and its timeout.",
        epilog=STATUS_EXITS, formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("--json", action="store_true",
                        help="print the snapshot with the recomputed verdict as JSON")
    status.set_defaults(func=status_command)


def _load(args: argparse.Namespace) -> ClusterConfig | int:
    """The configuration, or the exit status of `timing` after printing why not."""
    try:
        return load_config(resolve_config_path(args.config, os.environ))
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_UNREADABLE if isinstance(err, ConfigUnreadable) else EXIT_INVALID


def timing_command(args: argparse.Namespace) -> int:
    """Run `watchdog timing`; returns the exit status."""
    if args.defaults:
        settings = WatchdogSettings()
    else:
        config = _load(args)
        if isinstance(config, int):
            return config
        settings = config.watchdog
    rows = timing_table(settings)
    if args.json:
        print(json.dumps({"settings": asdict(settings), "t_safe": t_safe(settings),
                          "rows": [asdict(row) for row in rows]}, indent=2))
    else:
        print(format_timing_table(rows))
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    """Run `watchdog run` until a clean stop; returns the exit status (RUN_EXITS)."""
    # Heavy imports (libvirt, libiscsi) only for the service itself.
    from stonewall.clock import SYSTEM_CLOCK
    from stonewall.holder.node import NodeHolder
    from stonewall.log import decision_logger
    from stonewall.storage.bootid import BootRecords, current_boot_id
    from stonewall.storage.paths import PathSetupError
    from stonewall.vm.libvirt_conn import LibvirtConnection
    from stonewall.watchdog.errors import WatchdogError
    from stonewall.watchdog.guests import LocalGuests
    from stonewall.watchdog.open_device import open_watchdog
    from stonewall.watchdog.service import ServiceExit, WatchdogService
    from stonewall.watchdog.systemd import NotifyFailed, SystemdNotifier

    log = decision_logger("stonewall-watchdog")
    config = _load(args)
    if isinstance(config, int):
        return ServiceExit.REFUSED
    if not config.luns:
        # Petting on no evidence would be a check that cannot fail (docs/watchdog.md).
        log.error("refused: this cluster has no shared LUNs, so there is no ownership to "
                  "check and no key a peer could preempt; a cluster without shared LUNs is "
                  "fenced by power and agent levels, and self-fencing on a lost peer is "
                  "DRBD's quorum (on-no-quorum suspend-io), not this service")
        return ServiceExit.REFUSED
    try:
        node = local_node(config, args.node, os.environ)
        device = open_watchdog(config.watchdog)
        holder = NodeHolder(config, node, SYSTEM_CLOCK,
                            BootRecords(config.paths.state_dir, current_boot_id(config.paths.boot_id)))
        notifier = SystemdNotifier(os.environ)
    except (UnknownLocalNode, WatchdogError, PathSetupError, NotifyFailed, OSError) as exc:
        log.error("refused: %s", exc)
        return ServiceExit.REFUSED
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # Guest queries (for a clean stop) run in the thread that also writes the status file
    # every interval: bound them like a storage check, and a slow libvirt counts as "runs".
    guests = LocalGuests(config, lambda deadline: LibvirtConnection.open(config.libvirt_uri,
                                                                         deadline),
                         call_seconds=config.watchdog.io_deadline, log=log)
    service = WatchdogService(config, holder, device, guests, notifier=notifier,
                              announce_ready=lambda: print("READY", flush=True), log=log)
    try:
        return service.run(stop)
    except Exception:  # noqa: BLE001 - logged whole; systemd restarts on status 1
        log.exception("unexpected error")
        return ServiceExit.UNEXPECTED


def status_command(args: argparse.Namespace) -> int:
    """Run `watchdog status`; returns the exit status (STATUS_EXITS)."""
    config = _load(args)
    if isinstance(config, int):
        return STATUS_EXIT_UNKNOWN
    try:
        data, reading = current_reading(config.paths.runtime_dir)
    except (SnapshotMissing, SnapshotUnreadable) as exc:
        print(f"stonewall watchdog status: {exc}", file=sys.stderr)
        return STATUS_EXIT_UNKNOWN
    if args.json:
        print(json.dumps({**data, "reading": {**asdict(reading),
                                              "health": reading.health.value}}, indent=2))
    else:
        print(render_text(data, reading))
    return STATUS_EXIT_OK if reading.health is Health.OK else STATUS_EXIT_ATTENTION
