"""The `iscsi` transport: libiscsi sessions, one per path (I_T nexus), moving CDBs.

Every session logs in with the node's own initiator name and a stable ISID derived from the
initiator name and the portal, so a reconnect presents the same initiator port (real arrays keep
the registration of that I_T nexus; tgtd does not, see reference/scsi-pr.md). libiscsi's own
automatic reconnect is switched off: it would re-issue queued commands on a new session behind
our back, and a PR OUT whose fate is unknown must be verified by the caller, not repeated.

All I/O is asynchronous underneath: `submit` queues a CDB, `wait_for` drives any number of
sessions on one poll() loop until their commands finish or the deadline passes. `execute` is
submit + wait for a single command. `SessionPoller` is that loop's poll set, kept
incrementally; storage/scsi/batch.py drives whole operations on it."""
from __future__ import annotations

import ctypes
import hashlib
import itertools
import select
import threading
from dataclasses import dataclass, field
from typing import Iterable

from stonewall.clock import Deadline
from stonewall.storage.scsi import libiscsi as li
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import CommandTimeout, TransportError
from stonewall.storage.scsi.types import ScsiStatus


@dataclass(frozen=True)
class Chap:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Chap(username={self.username!r}, password=<hidden>)"


def stable_isid(initiator: str, portal: str, role: str) -> tuple[int, int]:
    """A (24-bit random-format value, 16-bit qualifier) pair that is the same every time this
    initiator logs in to this portal in this role. Roles keep a reader's session apart from the
    holder's: a second login with the same initiator name and ISID would reinstate (close) the
    holder's session (RFC 7143 session reinstatement)."""
    digest = hashlib.sha256(f"{initiator}\0{portal}\0{role}".encode()).digest()
    return int.from_bytes(digest[:3], "big"), int.from_bytes(digest[3:5], "big")


