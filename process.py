"""The one way stonewall runs another program: a hard deadline that kills the child's whole
process group, bounded capture of its output, and a typed result.

A child is started in a session of its own (start_new_session), so the group holds the
child and everything it forked: a fence agent's snmpget, a shell's pipeline. At the
deadline the whole group gets SIGKILL. Killing only the child would leave a grandchild
holding the pipes open, and the read would then wait as long as that grandchild lives. A
program that cannot even be started is an error type, never a result.
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stonewall.clock import Deadline

DEFAULT_OUTPUT_LIMIT = 64 * 1024  # bytes kept per stream; the rest is counted, not stored
_CHUNK = 8192


class ProcessError(Exception):
    """The program could not be run at all."""


class ProgramNotFound(ProcessError):
    """The program file does not exist (or is not on PATH)."""

    def __init__(self, program: str) -> None:
        super().__init__(f"{program}: no such program")
        self.program = program


class ProgramNotExecutable(ProcessError):
    """The program exists but cannot be executed (permissions, format)."""


@dataclass(frozen=True)
class Completed:
    """How one run ended. `returncode` is None exactly when the deadline killed it."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: bytes
    stderr: bytes
    elapsed: float  # seconds from start to exit (or to the kill)
    stdout_dropped: int = 0  # bytes beyond the limit, not kept
    stderr_dropped: int = 0

    @property
    def timed_out(self) -> bool:
        """The deadline passed and the process group was killed."""
        return self.returncode is None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def text(self, stream: str = "stdout") -> str:
        """One stream decoded as UTF-8 (undecodable bytes replaced)."""
        return (self.stdout if stream == "stdout" else self.stderr).decode("utf-8", "replace")


def run_process(argv: Sequence[str], deadline: Deadline, *, env: Mapping[str, str] | None = None,
                stdin: bytes | None = None, output_limit: int = DEFAULT_OUTPUT_LIMIT
                ) -> Completed:
    """Run `argv` until it exits or `deadline`, feeding it `stdin` (then EOF; None: no input).

    Returns a Completed (`timed_out` when the deadline killed its process group); raises
    ProgramNotFound or ProgramNotExecutable when it cannot start."""
    if not argv:
        raise ValueError("no program to run")
    clock = deadline.clock
    began = clock.monotonic()
    try:
        child = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env) if env is not None
            else None, start_new_session=True, close_fds=True)
    except FileNotFoundError:
        raise ProgramNotFound(argv[0]) from None
    except OSError as err:  # EACCES, ENOEXEC ...
        raise ProgramNotExecutable(f"{argv[0]}: {err.strerror or err}") from None
    try:
        captured = _exchange(child, stdin, deadline, output_limit)
    finally:
        # Whatever ended the exchange, no process of the group outlives this call.
        _kill_group(child.pid)
        child.wait()
    returncode = None if captured.killed else child.returncode
    return Completed(tuple(argv), returncode, bytes(captured.out), bytes(captured.err),
                     clock.monotonic() - began, captured.dropped[0], captured.dropped[1])


@dataclass
class _Captured:
    out: bytearray
    err: bytearray
    dropped: list[int]
    killed: bool = False


def _exchange(child: subprocess.Popen[bytes], stdin: bytes | None, deadline: Deadline,
              limit: int) -> _Captured:
    """Write stdin, read both streams until EOF on both and exit, or the deadline."""
    assert child.stdout is not None and child.stderr is not None
    captured = _Captured(bytearray(), bytearray(), [0, 0])
    buffers = {child.stdout.fileno(): (captured.out, 0), child.stderr.fileno(): (captured.err, 1)}
    pending = memoryview(stdin or b"")
    with selectors.DefaultSelector() as selector:
        for stream in (child.stdout, child.stderr):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream.fileno(), selectors.EVENT_READ)
        if child.stdin is not None:
            os.set_blocking(child.stdin.fileno(), False)
            if pending:
                selector.register(child.stdin.fileno(), selectors.EVENT_WRITE)
            else:
                child.stdin.close()
        open_reads = 2
        while open_reads:
            remaining = deadline.remaining()
            if remaining <= 0:
                captured.killed = True
                break
            for key, _ in selector.select(remaining):
                if key.events & selectors.EVENT_WRITE:
                    assert child.stdin is not None
                    try:
                        pending = pending[os.write(key.fd, pending[:_CHUNK]):]
                    except BrokenPipeError:
                        pending = memoryview(b"")  # it stopped reading: its answer says why
                    if not pending:
                        selector.unregister(key.fd)
                        child.stdin.close()
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    open_reads -= 1
                    continue
                buffer, index = buffers[key.fd]
                room = max(0, limit - len(buffer))
                buffer += chunk[:room]
                captured.dropped[index] += len(chunk) - min(room, len(chunk))
        if not captured.killed:
            # Both streams closed; the exit follows at once unless the child closed them
            # itself and lives on: the deadline still bounds that.
            try:
                child.wait(timeout=deadline.remaining())
            except subprocess.TimeoutExpired:
                captured.killed = True
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            stream.close()
    return captured


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is gone already: every member exited
    except PermissionError:
        pass  # the group id was reused by a process we may not signal: ours are gone
