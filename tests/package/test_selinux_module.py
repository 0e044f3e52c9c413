"""The SELinux module for Alma/Rocky 9 (dist/selinux/stonewall.te) compiles with the
policy compiler (Debian's checkpolicy): its syntax and its declared types and classes are
consistent. Loading it needs an EL9 host."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "dist" / "selinux" / "stonewall.te"


def test_the_selinux_module_compiles(tmp_path: Path) -> None:
    if shutil.which("checkmodule") is None:
        pytest.skip("needs checkmodule (Debian package checkpolicy; scripts/setup installs it)")
    compiled = subprocess.run(["checkmodule", "-M", "-m", "-o", str(tmp_path / "stonewall.mod"),
                               str(MODULE)], capture_output=True, text=True, timeout=60,
                              check=False)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert (tmp_path / "stonewall.mod").stat().st_size > 0
