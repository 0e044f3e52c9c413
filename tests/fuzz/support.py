"""What every fuzzer checks: a refusal is one clear line, never a traceback."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping, Sequence

PROCESS_TIMEOUT = 30.0
MAX_MESSAGE = 600  # characters: a hostile value must not turn into a flood in the log


def assert_one_line(message: str) -> None:
    """A refusal message fit for one log line."""
    # splitlines() breaks at every character a log viewer may take for a line end
    assert len(message.splitlines()) <= 1 and "\n" not in message, repr(message)
    assert len(message) <= MAX_MESSAGE, f"{len(message)} characters: {message[:200]!r}"


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def assert_no_traceback(self) -> None:
        assert "Traceback (most recent call last)" not in self.stderr, self.stderr
        assert "--- Logging error ---" not in self.stderr, self.stderr  # a handler that raised

    def stderr_lines(self, *, skip_prefix: str | None = None) -> list[str]:
        """stderr's lines, without those starting with `skip_prefix` (warnings)."""
        lines = self.stderr.splitlines()
        return [line for line in lines if skip_prefix is None or not line.startswith(skip_prefix)]


def run(command: Sequence[str | bytes], *, stdin: bytes = b"",
        env: Mapping[str | bytes, str | bytes] | None = None) -> Run:
    """`command` as a process of its own, stdin given and closed, output decoded leniently."""
    done = subprocess.run(list(command), input=stdin, capture_output=True, env=env,
                          timeout=PROCESS_TIMEOUT, cwd="/")
    return Run(done.returncode, done.stdout.decode("utf-8", "replace"),
               done.stderr.decode("utf-8", "replace"))


def python_module(module: str, *args: str | bytes) -> list[str | bytes]:
    """The command that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]
