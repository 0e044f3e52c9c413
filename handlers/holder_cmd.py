"""`stonewall holder run`: the node's session holder in the foreground (the watchdog
service runs the same holder inside itself; this command serves it alone)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.holder.node import NodeHolder
from stonewall.holder.client import socket_path
from stonewall.holder.protocol import MAX_LINE
from stonewall.holder.server import HolderServer
from stonewall.log import decision_logger
from stonewall.storage.bootid import BootRecords, FencedBoot, current_boot_id
from stonewall.storage.paths import PathSetupError


def register(subparsers: argparse._SubParsersAction) -> None:
    holder = subparsers.add_parser(
        "holder", help="the node's session holder (registered iSCSI sessions)",
        description="The node's session holder keeps one iSCSI session per LUN path with the "
                    "node's stable initiator identity and serves a local socket "
                    "(<runtime_dir>/holder.sock) through which handlers and the fence agent "
                    "act with the node's registration.")
    actions = holder.add_subparsers(dest="holder_action", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run the holder in the foreground",
                             description="Log in every path, optionally join (register and "
                                         "reserve), serve the socket until SIGTERM. Exit 0 "
                                         "after a clean stop, 1 when joining failed or was "
                                         "refused (fenced boot), 2 bad configuration.")
    run.add_argument("--node", help="act as this node (default: $STONEWALL_NODE or hostname)")
    run.add_argument("--join", action="store_true",
                     help="register on every path and reserve unreserved shared LUNs at start")
    run.set_defaults(func=run_holder)
    relay = actions.add_parser(
        "relay", help="pass one migration request from a peer to this node's holder",
        description="Read one request line on stdin, pass it to this node's holder socket and "
                    "print its answer: what a migration's source runs over ssh (vm/peer.py). "
                    f"Only {', '.join(RELAYED)} are passed. Exit 0 answered (the answer says "
                    "whether it succeeded), 1 the holder did not answer, 2 a request that is "
                    "not relayed or bad configuration.")
    relay.set_defaults(func=run_relay)


# What a migration's source asks the destination's holder, and nothing else: a peer never
# preempts or joins through the relay.
RELAYED = ("state", "views", "open_handoff", "claim", "close_handoff")


def run_relay(args: argparse.Namespace) -> int:
    import json

    from stonewall.holder.api import HolderFailure
    from stonewall.holder.client import HolderClient
    from stonewall.holder.protocol import BadRequest, MAX_TIMEOUT, parse_request

    try:
        config = load_config(resolve_config_path(args.config, os.environ))
    except ConfigError as exc:
        print(f"stonewall holder relay: {exc}", file=sys.stderr)
        return 2
    line = sys.stdin.buffer.readline(MAX_LINE + 1)
    try:
        request = parse_request(line)
    except BadRequest as exc:
        print(f"stonewall holder relay: {exc}", file=sys.stderr)
        return 2
    if request.op not in RELAYED or request.args.get("by_hook") or (
            request.op == "claim" and "handoff_from" not in request.args):
        # A peer asks for permits and for the handoff claim of a migration from it; only this
        # node's own hook opens a record for itself, and only this node starts its guests.
        what = ("a hook's record" if request.args.get("by_hook") else
                "a claim outside a handoff" if request.op == "claim" else request.op)
        print(f"stonewall holder relay: {what} is not relayed for a peer", file=sys.stderr)
        return 2
    try:
        answer = HolderClient(config).exchange(json.dumps(
            {"op": request.op, "args": request.args, "timeout": request.timeout}).encode()
            + b"\n", min(request.timeout + 1.0, MAX_TIMEOUT))
    except HolderFailure as exc:
        print(f"stonewall holder relay: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(answer)
    return 0


def run_holder(args: argparse.Namespace) -> int:
    log = decision_logger("stonewall-holder")
    try:
        config = load_config(resolve_config_path(args.config, os.environ))
        node = local_node(config, args.node, os.environ)
        holder = NodeHolder(config, node, SYSTEM_CLOCK,
                            BootRecords(config.paths.state_dir, current_boot_id(config.paths.boot_id)))
    except (ConfigError, UnknownLocalNode, PathSetupError) as exc:
        print(f"stonewall holder: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    holder.connect(Deadline.after(10))
    down = [p.name for ps in holder.paths.values() for p in ps if not p.up]
    log.info("holder for %s: %d paths, %d down%s", node.name,
             sum(len(ps) for ps in holder.paths.values()), len(down),
             f" ({', '.join(down)})" if down else "")
    if args.join:
        try:
            result = holder.join(Deadline.after(10))
        except FencedBoot as exc:
            log.error("join refused: %s", exc)
            holder.close()
            return 1
        log.info("join: %s", "ok" if result.ok else "incomplete")
    server = HolderServer(socket_path(config.paths.runtime_dir), holder, log)
    server.serve_in_thread()
    print("READY", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    holder.close()
    log.info("holder for %s stopped", node.name)
    return 0
