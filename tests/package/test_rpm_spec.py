"""dist/stonewall.spec builds with rpmbuild (Debian ships rpm) into an RPM with the same
files as the Debian package's layout, for Alma/Rocky 9. About 20 s."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .throwaway_root import SYSTEM_PATH

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_the_rpm_spec_builds_an_rpm_with_the_package_layout() -> None:
    if shutil.which("rpmbuild", path=SYSTEM_PATH) is None:
        pytest.skip("needs rpmbuild (Debian package rpm; scripts/setup installs it)")
    built = subprocess.run([str(ROOT / "scripts" / "build-rpm")], capture_output=True,
                           text=True, timeout=600, env={"PATH": SYSTEM_PATH, "HOME": "/root"},
                           check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    rpm = built.stdout.strip().splitlines()[-1]
    files = set(subprocess.run(["rpm", "-qlp", rpm], capture_output=True, text=True,
                               timeout=60, check=True).stdout.splitlines())
    for path in ("/usr/sbin/stonewall", "/usr/sbin/fence_stonewall",
                 "/usr/sbin/stonewall-drbd-fence-peer", "/etc/default/stonewall",
                 "/usr/lib/systemd/system/stonewall-watchdog.service",
                 "/usr/lib/tmpfiles.d/stonewall.conf", "/etc/logrotate.d/stonewall",
                 "/usr/share/man/man8/stonewall.8", "/usr/share/man/man5/cluster.yaml.5",
                 "/usr/share/stonewall/libvirt/50-stonewall-guard"):
        assert any(name.startswith(path) for name in files), path
    assert not [name for name in files if "/stonewall/lab/" in name
                or "/stonewall/benchmarks/" in name]
    requires = subprocess.run(["rpm", "-qpR", rpm], capture_output=True, text=True,
                              timeout=60, check=True).stdout.split()
    assert "python3.11" in requires and "python3.11-pyyaml" in requires
