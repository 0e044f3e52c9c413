"""The wheel a cluster node gets holds no lab and no benchmarks (issue 14: pve ships its
simulator apart, sbd its testbed only in tests); the editable install the tests run from
still maps the whole tree."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_no_lab_and_no_benchmarks(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("stonewall-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "stonewall/cli.py" in names and "stonewall/handlers/fence_agent.py" in names
    assert [name for name in names if name.startswith(("stonewall/lab/",
                                                       "stonewall/benchmarks/",
                                                       "stonewall/tests/"))] == []


def test_the_editable_install_still_imports_the_lab() -> None:
    import stonewall.lab.cluster

    assert Path(stonewall.lab.cluster.__file__).is_relative_to(ROOT)
