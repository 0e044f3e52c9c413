"""Ask the node's holder over its socket (the `Holder` of holder/api.py). Entry points that
act with the node's registration use this; when the holder is not running they fail safe
(HolderUnavailable), and they never register afresh.

What answers is checked before anything it says counts: the socket's peer must be root or
the service's user (SO_PEERCRED; the service's user is whoever owns the runtime directory,
which the holder creates mode 0700 and which lives under root's /run in production), and
every answer must name a node of the configuration with that node's key (and this node, when
the caller knows which node it is). Answers are rebuilt into the typed values of
holder/api.py, so every verdict is recomputed here from the per-LUN evidence, over the LUNs
this client asked for."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from stonewall import wire
from stonewall.clock import Deadline
from stonewall.holder.api import (
    WIRE_ERRORS, HolderError, HolderState, HolderUnavailable, HolderUntrusted, JoinOutcome,
    StorageFenceOutcome)
from stonewall.holder.fence_records import PreemptRecord
from stonewall.holder.handoffs import Direction, Handoff
from stonewall.holder.protocol import MAX_LINE, peer_credentials, trusted_uid
from stonewall.storage.reports import ClaimOutcome, VerifyReport
from stonewall.storage.view import LunView

MAX_ANSWER = 64 * MAX_LINE  # bytes of one answer line read at the most

if TYPE_CHECKING:
    from stonewall.config.model import ClusterConfig, Node

T = TypeVar("T")

# (request line, timeout in seconds) -> answer line; raises HolderUnavailable
Transport = Callable[[bytes, float], bytes]

HANDOFF_CALL_TIMEOUT = 5.0  # seconds for a handoff step when the caller gives no deadline


def socket_path(runtime_dir: str) -> str:
    """Where the node's holder listens: <runtime_dir>/holder.sock."""
    return str(Path(runtime_dir) / "holder.sock")


