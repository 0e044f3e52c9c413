"""The Debian package as an administrator gets it: built with Debian's tools, lintian without
errors, installed with this machine's dpkg, every entry point working from /usr/sbin, the
unit verified by systemd, the man pages found, the agent's metadata valid against
fence-agents' schema; then purged, with nothing left behind. `make install DESTDIR=` gives
the same files.

The install happens in a throwaway copy of this machine's root (throwaway_root.py), so no
other process sees a half-installed package and the purge check sees every file written.
About 60 s: one package build (~16 s, lintian included), one install, one purge, and one
`make install`."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import stonewall
from tests.pacemaker.test_agent_without_cluster import SCHEMA

from .throwaway_root import SYSTEM_PATH, ThrowawayRoot

pytestmark = [pytest.mark.slow, pytest.mark.package]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "stonewall"
DEB_INSIDE = "/tmp/stonewall.deb"
SBIN = ("stonewall", "fence_stonewall", "stonewall-drbd-fence-peer",
        "stonewall-drbd-unfence-peer", "stonewall-drbd-split-brain")
# What tmpfiles.d creates, with the modes the code expects (holder/server.py, eventlog.py).
RUN_TIME_DIRECTORIES = {"/run/stonewall": "700", "/var/lib/stonewall": "700",
                        "/var/log/stonewall": "750"}
# What dpkg keeps about a package it installed and purged, indexes its triggers rebuilt, and
# the stamp `systemd-analyze verify` writes: the tools' own files, not the package's.
PACKAGE_SYSTEM = ("/var/lib/dpkg/", "/var/log/dpkg.log", "/var/log/apt/", "/var/cache/man/",
                  "/var/cache/debconf/", "/var/lib/systemd/deb-systemd-helper-",
                  "/run/systemd/systemd-units-load", DEB_INSIDE, "/root/")


@pytest.fixture(scope="module")
def root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRoot]:
    """dpkg -i the package in a throwaway root; purged at the end, and then nothing it or
    its scripts created may be left."""
    throwaway = ThrowawayRoot(tmp_path_factory.mktemp("throwaway"))
    throwaway.start()
    try:
        if throwaway.run(["dpkg-query", "-W", PACKAGE]).returncode == 0:
            pytest.skip("a stonewall package is installed on this machine already")
        throwaway.copy_in(deb, DEB_INSIDE)
        result = throwaway.run(["dpkg", "-i", DEB_INSIDE])
        assert result.returncode == 0, result.stdout + result.stderr
        yield throwaway
        purged = throwaway.run(["dpkg", "--purge", PACKAGE])
        assert purged.returncode == 0, purged.stdout + purged.stderr
        left = {path: change for path, change in throwaway.changes().items()
                if not path.startswith(PACKAGE_SYSTEM)}
        assert left == {}
    finally:
        throwaway.stop()


@pytest.fixture(scope="module")
def installed(root: ThrowawayRoot) -> list[str]:
    """The package's files (not its directories), as dpkg lists them."""
    listing = root.run(["sh", "-c", f"dpkg-query -L {PACKAGE} | while read -r path; do "
                                    '[ -d "$path" ] || echo "$path"; done'])
    return listing.stdout.splitlines()


def test_every_entry_point_is_in_usr_sbin_and_runs(root: ThrowawayRoot,
                                                   installed: list[str]) -> None:
    for program in SBIN:
        assert f"/usr/sbin/{program}" in installed
        help_text = root.run([f"/usr/sbin/{program}", "--help"])
        assert help_text.returncode == 0 and "usage:" in help_text.stdout, help_text.stderr
    version = stonewall.__version__
    assert root.run(["/usr/sbin/stonewall", "--version"]).stdout == f"stonewall {version}\n"
    # fence-agents print only the version number for -V
    assert root.run(["/usr/sbin/fence_stonewall", "-V"]).stdout == f"{stonewall.__version__}\n"
    version = root.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE]).stdout
    assert version.split("-")[0] == stonewall.__version__


def test_the_installed_package_holds_no_lab_and_checks_the_example(
        root: ThrowawayRoot, installed: list[str]) -> None:
    python = [path for path in installed if "/dist-packages/stonewall/" in path]
    assert python and not [path for path in python
                           if path.split("/dist-packages/stonewall/")[1].split("/")[0]
                           in ("lab", "benchmarks", "tests")]
    no_lab = root.run(["/usr/bin/python3", "-c", "import stonewall.lab"])
    assert no_lab.returncode == 1 and "No module named 'stonewall.lab'" in no_lab.stderr
    example = "/usr/share/doc/stonewall/examples/multipath-cluster.yaml"
    check = root.run(["/usr/sbin/stonewall", "--config", example, "config", "check",
                      "--skip-secrets"])
    assert check.returncode == 0, check.stderr
    assert "prod1" in check.stdout


