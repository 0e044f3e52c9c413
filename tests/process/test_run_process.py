"""The process runner: stdin in, bounded output out, and a deadline that kills the group."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.process import ProgramNotExecutable, ProgramNotFound, run_process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_stdin_reaches_the_program_and_both_streams_come_back() -> None:
    done = run_process(["sh", "-c", "cat; echo oops >&2; exit 3"], Deadline.after(10),
                       stdin=b"action=off\nplug=1\n")
    assert done.returncode == 3 and not done.timed_out
    assert done.stdout == b"action=off\nplug=1\n"
    assert done.stderr == b"oops\n"


def test_the_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    began = time.monotonic()
    done = run_process(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"],
                       Deadline.after(0.5))
    assert done.timed_out and done.returncode is None
    assert time.monotonic() - began < 5
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the kill is sent; reaping by init may lag a moment
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_a_grandchild_holding_the_pipes_does_not_outlive_the_deadline() -> None:
    # The child exits at once, its background child keeps stdout open.
    done = run_process(["sh", "-c", "sleep 60 & exit 0"], Deadline.after(0.5))
    assert done.timed_out


def test_output_beyond_the_limit_is_counted_not_kept() -> None:
    done = run_process(["sh", "-c", "head -c 100000 /dev/zero"], Deadline.after(10),
                       output_limit=1000)
    assert done.ok and len(done.stdout) == 1000 and done.stdout_dropped == 99000


def test_the_environment_is_exactly_the_one_given() -> None:
    done = run_process(["/usr/bin/env"], Deadline.after(10), env={"ONLY": "this"})
    assert done.stdout == b"ONLY=this\n"


def test_a_missing_program_is_an_error_type() -> None:
    with pytest.raises(ProgramNotFound):
        run_process(["/nonexistent/fence_nothing"], Deadline.after(5))


def test_a_file_that_cannot_execute_is_an_error_type(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(ProgramNotExecutable):
        run_process([str(script)], Deadline.after(5))
