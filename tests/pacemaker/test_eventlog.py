"""The event log shared by the agent and the DRBD handlers: whole lines, appended, durable."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from stonewall.eventlog import Event, EventLog, EventLogError, read_events


class FixedClock:
    """A wall clock that reads what the test set."""

    def __init__(self, wall: float) -> None:
        self.now = wall

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_record_is_one_json_line_with_time_actor_action_target_outcome(tmp_path: Path) -> None:
    path = tmp_path / "log" / "events.jsonl"  # the directory is created
    log = EventLog(str(path), FixedClock(1_764_000_000.25))
    written = log.append(Event("fence_stonewall", "node1", "off", "node2", "fenced",
                               {"luns": ["arbiter0", "data2"]}))
    assert path.read_text().count("\n") == 1
    assert json.loads(path.read_text()) == written == {
        "time": "2025-11-24T16:00:00.250+00:00", "source": "fence_stonewall", "actor": "node1",
        "action": "off", "target": "node2", "outcome": "fenced",
        "details": {"luns": ["arbiter0", "data2"]}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_records_are_appended_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"earlier": "record"}\n')
    log = EventLog(str(path))
    for outcome in ("failed", "fenced"):
        log.append(Event("drbd fence-peer", "node1", "fence-peer", "node2", outcome))
    records = read_events(str(path))
    assert records[0] == {"earlier": "record"}
    assert [r["outcome"] for r in records[1:]] == ["failed", "fenced"]


def _append_many(path: str, writer: int, count: int) -> None:
    log = EventLog(path)
    for number in range(count):
        log.append(Event("test", f"writer{writer}", "off", "node2", "fenced",
                         {"n": number, "padding": "x" * 3000}))


def test_records_from_processes_writing_at_once_never_interleave(tmp_path: Path) -> None:
    path = str(tmp_path / "events.jsonl")
    workers = [multiprocessing.Process(target=_append_many, args=(path, w, 40)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert all(worker.exitcode == 0 for worker in workers)
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 160
    records = [json.loads(line) for line in lines]  # every line is whole
    for writer in range(4):
        numbers = [r["details"]["n"] for r in records if r["actor"] == f"writer{writer}"]
        assert numbers == list(range(40))


def test_a_torn_last_line_is_skipped_by_readers(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventLog(str(path)).append(Event("test", "node1", "on", "node1", "unfenced"))
    with open(path, "a") as handle:
        handle.write('{"time": "2026-')  # what a full disk leaves behind
    assert [r["outcome"] for r in read_events(str(path))] == ["unfenced"]
    assert read_events(str(tmp_path / "absent.jsonl")) == []


def test_an_unwritable_log_raises_its_own_error_type(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(EventLogError, match="cannot append to the event log"):
        EventLog(str(blocker / "events.jsonl")).append(Event("test", None, "off", "x", "failed"))
    assert isinstance(EventLogError("x"), OSError) and os.path.isfile(blocker)