@dataclass
class PendingCommand:
    """A command on its way. `result` or `error` is set when it is done."""

    session: "IscsiSession"
    description: str
    result: CommandResult | None = None
    error: TransportError | None = None
    keepalive: list[object] = field(default_factory=list)  # buffers libiscsi still reads

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def outcome(self) -> CommandResult:
        """The result, or the transport error raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None, "outcome() before the command finished"
        return self.result


class IscsiSession:
    """One logged-in iSCSI session to one LUN through one portal."""

    def __init__(self, portal: str, target: str, lun: int, initiator: str, *,
                 role: str = "holder", chap: Chap | None = None) -> None:
        self.portal = portal
        self.target = target
        self.lun = lun
        self.initiator = initiator
        self.role = role
        self.chap = chap
        self.lock = threading.Lock()  # a libiscsi context is not thread-safe
        self._context: int | None = None
        self._pending: dict[int, PendingCommand] = {}
        self._ids = itertools.count(1)
        self._login_state: dict[str, object] = {}
        # One C callback per session, kept alive as long as the session.
        self._command_cb = li.COMMAND_CB(self._on_command_done)
        self._connect_cb = li.COMMAND_CB(self._on_connected)

    @property
    def path_name(self) -> str:
        return f"{self.target} lun {self.lun} via {self.portal}"

    @property
    def connected(self) -> bool:
        return self._context is not None

    def __repr__(self) -> str:
        return f"IscsiSession({self.path_name}, initiator={self.initiator})"

    # -- login ---------------------------------------------------------------------------
    def connect(self, deadline: Deadline) -> None:
        """Log in (a new session with this initiator name and its stable ISID)."""
        self.close()
        lib = li.lib()
        context = lib.iscsi_create_context(self.initiator.encode())
        if not context:
            raise TransportError(f"{self.path_name}: cannot create an iSCSI context")
        lib.iscsi_set_targetname(context, self.target.encode())
        lib.iscsi_set_session_type(context, li.ISCSI_SESSION_NORMAL)
        lib.iscsi_set_header_digest(context, li.ISCSI_HEADER_DIGEST_NONE)
        lib.iscsi_set_noautoreconnect(context, 1)
        value, qualifier = stable_isid(self.initiator, self.portal, self.role)
        lib.iscsi_set_isid_random(context, value, qualifier)
        if self.chap is not None:
            lib.iscsi_set_initiator_username_pwd(context, self.chap.username.encode(),
                                                 self.chap.password.encode())
        self._context = context
        self._login_state = {}
        if lib.iscsi_full_connect_async(context, self.portal.encode(), self.lun,
                                        self._connect_cb, None) != 0:
            message = self._error_text()
            self.close()
            raise TransportError(f"{self.path_name}: login failed: {message}")
        while "status" not in self._login_state:
            if deadline.expired():
                self.close()
                raise CommandTimeout(f"{self.path_name}: login did not finish in time")
            if not self._service_once(deadline.remaining()):
                message = self._error_text()
                self.close()
                raise TransportError(f"{self.path_name}: login failed: {message}")
        if self._login_state["status"] != 0:
            message = self._login_state.get("error") or self._error_text()
            self.close()
            raise TransportError(f"{self.path_name}: login failed: {message}")

    def reconnect(self, deadline: Deadline) -> None:
        """A new session with the same initiator port identity."""
        self.connect(deadline)

    def close(self) -> None:
        """Drop the session. Commands still pending end with TransportError."""
        context, self._context = self._context, None
        for pending in self._pending.values():
            pending.error = TransportError(f"{pending.description}: session closed")
        self._pending.clear()
        if context:
            li.lib().iscsi_destroy_context(context)

    def _on_connected(self, _context: int, status: int, _data: int, _private: int) -> None:
        self._login_state["status"] = status
        if status != 0 and self._context:
            self._login_state["error"] = self._error_text()

    def _error_text(self) -> str:
        if not self._context:
            return "no session"
        text = li.lib().iscsi_get_error(self._context)
        return text.decode(errors="replace") if text else "unknown error"

    # -- commands ------------------------------------------------------------------------
    def submit(self, cdb: bytes, *, data_out: bytes | None = None,
               data_in_length: int = 0) -> PendingCommand:
        """Queue `cdb`; drive it with `wait_for`."""
        description = f"CDB {cdb[:1].hex()} on {self.path_name}"
        pending = PendingCommand(self, description)
        if self._context is None:
            pending.error = TransportError(f"{description}: not connected")
            return pending
        lib = li.lib()
        cdb_buffer = (ctypes.c_ubyte * len(cdb)).from_buffer_copy(cdb)
        if data_out is not None:
            direction, length = li.SCSI_XFER_WRITE, len(data_out)
        elif data_in_length:
            direction, length = li.SCSI_XFER_READ, data_in_length
        else:
            direction, length = li.SCSI_XFER_NONE, 0
        task = lib.scsi_create_task(len(cdb), cdb_buffer, direction, length)
        if not task:
            pending.error = TransportError(f"{description}: out of memory")
            return pending
        data_arg = None
        if data_out is not None:
            out_buffer = ctypes.create_string_buffer(data_out, len(data_out))
            data_arg = li.IscsiData(len(data_out), ctypes.cast(out_buffer, ctypes.c_void_p))
            pending.keepalive += [out_buffer, data_arg]
        command_id = next(self._ids)
        self._pending[command_id] = pending
        if lib.iscsi_scsi_command_async(self._context, self.lun, task, self._command_cb,
                                        ctypes.byref(data_arg) if data_arg else None,
                                        ctypes.c_void_p(command_id)) != 0:
            del self._pending[command_id]
            lib.scsi_free_scsi_task(task)
            pending.error = TransportError(f"{description}: {self._error_text()}")
        elif lib.iscsi_which_events(self._context) & select.POLLOUT:
            # Write the PDU now rather than on the next poll() round: one wakeup per command
            # (its answer) instead of two. A socket that cannot take it keeps it queued.
            self._service(select.POLLOUT)
        return pending

    def _on_command_done(self, _context: int, status: int, task_ptr: int,
                         private: int) -> None:
        pending = self._pending.pop(private or 0, None)
        task = ctypes.cast(task_ptr, ctypes.POINTER(li.ScsiTask)) if task_ptr else None
        try:
            if pending is None:
                return
            if status in (li.SCSI_STATUS_ERROR, li.SCSI_STATUS_CANCELLED,
                          li.SCSI_STATUS_TIMEOUT) or task is None:
                pending.error = TransportError(f"{pending.description}: {self._error_text()}")
                return
            datain = task.contents.datain
            raw = ctypes.string_at(datain.data, datain.size) if datain.size > 0 else b""
            if status == ScsiStatus.CHECK_CONDITION:
                # libiscsi leaves the sense segment in datain: a 2-byte length, then sense.
                sense_length = int.from_bytes(raw[:2], "big") if len(raw) >= 2 else 0
                pending.result = CommandResult(status, b"", raw[2:2 + sense_length])
            else:
                pending.result = CommandResult(status, raw if status == 0 else b"", b"")
        finally:
            if task is not None:
                li.lib().scsi_free_scsi_task(task)

    def execute(self, cdb: bytes, deadline: Deadline, *, data_out: bytes | None = None,
                data_in_length: int = 0) -> CommandResult:
        """Send one CDB and wait for its status within `deadline`."""
        with self.lock:
            pending = self.submit(cdb, data_out=data_out, data_in_length=data_in_length)
            wait_for([pending], deadline)
            return pending.outcome()

    # -- the event loop's view of this session -----------------------------------------
    def _poll_spec(self) -> tuple[int, int] | None:
        if self._context is None:
            return None
        lib = li.lib()
        fd = lib.iscsi_get_fd(self._context)
        return (fd, lib.iscsi_which_events(self._context)) if fd >= 0 else None

    def _service(self, revents: int) -> bool:
        """Let libiscsi process `revents`; False when the connection failed."""
        if self._context is None:
            return False
        if li.lib().iscsi_service(self._context, revents) < 0:
            message = self._error_text()
            self._fail_pending(message)
            return False
        return True

    def check_connection(self) -> bool:
        """Process whatever the target sent meanwhile (without waiting) and tell whether the
        connection still stands: a target that closed it is noticed here, not at the next
        command."""
        return not dropped_sessions([self])

    def _service_once(self, timeout: float) -> bool:
        spec = self._poll_spec()
        if spec is None:
            return False
        poller = select.poll()
        poller.register(spec[0], spec[1])
        events = poller.poll(max(0, int(timeout * 1000)) if timeout < 3600 else None)
        return all(self._service(revents) for _fd, revents in events)

    def _fail_pending(self, message: str) -> None:
        """The connection broke: every command on it has an unknown fate."""
        for pending in self._pending.values():
            pending.error = TransportError(f"{pending.description}: connection lost: {message}")
        self._pending.clear()
        context, self._context = self._context, None
        if context:
            li.lib().iscsi_destroy_context(context)


def dropped_sessions(sessions: Iterable[IscsiSession]) -> list[IscsiSession]:
    """The sessions whose connection is gone, found with one poll() over all of them (no
    waiting): whatever each target sent meanwhile is processed, so a target that closed a
    connection is noticed here, not at the next command. A session busy with a command
    (its lock held) is left to that command, which notices a drop itself."""
    dropped: list[IscsiSession] = []
    held: list[IscsiSession] = []
    by_fd: dict[int, IscsiSession] = {}
    poller = select.poll()
    try:
        for session in sessions:
            if not session.lock.acquire(blocking=False):
                continue
            held.append(session)
            spec = session._poll_spec()
            if spec is None:
                dropped.append(session)
                continue
            poller.register(spec[0], spec[1] | select.POLLIN)
            by_fd[spec[0]] = session
        for fd, revents in poller.poll(0):
            if not by_fd[fd]._service(revents):
                dropped.append(by_fd[fd])
    finally:
        for session in held:
            session.lock.release()
    return dropped


class SessionPoller:
    """The sessions with commands in flight, on one poll set kept up to date incrementally:
    a session is (re)registered only when something was done on it (a submit, a wakeup),
    and each descriptor maps straight to its session, so a wakeup costs O(sessions that
    woke), not O(commands waiting). Extra descriptors (a wakeup pipe) may be watched too."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._by_fd: dict[int, IscsiSession] = {}
        self._spec: dict[int, tuple[int, int]] = {}  # id(session) -> (fd, events) registered
        self._inflight: dict[int, list[PendingCommand]] = {}  # id(session) -> its commands
        self._extra: set[int] = set()

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    def watch_extra(self, fd: int) -> None:
        self._extra.add(fd)
        self._poll.register(fd, select.POLLIN)

    def add(self, pending: PendingCommand) -> list[PendingCommand]:
        """Track a command just submitted; returns it at once if it already ended (it never
        left, or its session is gone)."""
        if pending.done:
            return [pending]
        session = pending.session
        self._inflight.setdefault(id(session), []).append(pending)
        return self._watch(session)

    def _watch(self, session: IscsiSession) -> list[PendingCommand]:
        """Register the session with the events libiscsi wants now; settles its commands
        when the connection is gone."""
        key = id(session)
        spec = session._poll_spec()
        if spec is None:
            session._fail_pending("not connected")
            return self._settle(session)
        old = self._spec.get(key)
        if old != spec:
            if old is not None:
                self._forget_fd(old[0])
            self._poll.register(*spec)
            self._by_fd[spec[0]] = session
            self._spec[key] = spec
        return []

    def _forget_fd(self, fd: int) -> None:
        self._by_fd.pop(fd, None)
        try:
            self._poll.unregister(fd)
        except KeyError:
            pass

    def _settle(self, session: IscsiSession) -> list[PendingCommand]:
        """The session's finished commands; it leaves the poll set with its last one."""
        key = id(session)
        inflight = self._inflight.get(key, [])
        finished = [p for p in inflight if p.done]
        left = [p for p in inflight if not p.done]
        if left:
            self._inflight[key] = left
            return finished + self._watch(session)
        self._inflight.pop(key, None)
        spec = self._spec.pop(key, None)
        if spec is not None:
            self._forget_fd(spec[0])
        return finished

    def poll(self, timeout: float) -> tuple[list[PendingCommand], bool]:
        """Wait up to `timeout` seconds; the commands that finished, and whether an extra
        descriptor became readable."""
        finished: list[PendingCommand] = []
        woke = False
        for fd, revents in self._poll.poll(max(0, int(timeout * 1000))):
            if fd in self._extra:
                woke = True
                continue
            session = self._by_fd.get(fd)
            if session is not None:
                session._service(revents)
                finished += self._settle(session)
        return finished, woke

    def expire(self) -> list[PendingCommand]:
        """The deadline passed: every command in flight ends with CommandTimeout and its
        session is dropped (its fate is unknown; the session cannot be trusted to be in
        step)."""
        expired = [p for inflight in self._inflight.values() for p in inflight]
        sessions = {id(p.session): p.session for p in expired}
        for pending in expired:
            pending.error = CommandTimeout(f"{pending.description}: no answer before the "
                                           "deadline")
        for session in sessions.values():
            spec = self._spec.pop(id(session), None)
            if spec is not None:
                self._forget_fd(spec[0])
            session._pending.clear()
            session.close()
        self._inflight.clear()
        return expired


def wait_for(pendings: Iterable[PendingCommand], deadline: Deadline) -> None:
    """Drive the sessions of `pendings` on one poll() loop until every command is done.

    At the deadline, sessions with commands still in flight are dropped and those commands end
    with CommandTimeout: their fate is unknown, and the session cannot be trusted to be in step.
    """
    poller = SessionPoller()
    for pending in pendings:
        poller.add(pending)
    while poller.busy:
        remaining = deadline.remaining()
        if remaining <= 0:
            poller.expire()
            return
        poller.poll(max(0.001, remaining))
