"""The per-peer fence lock: a second fence of the same peer waits, a fence of another peer
does not, and a handler killed mid-fence leaves no lock behind (flock dies with it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.fencing.lock import PeerLockError, PeerLockTimeout, lock_path, peer_lock

HOLD_LOCK = """
import sys, time
from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.fencing.lock import peer_lock
with peer_lock(sys.argv[1], "node-a", Deadline.after(5), SYSTEM_CLOCK):
    print("LOCKED", flush=True)
    time.sleep(60)
"""


def test_a_killed_fence_leaves_no_lock_behind(tmp_path: Path):
    lock_dir = str(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, lock_dir],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(PeerLockTimeout, match="another fence of node-a"):
            with peer_lock(lock_dir, "node-a", Deadline.after(0.3), SYSTEM_CLOCK):
                pass
        with peer_lock(lock_dir, "node-b", Deadline.after(0.3), SYSTEM_CLOCK) as waited:
            assert waited < 0.1  # another peer's fence is not held up
    finally:
        holder.kill()  # SIGKILL by PID: the handler dies mid-fence
        holder.wait(timeout=5)
        if holder.stdout is not None:
            holder.stdout.close()
    with peer_lock(lock_dir, "node-a", Deadline.after(1), SYSTEM_CLOCK) as waited:
        assert waited < 0.5


def test_lock_names_and_directories_are_checked(tmp_path: Path):
    for bad in ("", "../etc", "a/b", ".."):
        with pytest.raises(ValueError, match="cannot name a lock file"):
            lock_path(str(tmp_path), bad)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PeerLockError, match="cannot open the fence lock"):
        with peer_lock(str(blocker), "node-a", Deadline.after(1), SYSTEM_CLOCK):
            pass