def test_the_agent_metadata_validates_against_fence_agents_schema(root: ThrowawayRoot) -> None:
    if not SCHEMA.exists():
        pytest.skip("fence-agents' metadata.rng is not installed")
    metadata = root.run(["/usr/sbin/fence_stonewall", "-o", "metadata"])
    assert metadata.returncode == 0 and metadata.stderr == ""
    lint = root.run(["xmllint", "--noout", "--relaxng", str(SCHEMA), "-"], stdin=metadata.stdout)
    assert lint.returncode == 0, lint.stderr


def test_the_installed_unit_verifies(root: ThrowawayRoot, installed: list[str]) -> None:
    unit = "/lib/systemd/system/stonewall-watchdog.service"
    assert unit in installed
    verify = root.run(["systemd-analyze", "verify", unit])
    assert verify.returncode == 0 and verify.stderr == "" and verify.stdout == "", verify.stderr
    assert "ExecStart=/usr/sbin/stonewall watchdog run" in root.run(["cat", unit]).stdout


def test_install_enables_and_starts_nothing(root: ThrowawayRoot) -> None:
    enabled = root.run(["systemctl", "--root=/", "is-enabled", "stonewall-watchdog.service"])
    assert enabled.stdout.strip() == "disabled"
    for path in ("/etc/systemd/system/multi-user.target.wants/stonewall-watchdog.service",
                 "/run/stonewall/holder.sock"):
        assert root.run(["test", "-e", path]).returncode == 1, path


def test_tmpfiles_made_the_directories_with_the_modes_the_code_expects(
        root: ThrowawayRoot) -> None:
    for path, mode in RUN_TIME_DIRECTORIES.items():
        assert root.run(["stat", "-c", "%a %U %F", path]).stdout.split() == [mode, "root",
                                                                                "directory"], path


def test_the_man_pages_are_found_and_render_without_warnings(root: ThrowawayRoot) -> None:
    for page in ("stonewall", "fence_stonewall", "stonewall-drbd", "stonewall-drbd-fence-peer",
                 "cluster.yaml"):
        found = root.run(["man", "-w", page])
        assert found.returncode == 0 and found.stdout.startswith("/usr/share/man/"), page
        shown = root.run(["man", "--warnings", "-E", "UTF-8", page], timeout=60)
        assert shown.returncode == 0 and shown.stderr == "", (page, shown.stderr)
    assert "NAME" in root.run(["man", "-P", "cat", "5", "cluster.yaml"]).stdout


def test_the_agent_prints_the_installed_man_page(root: ThrowawayRoot) -> None:
    printed = root.run(["/usr/sbin/fence_stonewall", "-o", "manpage"]).stdout
    shipped = root.run(["zcat", "/usr/share/man/man8/fence_stonewall.8.gz"]).stdout
    assert printed == shipped and printed.startswith('.TH "FENCE_STONEWALL" "8"')


def test_bash_completion_completes_the_subcommands(root: ThrowawayRoot,
                                                  installed: list[str]) -> None:
    script = ("source /usr/share/bash-completion/completions/stonewall; "
              "COMP_WORDS=(stonewall con); COMP_CWORD=1; _shtab_stonewall; "
              "printf '%s\\n' \"${COMPREPLY[@]}\"")
    completed = root.run(["bash", "-c", script])
    assert completed.stdout.split() == ["config"], completed.stderr
    assert "/usr/share/zsh/vendor-completions/_stonewall" in installed


def test_make_install_gives_the_package_s_layout(installed: list[str], tmp_path: Path) -> None:
    destdir = tmp_path / "root"
    made = subprocess.run(["make", "-C", str(ROOT), "install", f"DESTDIR={destdir}",
                           "PYTHON=python3"], capture_output=True, text=True, timeout=300,
                          env={"PATH": SYSTEM_PATH, "HOME": "/root"}, check=False)
    assert made.returncode == 0, made.stderr[-3000:]
    ours = {"/" + str(path.relative_to(destdir)) for path in destdir.rglob("*")
            if not path.is_dir() and "__pycache__" not in path.parts}
    # Debian's tools add the copyright and changelog and compress man pages and long docs.
    debian_only = {"/usr/share/doc/stonewall/copyright", "/usr/share/doc/stonewall/changelog.gz"}
    packaged = {path.removesuffix(".gz") for path in installed if path not in debian_only}
    assert ours == packaged
