"""`stonewall vm ...`: install the libvirt hook, run it, list guests with their owners, and
start, stop and take over guests with their LUN registrations.

  stonewall vm hook install [--hooks-dir DIR] [--node NAME] [--stonewall PATH]
  stonewall vm hook run [--node NAME] [--timeout S] -- GUEST OPERATION SUB-OP [EXTRA]
  stonewall vm list [--json] [--node NAME] [--uri NODE=URI ...] [--timeout S]
  stonewall vm start GUEST [--node NAME] [--uri URI] [--timeout S]
  stonewall vm stop GUEST [--destroy] [--node NAME] [--uri URI] [--timeout S]
  stonewall vm takeover PEER [--power-off-verified] [--node NAME] [--uri URI] [--timeout S]
  stonewall vm migrate GUEST --to NODE [--to-uri URI] [--migrate-uri URI]
                       [--peer-config FILE | --peer-command CMD] [--node NAME] [--uri URI]
  stonewall vm complete-migration GUEST [--node NAME] [--uri URI] [--timeout S]

Ownership is read through a `views_source` handed to `register` (the node's holder in
production); without one, `hook run` refuses every judged start and `list` cannot tell.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from functools import cache, wraps
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from stonewall.config.identity import NODE_ENV, local_node_name
from stonewall.clock import Deadline
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import ClusterConfig, Node
from stonewall.holder.api import Holder
from stonewall.holder.client import HolderClient
from stonewall.handlers.qemu_hook import hook_main
from stonewall.storage.view import ReadViews
from stonewall.vm.hook import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from stonewall.vm.control import StartReport, StopReport
    from stonewall.vm.libvirt_conn import LibvirtConnection
    from stonewall.vm.listing import GuestRow

ViewsSource = Callable[[ClusterConfig], ReadViews]
HolderSource = Callable[[ClusterConfig, str], Holder]  # (config, this node's name) -> holder

EXIT_OK = 0
EXIT_PROBLEM = 1  # vm list: a guest runs twice or without ownership; install: refused
EXIT_ERROR = 2  # configuration, connection or usage error
EXIT_CANNOT_TELL = 3  # vm list: some guest's ownership or state cannot be told
EXIT_NOT_RELEASED = 4  # vm stop: stopped, but this node is still registered on a LUN of it

DEFAULT_CONTROL_TIMEOUT = 60.0  # vm start / stop / takeover (takeover: plus T_safe)


class ViewsUnavailable(RuntimeError):
    """No source of LUN ownership is wired into this command."""


def register(subparsers: argparse._SubParsersAction, *,
             views_source: ViewsSource | None = None,
             holder_source: HolderSource | None = None) -> None:
    """Add `vm hook install`, `vm hook run` and `vm list`. `holder_source`: the node's
    holder for the hook's migration and `release end` steps (without it the hook judges an
    incoming migration as a start)."""
    vm = subparsers.add_parser(
        "vm", help="guests and the storage they may run on",
        description="Guests and the LUNs they run on: a guest may run only on the node that "
                    "owns every LUN of its storage. `hook` guards libvirt's starts, `list` shows "
                    "who owns and runs each guest, `start`, `stop` and `takeover` move a guest "
                    "together with its LUN reservations through this node's holder.")
    commands = vm.add_subparsers(dest="vm_command", required=True)

    hook = commands.add_parser(
        "hook", help="the libvirt qemu hook that refuses double starts",
        description="The libvirt qemu hook: libvirt runs it before it starts, restores or "
                    "receives a guest, and it refuses when this node does not own every LUN "
                    "of the guest, so a guest never runs on two nodes. `install` puts it in "
                    "place; `run` is what libvirt calls.")
    hook_commands = hook.add_subparsers(dest="hook_command", required=True)
    install = hook_commands.add_parser(
        "install", help="install the hook (idempotent)",
        epilog="exit status: 0 installed or unchanged; 1 a file stonewall did not write is in "
               "the way; 2 the stonewall command cannot be found")
    install.add_argument("--hooks-dir", default="/etc/libvirt/hooks", type=Path)
    install.add_argument("--node", help=f"node name the hook runs as (default: ${NODE_ENV} or "
                                        "the short host name at run time)")
    install.add_argument("--stonewall", help="absolute path of the stonewall command the hook runs")
    install.set_defaults(func=run_install)

    run = hook_commands.add_parser(
        "run", help="what libvirt calls: judge one hook call",
        epilog="exit status: 0 allowed or not judged; 1 refused (libvirt aborts the start); "
               "2 arguments libvirt would not pass")
    _add_node_option(run)
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                     help="seconds to read LUN ownership before refusing (default %(default)s)")
    run.add_argument("hook_args", nargs="*", metavar="ARG",
                     help="GUEST OPERATION SUB-OPERATION EXTRA, as libvirt passes them")
    run.set_defaults(func=lambda args: run_hook(args, views_source, holder_source))

    listing = commands.add_parser(
        "list", help="guests, owners, where they run, verdict",
        epilog="exit status: 0 every guest ok, owned but stopped, or migrating; 1 a guest "
               "runs without ownership or on more than one node; 2 configuration or usage "
               "error; 3 some guest cannot be told")
    _add_node_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.add_argument("--uri", action="append", default=[], metavar="NODE=URI",
                         help="libvirt URI of a node (repeat; this node defaults to libvirt_uri)")
    listing.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                         help="seconds for the whole listing (default %(default)s)")
    listing.set_defaults(func=lambda args: run_list(args, views_source, holder_source))
    _register_control(commands)


def _register_control(commands: argparse._SubParsersAction) -> None:
    """Add `vm start`, `vm stop` and `vm takeover` (they act through the node's holder)."""
    start = commands.add_parser(
        "start", help="claim a guest's LUNs (register on every path) and start it here",
        epilog="exit status: 0 started or already running here; 1 refused (another node owns "
               "its storage, a claim or the start failed, a disk maps to no LUN); 2 "
               "configuration or usage error, or the guest is not defined here; 3 cannot tell "
               "(the holder, libvirt or every path of a LUN did not answer)")
    start.add_argument("guest")
    stop = commands.add_parser(
        "stop", help="stop a guest here and unregister this node from its LUNs",
        epilog="exit status: 0 stopped (or was not running) and its LUNs released; 1 "
               "still running at the time limit, or destroy failed; 2 configuration or usage "
               "error; 3 cannot tell (libvirt did not answer); 4 stopped, but this node "
               "could not be unregistered from a LUN")
    stop.add_argument("guest")
    stop.add_argument("--destroy", action="store_true",
                      help="kill the guest at once instead of an ACPI shutdown")
    takeover = commands.add_parser(
        "takeover", help="start a fenced peer's guests here, in order, per start_policy",
        epilog="exit status: 0 every guest of the peer runs here; 1 some guest was not "
               "started; 2 configuration or usage error; 3 the peer is not proven fenced (or "
               "the holder or libvirt did not answer): nothing was started")
    takeover.add_argument("peer")
    takeover.add_argument("--power-off-verified", action="store_true",
                          help="you have verified that the peer is powered off: `safe` guests "
                               "start without waiting T_safe, and a key it still holds is "
                               "preempted first")
    timeouts = {
        start: "seconds for the whole start: reservations, the libvirt start and the check "
               "that it runs (default %(default)s)",
        stop: "seconds to wait for the guest to shut down (or be destroyed) and be seen off; "
              "still running then is exit 1. Releasing its LUN reservations afterwards has "
              "a time limit of its own (default %(default)s)",
        takeover: "seconds for the whole takeover, on top of the wait for T_safe (default "
                  "%(default)s)",
    }
    migrate = commands.add_parser(
        "migrate", help="live-migrate a guest to another node, moving its LUN registrations",
        description="Live-migrate GUEST from this node to NODE with the handoff the SAN "
                    "enforces: NODE's holder holds a one-time permit its hook consumes, "
                    "libvirt migrates with the destination left paused, and once this node's "
                    "QEMU is gone NODE registers on the guest's LUNs, this node unregisters, "
                    "both are read back, and only then does the guest resume on NODE.",
        epilog="exit status: 0 migrated (runs on NODE, which alone is registered); 1 refused "
               "or failed (the guest still runs here), or the destination stays paused; 2 "
               "configuration or usage error; 3 cannot tell (a holder or libvirt did not "
               "answer)")
    migrate.add_argument("guest")
    migrate.add_argument("--to", required=True, metavar="NODE", help="the destination node")
    migrate.add_argument("--to-uri", help="the destination's libvirt URI (default: "
                                          "qemu+ssh://NODE/system)")
    migrate.add_argument("--migrate-uri", help="where QEMU sends the memory (e.g. "
                                               "tcp://ADDRESS; default: libvirt's choice)")
    peer = migrate.add_mutually_exclusive_group()
    peer.add_argument("--peer-config", type=Path, metavar="FILE",
                      help="the destination's own configuration file on this machine (its "
                           "holder's socket is reachable here, as in the lab)")
    peer.add_argument("--peer-command", metavar="CMD",
                      help="command that passes one request to the destination's holder, "
                           "{node} replaced by its address (default: ssh -o BatchMode=yes "
                           "{node} stonewall holder relay)")
    migrate.add_argument("--handoff-at", choices=("source-gone", "finish"),
                         default="source-gone",
                         help="move the LUNs once libvirt's migration returned and the source "
                              "QEMU is gone (default), or as soon as the destination finished "
                              "receiving and the source is paused by the migration (its key is "
                              "removed before it is gone: seconds less pause, see README)")
    migrate.add_argument("--json", action="store_true",
                         help="print the report (outcome, timeline, libvirt's downtime) as JSON")
    complete = commands.add_parser(
        "complete-migration", help="on the destination: resume a guest whose source died "
                                   "after the switchover",
        description="On the destination of a `vm migrate` whose source died after the "
                    "switchover and before the handoff (the guest is paused here): once the "
                    "source is proven fenced, claim the guest's LUNs, read them back and "
                    "resume it. Refused without this node's permit for that migration.",
        epilog="exit status: 0 resumed here; 1 refused (no permit, the migration did not "
               "finish here, the source is not proven fenced) or the claim failed; 2 "
               "configuration or usage error; 3 cannot tell")
    complete.add_argument("guest")
    timeouts[complete] = "seconds for the checks, the claim and the resume (default %(default)s)"
    timeouts[migrate] = "seconds for the whole migration and handoff (default %(default)s)"
    for parser, func in ((start, run_start), (stop, run_stop), (takeover, run_takeover),
                         (migrate, run_migrate), (complete, run_complete_migration)):
        _add_node_option(parser)
        parser.add_argument("--uri", help="this node's libvirt URI (default: libvirt_uri from "
                                          "the config)")
        parser.add_argument("--timeout", type=float, default=DEFAULT_CONTROL_TIMEOUT,
                            help=timeouts[parser])
        parser.set_defaults(func=func)


def run_install(args: argparse.Namespace) -> int:
    import libvirt  # imported here, not at the top: `hook run` never loads libvirt
    from stonewall.vm.hook_install import HookInstallError, install_hook

    stonewall = os.path.abspath(args.stonewall) if args.stonewall else _stonewall_executable()
    if stonewall is None:
        print("stonewall: cannot find the stonewall command; pass --stonewall PATH", file=sys.stderr)
        return EXIT_ERROR
    environment = {}
    if getattr(args, "config", None):
        environment["STONEWALL_CONFIG"] = os.path.abspath(args.config)
    if args.node:
        environment[NODE_ENV] = args.node
    try:
        result = install_hook(args.hooks_dir, [stonewall, "vm", "hook", "run"],
                              libvirt_version=libvirt.getVersion(), environment=environment)
    except (HookInstallError, OSError) as error:
        print(f"stonewall: cannot install the libvirt hook: {error}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{result.path}: {result.action.value} ({result.layout.value} layout)")
    if result.wrapped is not None:
        print(f"the previous hook {result.wrapped} runs after the guard")
    if result.restart_needed:
        print("restart libvirtd (or virtqemud): libvirt finds hook scripts when it starts")
    return EXIT_OK


def run_hook(args: argparse.Namespace, views_source: ViewsSource | None,
             holder_source: HolderSource | None = None) -> int:
    load = cache(lambda: load_config(resolve_config_path(getattr(args, "config", None), os.environ)))

    def read_views(luns: Sequence[str], deadline: Deadline) -> Mapping:
        if views_source is None:
            raise ViewsUnavailable("no source of LUN ownership is wired into this command")
        return views_source(load())(luns, deadline)

    node_name = local_node_name(args.node, os.environ)
    holder = None if holder_source is None else (
        lambda config: holder_source(config, node_name))
    return hook_main(["qemu", *args.hook_args], sys.stdin, sys.stderr, load_config=load,
                     node_name=node_name, read_views=read_views, timeout=args.timeout,
                     holder=holder)


def run_list(args: argparse.Namespace, views_source: ViewsSource | None,
             holder_source: HolderSource | None = None) -> int:
    from stonewall.config.errors import ConfigError
    from stonewall.vm.inventory import collect_inventory
    from stonewall.vm.listing import render_json, render_table

    deadline = Deadline.after(args.timeout)
    try:
        config = load_config(resolve_config_path(getattr(args, "config", None), os.environ))
        uris = _parse_uris(args.uri)
    except (ConfigError, ValueError) as error:
        print(f"stonewall: {error}", file=sys.stderr)
        return EXIT_ERROR
    node = local_node_name(args.node, os.environ)
    uris.setdefault(node, config.libvirt_uri)
    read_views = views_source(config) if views_source is not None else None
    inventory = collect_inventory(config, read_views, uris, local_node=node, deadline=deadline,
                                  handoffs=_handoffs(config, node, holder_source, deadline))
    for problem in inventory.problems:
        print(f"stonewall: {problem}", file=sys.stderr)
    sys.stdout.write(render_json(inventory.rows) if args.json else render_table(inventory.rows))
    return list_exit_status(inventory.rows)


def _handoffs(config: ClusterConfig, node: str, holder_source: HolderSource | None,
              deadline: Deadline) -> tuple:
    """The live migrations this node's holder has in flight (none when it does not answer:
    `vm list` then judges what libvirt and the SAN show)."""
    from stonewall.holder.api import HolderFailure

    if holder_source is None:
        return ()
    try:
        return holder_source(config, node).state(deadline).handoffs
    except HolderFailure:
        return ()


class _SetupFailed(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _setup_failure_is_one_line(command: Callable[[argparse.Namespace], int]
                               ) -> Callable[[argparse.Namespace], int]:
    """A command whose set-up failed prints one line and exits with the set-up's status."""
    @wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except _SetupFailed as error:
            print(f"stonewall: {error}", file=sys.stderr)
            return error.status
    return run


@dataclass(frozen=True)
class _Control:
    """What `vm start`, `vm stop` and `vm takeover` act with."""

    config: ClusterConfig
    node: Node
    holder: Holder
    conn: LibvirtConnection


def _setup(args: argparse.Namespace) -> tuple[ClusterConfig, Node]:
    from stonewall.config.errors import ConfigError
    from stonewall.config.identity import UnknownLocalNode, local_node

    try:
        config = load_config(resolve_config_path(getattr(args, "config", None), os.environ))
        return config, local_node(config, args.node, os.environ)
    except (ConfigError, UnknownLocalNode) as error:
        raise _SetupFailed(str(error), EXIT_ERROR) from error


def _open(config: ClusterConfig, node: Node, args: argparse.Namespace,
          deadline: Deadline) -> _Control:
    from stonewall.vm.libvirt_conn import LibvirtConnection, LibvirtError

    try:
        conn = LibvirtConnection.open(args.uri or config.libvirt_uri, deadline)
    except LibvirtError as error:
        raise _SetupFailed(str(error), EXIT_CANNOT_TELL) from error
    return _Control(config, node, HolderClient(config, node.name), conn)


def _control(args: argparse.Namespace, deadline: Deadline) -> _Control:
    config, node = _setup(args)
    return _open(config, node, args, deadline)


@_setup_failure_is_one_line
def run_start(args: argparse.Namespace) -> int:
    from stonewall.vm.control import start_guest

    deadline = Deadline.after(args.timeout)
    ctl = _control(args, deadline)
    with ctl.conn:
        report = start_guest(args.guest, ctl.node, ctl.config, ctl.holder, ctl.conn, deadline)
    taken = f" (claimed {', '.join(report.taken)})" if report.taken else ""
    line = f"{report.guest}: {report.outcome.value} on {report.node}{taken}"
    if report.outcome.running:
        print(line)
    else:
        print(f"stonewall: {line}: {'; '.join(report.reasons) or 'no detail'}", file=sys.stderr)
    return start_exit_status(report)


def start_exit_status(report: StartReport) -> int:
    """0 runs here; 2 not defined here; 3 the holder, libvirt or the SAN could not tell;
    else 1."""
    from stonewall.vm.control import StartOutcome

    if report.outcome.running:
        return EXIT_OK
    if report.outcome is StartOutcome.REFUSED and report.placement and \
            report.placement.cannot_tell:
        return EXIT_CANNOT_TELL
    return {StartOutcome.NOT_DEFINED: EXIT_ERROR,
            StartOutcome.HOLDER_UNAVAILABLE: EXIT_CANNOT_TELL,
            StartOutcome.CANNOT_TELL: EXIT_CANNOT_TELL}.get(report.outcome, EXIT_PROBLEM)


@_setup_failure_is_one_line
def run_stop(args: argparse.Namespace) -> int:
    from stonewall.vm.control import stop_guest

    deadline = Deadline.after(args.timeout)
    ctl = _control(args, deadline)
    with ctl.conn:
        report = stop_guest(args.guest, ctl.node, ctl.config, ctl.holder, ctl.conn, deadline,
                            destroy=args.destroy)
    released = [r.lun for r in report.released if r.ok]
    print(f"{report.guest}: {report.result.value} on {report.node}"
          + (f" (released {', '.join(released)})" if released else ""))
    for line in report.details:
        print(f"  {line}")
    for failure in report.release_failures:
        print(f"stonewall: {report.guest}: LUN {failure.lun}: {failure.detail}", file=sys.stderr)
    return stop_exit_status(report)


def stop_exit_status(report: StopReport) -> int:
    """0 off and released; 4 off but still registered on a LUN; 3 cannot tell; else 1."""
    from stonewall.vm.control import StopResult

    if report.result.off:
        return EXIT_NOT_RELEASED if report.release_failures else EXIT_OK
    return EXIT_CANNOT_TELL if report.result is StopResult.CANNOT_TELL else EXIT_PROBLEM


@_setup_failure_is_one_line
def run_takeover(args: argparse.Namespace) -> int:
    from stonewall.clock import SYSTEM_CLOCK
    from stonewall.vm.takeover import Skipped, take_over_fenced_peer
    from stonewall.config.timing import t_safe

    started = SYSTEM_CLOCK.monotonic()
    try:
        config, node = _setup(args)
        peer = config.node(args.peer)
    except KeyError:
        print(f"stonewall: unknown node {args.peer!r}", file=sys.stderr)
        return EXIT_ERROR
    if peer.name == node.name:
        print("stonewall: a node does not take over its own guests", file=sys.stderr)
        return EXIT_ERROR
    safe = t_safe(config.watchdog)
    # One deadline for the whole command: --timeout on top of T_safe, from its start.
    deadline = Deadline(started + args.timeout + safe, SYSTEM_CLOCK)
    ctl = _open(config, node, args, deadline)
    with ctl.conn:
        run = take_over_fenced_peer(peer, config, ctl.holder, ctl.conn, SYSTEM_CLOCK, safe,
                                    node=node, power_off_verified=args.power_off_verified,
                                    deadline=deadline)
    if run.after_power is not None:
        print(f"stonewall: {run.after_power.describe()}",
              file=sys.stdout if run.after_power.done else sys.stderr)
    if run.report is None:
        print(f"stonewall: {peer.name} is not proven fenced ({run.problem}, and "
              "--power-off-verified was not given): nothing started", file=sys.stderr)
        return EXIT_CANNOT_TELL
    print(f"takeover of {peer.name}: {run.report.basis}")
    for guest in run.report.guests:
        print(guest.describe(), file=sys.stdout if guest.running or guest.skipped is
              Skipped.RUNS_ELSEWHERE else sys.stderr)
    return EXIT_OK if run.report.all_running else EXIT_PROBLEM


@_setup_failure_is_one_line
def run_migrate(args: argparse.Namespace) -> int:
    import shlex

    from stonewall.config.errors import ConfigError
    from stonewall.vm.libvirt_conn import LibvirtConnection, LibvirtError
    from stonewall.vm.migration import HandoffPoint, MigrationOutcome, migrate_guest
    from stonewall.vm.peer import DEFAULT_PEER_COMMAND, peer_holder

    deadline = Deadline.after(args.timeout)
    try:
        config, node = _setup(args)
        destination = config.node(args.to)
        peer_config = load_config(str(args.peer_config)) if args.peer_config else None
        peer = peer_holder(config, destination.name, peer_config=peer_config,
                           command=shlex.split(args.peer_command) if args.peer_command
                           else DEFAULT_PEER_COMMAND)
    except KeyError:
        print(f"stonewall: unknown node {args.to!r}", file=sys.stderr)
        return EXIT_ERROR
    except (ConfigError, ValueError) as error:
        print(f"stonewall: {error}", file=sys.stderr)
        return EXIT_ERROR
    try:
        ctl = _open(config, node, args, deadline)
        destination_conn = LibvirtConnection.open(
            args.to_uri or f"qemu+ssh://{destination.name}/system", deadline)
    except LibvirtError as error:
        ctl.conn.close()
        print(f"stonewall: {error}", file=sys.stderr)
        return EXIT_CANNOT_TELL
    with ctl.conn, destination_conn:
        report = migrate_guest(args.guest, config, node, destination, ctl.holder, peer,
                               ctl.conn, destination_conn, deadline,
                               migrate_uri=args.migrate_uri,
                               handoff_at=HandoffPoint(args.handoff_at))
    line = f"{report.guest}: {report.outcome.value} ({report.source} -> {report.destination})"
    if args.json:
        import json
        print(json.dumps(report.to_jsonable(), indent=1))
    elif report.outcome.runs_on_destination:
        downtime = report.stats.downtime_ms if report.stats else None
        print(line + (f"; libvirt downtime {downtime:.0f} ms" if downtime is not None else "")
              + (f", handoff {report.handoff_ms:.0f} ms" if report.handoff_ms is not None
                 else ""))
    if report.outcome.runs_on_destination:
        return EXIT_OK
    print(f"stonewall: {line}: {'; '.join(report.reasons) or 'no detail'}", file=sys.stderr)
    return EXIT_CANNOT_TELL if report.outcome in (
        MigrationOutcome.CANNOT_TELL, MigrationOutcome.DESTINATION_UNAVAILABLE) \
        else EXIT_PROBLEM


@_setup_failure_is_one_line
def run_complete_migration(args: argparse.Namespace) -> int:
    from stonewall.vm.migration import MigrationOutcome, complete_incoming

    deadline = Deadline.after(args.timeout)
    ctl = _control(args, deadline)
    with ctl.conn:
        report = complete_incoming(args.guest, ctl.config, ctl.node, ctl.holder, ctl.conn,
                                   deadline)
    line = f"{report.guest}: {report.outcome.value} ({report.source} -> {report.destination})"
    if report.outcome.runs_on_destination:
        print(line)
        return EXIT_OK
    print(f"stonewall: {line}: {'; '.join(report.reasons) or 'no detail'}", file=sys.stderr)
    return EXIT_CANNOT_TELL if report.outcome is MigrationOutcome.CANNOT_TELL else EXIT_PROBLEM


def list_exit_status(rows: Sequence[GuestRow]) -> int:
    """1 if a guest runs twice or without ownership, else 3 if any cannot be told, else 0."""
    from stonewall.vm.listing import GuestVerdict

    verdicts = {row.verdict for row in rows}
    if verdicts & {GuestVerdict.RUNS_TWICE, GuestVerdict.RUNS_WITHOUT_OWNERSHIP,
                   GuestVerdict.STALE_REGISTRATION}:
        return EXIT_PROBLEM
    if GuestVerdict.CANNOT_TELL in verdicts:
        return EXIT_CANNOT_TELL
    return EXIT_OK


def _add_node_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", help=f"this node's name (default: ${NODE_ENV}, else the short "
                                       "host name)")


def _parse_uris(values: Sequence[str]) -> dict[str, str]:
    uris = {}
    for value in values:
        node, equals, uri = value.partition("=")
        if not equals or not node or not uri:
            raise ValueError(f"--uri {value!r}: expected NODE=URI")
        uris[node] = uri
    return uris


def _stonewall_executable() -> str | None:
    """The `stonewall` script installed next to this interpreter, else the one on PATH.
    libvirt runs hooks with a minimal PATH, so the hook names it absolutely."""
    beside = Path(sys.executable).with_name("stonewall")
    found = str(beside) if beside.exists() else shutil.which("stonewall")
    return os.path.abspath(found) if found is not None else None
