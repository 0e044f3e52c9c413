"""The package tests share one build of the .deb (scripts/build-deb: dpkg-buildpackage and
lintian, ~16 s)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .throwaway_root import SYSTEM_PATH

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def deb() -> Path:
    missing = [tool for tool in ("dpkg-buildpackage", "dh", "lintian", "xmllint", "unshare")
               if shutil.which(tool, path=SYSTEM_PATH) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup installs them)")
    if os.geteuid() != 0:
        pytest.skip("needs root (dpkg, mount namespaces)")
    built = subprocess.run([str(ROOT / "scripts" / "build-deb")], capture_output=True,
                           text=True, timeout=600, env={"PATH": SYSTEM_PATH, "HOME": "/root"},
                           check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    path = ROOT / built.stdout.strip().splitlines()[-1]
    assert path.is_file()
    assert "\nE: " not in "\n" + built.stderr, built.stderr  # lintian errors fail the build too
    return path


