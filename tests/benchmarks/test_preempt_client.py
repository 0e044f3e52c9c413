"""The holder client entry point fails safe: no holder, no fence."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_without_a_holder_it_exits_1_and_says_so(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "stonewall.benchmarks.preempt_client",
                          "--socket", str(tmp_path / "holder.sock"), "--victim", "node-b",
                          "--timeout", "2"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert "holder is not running" in run.stderr
