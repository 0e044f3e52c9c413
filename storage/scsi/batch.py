"""Many operations (steps.py) at once, on one poll() loop: one batch per phase of a fence.

Every iSCSI exchange of every operation goes out as soon as the operation asks for it, and
all of them are driven by one thread on one poll set (iscsi.SessionPoller), so N commands
cost about one round trip, not N thread hand-offs. Blocking steps (sg_persist, SG_IO, a
login, a back-off) run on a bounded pool of workers whose completions wake the loop through
a pipe. A session carries one batched command at a time and is held (its lock) while it
does: a libiscsi context is not thread-safe, and the holder's other requests share it."""
from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from collections import deque
from typing import Any, Sequence, TypeVar

from stonewall.bounded import Abandoned
from stonewall.clock import Deadline
from stonewall.storage.scsi.errors import CommandTimeout
from stonewall.storage.scsi.iscsi import IscsiSession, PendingCommand, SessionPoller
from stonewall.storage.scsi.steps import Exchange, Step, Steps

T = TypeVar("T")

MAX_WORKERS = 16
LOCK_RETRY_SECONDS = 0.002  # a session busy with another thread's command: look again soon
_WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                                 thread_name_prefix="stonewall-batch")
_ON_WORKER = threading.local()
_PENDING = object()  # a slot whose operation has not ended


def run_all(operations: Sequence[Steps[T]], deadline: Deadline) -> list[T | BaseException]:
    """Drive every operation to its end; each slot holds its result or the exception it
    raised (Abandoned when it still waited on a blocking call at the deadline). Order is
    kept. Called on one of this module's workers, blocking steps run inline (a worker
    waiting on workers could starve the pool)."""
    return _Batch(list(operations), deadline).run()


class _Batch:
    def __init__(self, operations: list[Steps[Any]], deadline: Deadline) -> None:
        self.operations = operations
        self.deadline = deadline
        self.results: list[Any] = [_PENDING] * len(operations)
        self.open = len(operations)
        self.ready: deque[tuple[int, Any, BaseException | None]] = deque(
            (index, None, None) for index in range(len(operations)))
        self.poller = SessionPoller()
        self.owner: dict[int, tuple[int, IscsiSession]] = {}  # id(pending) -> operation
        self.want_lock: list[tuple[int, Exchange]] = []
        self.on_workers: set[int] = set()
        self.done_calls: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = (
            queue.SimpleQueue())
        self.inline = getattr(_ON_WORKER, "active", False)
        self.wake_read, self.wake_write = os.pipe()
        self.pipe_lock = threading.Lock()  # a late worker never writes to a closed (reused) fd
        self.pipe_open = True
        os.set_blocking(self.wake_read, False)
        self.poller.watch_extra(self.wake_read)

    def run(self) -> list[Any]:
        try:
            while self.open:
                while self.ready:
                    self._advance(*self.ready.popleft())
                if not self.open:
                    break
                self._take_free_sessions()
                remaining = self.deadline.remaining()
                if remaining <= 0:
                    self._expire()
                    continue
                timeout = min(remaining, LOCK_RETRY_SECONDS) if self.want_lock else remaining
                finished, woke = self.poller.poll(timeout)
                for pending in finished:
                    self._finished(pending)
                if woke:
                    self._collect_workers()
        finally:
            if self.owner:  # left by an exception of the loop itself: no session stays held
                for pending in self.poller.expire():
                    self.owner.pop(id(pending))[1].lock.release()
            with self.pipe_lock:
                self.pipe_open = False
                os.close(self.wake_read)
                os.close(self.wake_write)
        return self.results

    # -- operations ------------------------------------------------------------------------
    def _advance(self, index: int, value: Any, error: BaseException | None) -> None:
        operation = self.operations[index]
        try:
            step = operation.throw(error) if error is not None else operation.send(value)
        except StopIteration as stop:
            self._end(index, stop.value)
            return
        except Exception as exc:  # the caller sorts results from failures
            self._end(index, exc)
            return
        self._issue(index, step)

    def _end(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.open -= 1

    def _issue(self, index: int, step: Step) -> None:
        if isinstance(step, Exchange) and isinstance(step.transport, IscsiSession):
            self._submit(index, step)
        elif self.inline:
            try:
                self.ready.append((index, _call(step, self.deadline), None))
            except Exception as exc:
                self.ready.append((index, None, exc))
        else:
            self.on_workers.add(index)
            _WORKERS.submit(self._on_worker, index, step)

    # -- iSCSI exchanges on the poll loop --------------------------------------------------
    def _submit(self, index: int, step: Exchange) -> None:
        session = step.transport
        assert isinstance(session, IscsiSession)
        if not session.lock.acquire(blocking=False):
            self.want_lock.append((index, step))
            return
        pending = session.submit(step.cdb, data_out=step.data_out,
                                 data_in_length=step.data_in_length)
        self.owner[id(pending)] = (index, session)
        for finished in self.poller.add(pending):
            self._finished(finished)

    def _take_free_sessions(self) -> None:
        waiting, self.want_lock = self.want_lock, []
        for index, step in waiting:
            self._submit(index, step)

    def _finished(self, pending: PendingCommand) -> None:
        index, session = self.owner.pop(id(pending))
        session.lock.release()
        self.ready.append((index, pending.result, pending.error))

    # -- blocking steps on workers ---------------------------------------------------------
    def _on_worker(self, index: int, step: Step) -> None:
        _ON_WORKER.active = True
        try:
            self.done_calls.put((index, _call(step, self.deadline), None))
        except Exception as exc:
            self.done_calls.put((index, None, exc))
        finally:
            _ON_WORKER.active = False
            with self.pipe_lock:
                if self.pipe_open:  # else the batch ended at its deadline without it
                    os.write(self.wake_write, b"x")

    def _collect_workers(self) -> None:
        try:
            os.read(self.wake_read, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                index, value, error = self.done_calls.get_nowait()
            except queue.Empty:
                return
            if index in self.on_workers:
                self.on_workers.discard(index)
                self.ready.append((index, value, error))

    # -- the deadline ----------------------------------------------------------------------
    def _expire(self) -> None:
        """Commands in flight end with CommandTimeout (their operations decide what that
        means), as do those still waiting for their session; operations waiting on a
        blocking call are abandoned (its own deadline ends it shortly after)."""
        for pending in self.poller.expire():
            self._finished(pending)
        for index, step in self.want_lock:
            self.ready.append((index, None, CommandTimeout(
                f"{step.transport.path_name}: session busy until the deadline")))
        self.want_lock = []
        for index in self.on_workers:
            self.operations[index].close()
            self._end(index, Abandoned("no answer before the deadline"))
        self.on_workers.clear()


def _call(step: Step, deadline: Deadline) -> Any:
    return step.execute(deadline) if isinstance(step, Exchange) else step.call(deadline)
