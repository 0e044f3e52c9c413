"""The holder client entry point fails safe: no holder, no fence."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multipath-cluster.yaml"


def test_without_a_holder_it_exits_1_and_says_so(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["paths"]["runtime_dir"] = str(tmp_path / "run")
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump(document))
    run = subprocess.run([sys.executable, "-m", "stonewall.benchmarks.preempt_client",
                          "--config", str(config), "--victim", "kvm-b", "--timeout", "2"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert "holder is not running" in run.stderr
