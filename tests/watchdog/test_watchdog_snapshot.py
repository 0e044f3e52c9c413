"""The service's status file: written atomically, read back strictly, and judged at the
moment of reading (ages from the shared monotonic clock, a silent service is "not running")."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stonewall.watchdog.loop import LoopState, WatchdogStatus
from stonewall.watchdog.snapshot import (
    STALE_AFTER_INTERVALS, Health, SnapshotMissing, SnapshotUnreadable, judge_snapshot,
    read_snapshot, render_text, write_snapshot)

INTERVAL = 0.2
NOW = 1000.0  # "now" on the monotonic clock of the reader


def snapshot(state: LoopState, *, written: float = NOW - 0.1, last_good: float | None = NOW - 0.3,
             reason: str | None = None) -> dict:
    status = WatchdogStatus(
        state=state, device="standin:/tmp/wd.sock", timeout=1.5, petting_limit=1.0,
        last_check_wall=1.7e9, last_check_monotonic=last_good, last_check_age=0.0,
        margin_left=1.0, last_result="owned", last_keepalive_monotonic=written,
        keepalive_error=None, checker_alive=True, self_fencing_reason=reason,
        guest_stop_error=None)
    return {"service": {"node": "node-a", "pid": os.getpid(), "interval": INTERVAL,
                        "t_safe": 3.0, "written_monotonic": written, "written_wall": 1.7e9,
                        "stop_requested": False, "stop_refused": None,
                        "guest_stop": {"reason": reason, "destroyed": ["web1"], "failed": {},
                                       "finished_wall": 1.7e9, "ok": True} if reason else None},
            "watchdog": status.to_dict(),
            "holder": {"node": "node-a", "fenced_in_this_boot": bool(reason),
                       "paths": [{"lun": "arbiter0", "path": "p0", "registered": True}]}}


def test_a_fresh_petting_snapshot_is_ok_with_ages_recomputed_for_now():
    reading = judge_snapshot(snapshot(LoopState.PETTING), NOW, pid_alive=True)
    assert reading.health is Health.OK and reading.service_running
    assert reading.last_check_age == pytest.approx(0.3)
    assert reading.margin_left == pytest.approx(0.7)


def test_a_snapshot_nobody_rewrites_means_the_service_is_not_running():
    old = snapshot(LoopState.PETTING, written=NOW - STALE_AFTER_INTERVALS * INTERVAL - 0.01)
    reading = judge_snapshot(old, NOW, pid_alive=True)
    assert reading.health is Health.ATTENTION and not reading.service_running
    assert judge_snapshot(snapshot(LoopState.PETTING), NOW, pid_alive=False).service_running \
        is False


def test_a_proof_older_than_the_petting_limit_needs_attention_even_while_petting():
    reading = judge_snapshot(snapshot(LoopState.PETTING, last_good=NOW - 1.2), NOW, True)
    assert reading.health is Health.ATTENTION
    assert reading.margin_left == pytest.approx(-0.2)


def test_self_fencing_is_shown_with_its_reason_and_the_destroyed_guests():
    data = snapshot(LoopState.SELF_FENCING, reason="key gone (own key missing on arbiter0)")
    reading = judge_snapshot(data, NOW, pid_alive=True)
    assert reading.health is Health.ATTENTION
    assert reading.why == "SELF-FENCING: key gone (own key missing on arbiter0)"
    text = render_text(data, reading)
    assert "guests destroyed:" in text and "web1" in text
    assert "paths registered:" in text and "1/1" in text


def test_the_file_is_private_and_read_back_whole(tmp_path: Path):
    path = tmp_path / "watchdog.json"
    write_snapshot(path, snapshot(LoopState.PETTING))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_snapshot(path)["watchdog"]["state"] == "petting"
    assert [p.name for p in tmp_path.iterdir()] == ["watchdog.json"]  # no temporary left


def test_a_missing_or_foreign_file_is_refused_by_type(tmp_path: Path):
    with pytest.raises(SnapshotMissing):
        read_snapshot(tmp_path / "watchdog.json")
    (tmp_path / "watchdog.json").write_text('{"version": 99, "watchdog": {}, "service": {}}')
    with pytest.raises(SnapshotUnreadable):
        read_snapshot(tmp_path / "watchdog.json")
    (tmp_path / "watchdog.json").write_text("{not json")
    with pytest.raises(SnapshotUnreadable):
        read_snapshot(tmp_path / "watchdog.json")