class HolderClient:
    """The holder of the node whose configuration `config` is, at
    `<paths.runtime_dir>/holder.sock`. `node`: the node this caller knows it is (None: any
    configured node, with its own key; the first answer then pins it)."""

    def __init__(self, config: ClusterConfig, node: str | None = None, *,
                 transport: Transport | None = None) -> None:
        """`transport`: how a request line reaches another node's holder (vm/peer.py); None
        is this node's socket. Every answer is checked the same way either way."""
        self.config = config
        self.socket_path = socket_path(config.paths.runtime_dir)
        self.expected_node = node
        self.transport = transport
        self.serves: Node | None = None  # the node the holder named, once it answered

    # -- the operations (holder.api.Holder) -------------------------------------------------
    def state(self, deadline: Deadline) -> HolderState:
        state = self._decode("state", HolderState.from_json, self._call("state", deadline))
        if self.serves is None or state.node != self.serves.name:
            raise HolderUntrusted(f"the holder's state names node {state.node!r}, but its "
                                  "answer came from another")
        return state

    def join(self, deadline: Deadline) -> JoinOutcome:
        return self._decode("join", JoinOutcome.from_json, self._call("join", deadline))

    def views(self, lun_names: Sequence[str] | None,
              deadline: Deadline) -> dict[str, LunView]:
        asked = self._lun_names(lun_names)
        answer = self._decode("views", lambda data: {
            name: LunView.from_json(view) for name, view in wire.obj(data, "views").items()},
            self._call("views", deadline, luns=asked))
        for name, view in answer.items():
            if view.lun != name or name not in asked:
                raise HolderUntrusted(f"the holder answered views for {name!r}, which was not "
                                      "asked for")
        return answer

    def verify(self, node: str, lun_names: Sequence[str] | None, present: bool,
               deadline: Deadline) -> VerifyReport:
        asked = self._lun_names(lun_names)
        report = self._decode("verify", VerifyReport.from_json,
                              self._call("verify", deadline, node=node, present=present,
                                         luns=asked))
        # `proven` then covers exactly what was asked: a LUN without a check is unproven.
        return dataclasses.replace(report, luns=tuple(asked))

    def preempt(self, victim_node: str, lun_names: Sequence[str] | None,
                deadline: Deadline) -> StorageFenceOutcome:
        asked = self._lun_names(lun_names)
        outcome = self._decode("preempt", StorageFenceOutcome.from_json,
                               self._call("preempt", deadline, victim=victim_node, luns=asked))
        if outcome.victim != victim_node:
            raise HolderUntrusted(f"the holder answered a fence of {outcome.victim!r}, not of "
                                  f"{victim_node!r}")
        return dataclasses.replace(outcome, luns=tuple(asked))

    def fence_record(self, victim_node: str, deadline: Deadline) -> PreemptRecord | None:
        """What this node's preempts of `victim_node` found in this boot (None: no record)."""
        result = self._call("fence_record", deadline, victim=victim_node)
        if result is None:
            return None
        record = self._decode("fence_record", PreemptRecord.from_json, result)
        if record.victim != victim_node or record.key != self.config.node(victim_node).key:
            raise HolderUntrusted(f"the holder answered a fence record of {record.victim!r} "
                                  f"with key 0x{record.key:016x}, not of {victim_node!r} with "
                                  "its configured key")
        return record

    def claim(self, lun: str, deadline: Deadline,
              handoff_from: str | None = None) -> ClaimOutcome:
        """Register this node on a guest LUN before its guest starts (NodeHolder.claim);
        `handoff_from`: the source of the live migration this node's hook admitted."""
        extra = {"handoff_from": handoff_from} if handoff_from is not None else {}
        return self._claimed("claim", lun, deadline, **extra)

    def release(self, lun: str, deadline: Deadline) -> ClaimOutcome:
        """Unregister this node from a guest LUN whose guest is off."""
        return self._claimed("release", lun, deadline)

    def _claimed(self, op: str, lun: str, deadline: Deadline, **extra: Any) -> ClaimOutcome:
        outcome = self._decode(op, ClaimOutcome.from_json,
                               self._call(op, deadline, lun=lun, **extra))
        if outcome.lun != lun:
            raise HolderUntrusted(f"the holder answered {op} for {outcome.lun!r}, not {lun!r}")
        return outcome

    # -- live migration (holder/handoffs.py) -------------------------------------------------
    def open_handoff(self, guest: str, peer: str, direction: Direction, luns: Sequence[str],
                     ttl: float, deadline: Deadline | None = None,
                     by_hook: bool = False) -> Handoff:
        return self._handoff("open_handoff", guest, deadline, peer=peer,
                             direction=direction.value, luns=list(luns), ttl=float(ttl),
                             by_hook=by_hook)

    def admit_incoming(self, guest: str, stage: str,
                       deadline: Deadline | None = None) -> Handoff:
        return self._handoff("admit_incoming", guest, deadline, stage=stage)

    def close_handoff(self, guest: str, deadline: Deadline | None = None) -> Handoff:
        return self._handoff("close_handoff", guest, deadline)

    def _handoff(self, op: str, guest: str, deadline: Deadline | None, **args: Any) -> Handoff:
        handoff = self._decode(op, Handoff.from_json, self._call(
            op, deadline or Deadline.after(HANDOFF_CALL_TIMEOUT), guest=guest, **args))
        if handoff.guest != guest or self.serves is None or self.serves.name not in (
                handoff.source, handoff.destination):
            raise HolderUntrusted(f"the holder answered {op} for {handoff.guest!r} between "
                                  f"{handoff.source} and {handoff.destination}, not for "
                                  f"{guest!r} on this node")
        return handoff

    # -- one request ------------------------------------------------------------------------
    def _lun_names(self, lun_names: Sequence[str] | None) -> list[str]:
        """The LUNs asked for, always named: None is every configured LUN, arbiter first."""
        if lun_names is None:
            return [lun.name for lun in self.config.luns_in_arbiter_order()]
        return list(lun_names)

    def _call(self, op: str, deadline: Deadline, **args: Any) -> Any:
        """Send one request; the holder gets the time left minus a little for the reply.
        Returns the result of a trusted answer."""
        timeout = deadline.remaining()
        if timeout <= 0.05:
            raise HolderUnavailable("no time left to ask the holder")
        request = {"op": op, "args": args, "timeout": round(timeout * 0.9, 3)}
        line = json.dumps(request).encode() + b"\n"
        reply = (self.transport(line, timeout) if self.transport is not None
                 else self.exchange(line, timeout))
        try:
            response = wire.obj(json.loads(reply), "answer")
        except (ValueError, RecursionError):
            raise HolderUntrusted(f"the answer on {self.socket_path} is not a JSON object") \
                from None
        self._check_identity(response)
        if response.get("ok") is True:
            return response.get("result")
        if response.get("ok") is False:
            error = WIRE_ERRORS.get(str(response.get("error")), HolderError)
            raise error(f"{response.get('error')}: {response.get('message')}")
        raise HolderUntrusted("the answer says neither ok true nor ok false")

    def exchange(self, line: bytes, timeout: float) -> bytes:
        """One request line to the holder's socket, its answer line back (`holder relay`
        passes a peer's request through here)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(timeout)
                conn.connect(self.socket_path)
                self._check_peer(conn)
                conn.sendall(line)
                return _read_line(conn)
        except FileNotFoundError:
            raise HolderUnavailable(f"the holder is not running (no socket "
                                    f"{self.socket_path})") from None
        except (ConnectionError, socket.timeout, OSError) as exc:
            raise HolderUnavailable(f"the holder did not answer: {exc}") from None

    def _check_peer(self, conn: socket.socket) -> None:
        service_uid = os.stat(os.path.dirname(self.socket_path)).st_uid
        peer = peer_credentials(conn)
        if not trusted_uid(peer.uid, service_uid):
            raise HolderUntrusted(f"{self.socket_path} is served by pid {peer.pid} as uid "
                                  f"{peer.uid}, neither root nor the service's user (uid "
                                  f"{service_uid}, owner of the runtime directory)")

    def _check_identity(self, response: dict[str, Any]) -> None:
        name = response.get("node")
        if not isinstance(name, str):
            raise HolderUntrusted(f"the answer on {self.socket_path} names no node")
        try:
            node = self.config.node(name)
        except KeyError:
            raise HolderUntrusted(f"the answer is from node {name!r}, which is not in "
                                  f"{self.config.source}") from None
        try:
            key = wire.key(response.get("key"), "answer")
        except wire.WireFormatError:
            raise HolderUntrusted(f"the answer from {name} names no key") from None
        if key != node.key:
            raise HolderUntrusted(f"the holder serves {name} with key 0x{key:016x}, but "
                                  f"{self.config.source} gives {name} 0x{node.key:016x}")
        wanted = self.expected_node or (self.serves.name if self.serves else None)
        if wanted is not None and name != wanted:
            raise HolderUntrusted(f"the holder serves {name}, not {wanted}")
        self.serves = node

    @staticmethod
    def _decode(op: str, decode: Callable[[Any], T], result: Any) -> T:
        try:
            return decode(result)
        except wire.WireFormatError as exc:
            raise HolderUntrusted(f"malformed answer to {op}: {exc}") from None


def _read_line(conn: socket.socket) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_ANSWER:
            break
    return b"".join(chunks)
