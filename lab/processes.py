"""Start stonewall's own long-running commands as real processes for the lab, and stop
them by PID."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping


class ProcessStartError(RuntimeError):
    """The process exited or did not report READY in time."""


class StonewallProcess:
    """`stonewall --config CONFIG ARGS...` in its own process group (or in `process_group`,
    e.g. a lab node's group that a watchdog stand-in resets); READY on stdout."""

    def __init__(self, config: Path, args: list[str], env: Mapping[str, str] | None = None,
                 log: Path | None = None, process_group: int | None = None) -> None:
        self.command = [sys.executable, "-m", "stonewall", "--config", str(config), *args]
        self.env = {**os.environ, **(env or {})}
        self.log = log or config.parent / f"{args[0]}.log"
        self.process_group = process_group
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 15.0) -> "StonewallProcess":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.PIPE,
                                            stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=self.process_group is None,
                                            process_group=self.process_group)
        assert self.process.stdout is not None
        deadline = time.monotonic() + ready_timeout
        line = b""
        # poll() rather than select(): a process with 1,024 sessions has descriptors past 1023.
        watcher = select.poll()
        watcher.register(self.process.stdout, select.POLLIN)
        while not line.startswith(b"READY"):
            remaining = deadline - time.monotonic()
            if not watcher.poll(max(0, int(remaining * 1000))):
                self.stop()
                raise ProcessStartError(f"{' '.join(self.command)}: no READY in "
                                        f"{ready_timeout}s; see {self.log}")
            line = self.process.stdout.readline()
            if not line:
                code = self.process.wait()
                raise ProcessStartError(f"{' '.join(self.command)} exited {code}; "
                                        f"see {self.log}")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole group; returns the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill(process)
                process.wait()
        self._kill(process)  # anything it left in its group
        if process.stdout:
            process.stdout.close()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the group: a crash."""
        if self.process is not None and self.process.poll() is None:
            self._kill(self.process)
            self.process.wait()

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL its own group; in a shared group only the process (the group's owner
        ends the rest)."""
        try:
            if self.process_group is None:
                os.killpg(process.pid, signal.SIGKILL)
            elif process.poll() is None:
                process.kill()
        except ProcessLookupError:
            pass
