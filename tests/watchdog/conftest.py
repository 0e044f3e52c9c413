"""Fixtures: a "node" process group to be reset, and real stand-in supervisor processes.

Everything started here is stopped by PID at teardown.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from stonewall.lab.watchdog_supervisor import StandinSupervisor, spawn_supervisor

from ..lab_fixtures import lab, observer  # noqa: F401 - the two-node lab, for the service


@dataclass
class Node:
    """A process group standing for the node: what a stand-in "reset" kills."""

    process: subprocess.Popen[bytes]

    @property
    def pgid(self) -> int:
        return self.process.pid  # a session leader's pgid is its pid

    def was_reset(self, within: float) -> bool:
        """True if the group's leader died of SIGKILL within `within` seconds."""
        try:
            return self.process.wait(timeout=within) == -9
        except subprocess.TimeoutExpired:
            return False

    def alive(self) -> bool:
        return self.process.poll() is None


@pytest.fixture
def short_dir() -> Iterator[str]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = tempfile.mkdtemp(prefix="sw-wd-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node() -> Iterator[Node]:
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield Node(process)
    if process.poll() is None:
        process.kill()
    process.wait(timeout=5)


@pytest.fixture
def standin_for(short_dir: str) -> Iterator[Callable[[int], StandinSupervisor]]:
    """Factory: a supervisor that resets (kills) the given process group."""
    started: list[StandinSupervisor] = []

    def spawn(pgid: int) -> StandinSupervisor:
        n = len(started)
        supervisor = spawn_supervisor(f"{short_dir}/wd{n}.sock", pgid,
                                      f"{short_dir}/wd{n}.jsonl")
        started.append(supervisor)
        return supervisor

    yield spawn
    for supervisor in started:
        supervisor.stop()


@pytest.fixture
def standin(node: Node, standin_for: Callable[[int], StandinSupervisor]) -> StandinSupervisor:
    """A supervisor that resets the `node` fixture's group."""
    return standin_for(node.pgid)
