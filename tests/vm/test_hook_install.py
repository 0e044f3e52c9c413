"""Installing the hook: qemu.d/ beside an existing `qemu` script on libvirt >= 6.5, a wrapper
around it on older libvirt, idempotent either way. The wrapper is run as a real process to show
it passes the guard's refusal and the original hook's status, stdout and stdin through."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from stonewall.vm.hook_install import (
    GUARD_NAME, HookInstallError, InstallAction, Layout, install_hook, layout_for)

NEW_LIBVIRT = 9_000_000
OLD_LIBVIRT = 6_004_000  # 6.4.0: no qemu.d


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def guard(tmp_path: Path) -> Path:
    """A guard command standing in for `stonewall vm hook run`: refuses guests named 'bad',
    records what it got."""
    return script(tmp_path / "guard", f"""\
[ "$1" = "--" ] || {{ echo "guard: expected -- first" >&2; exit 9; }}
shift
cat > {tmp_path}/guard.stdin
echo "$@" > {tmp_path}/guard.args
echo "guard output must not reach libvirt"
[ "$1" = bad ] && {{ echo "stonewall: refusing to start bad" >&2; exit 1; }}
exit 0
""")


def test_libvirt_6_5_and_later_use_qemu_d() -> None:
    assert layout_for(6_005_000) is Layout.QEMU_D and layout_for(6_004_099) is Layout.SINGLE_SCRIPT


def test_qemu_d_install_is_idempotent_and_leaves_an_existing_qemu_hook_alone(tmp_path: Path, guard: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    existing = script(hooks / "qemu", "exit 0\n")
    before = existing.read_text()
    first = install_hook(hooks, [str(guard)], libvirt_version=NEW_LIBVIRT, environment={"STONEWALL_NODE": "kvm-a"})
    assert first.path == hooks / "qemu.d" / GUARD_NAME and first.action is InstallAction.CREATED
    assert first.restart_needed
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o755
    assert "STONEWALL_NODE=kvm-a; export STONEWALL_NODE" in first.path.read_text()
    again = install_hook(hooks, [str(guard)], libvirt_version=NEW_LIBVIRT, environment={"STONEWALL_NODE": "kvm-a"})
    assert again.action is InstallAction.UNCHANGED and not again.restart_needed
    moved = install_hook(hooks, [str(guard), "--x"], libvirt_version=NEW_LIBVIRT)
    assert moved.action is InstallAction.UPDATED
    assert existing.read_text() == before
    assert sorted(p.name for p in hooks.rglob("*")) == sorted(["qemu", "qemu.d", GUARD_NAME])  # no temp files


def test_the_installed_guard_passes_arguments_and_exit_status(tmp_path: Path, guard: Path) -> None:
    result = install_hook(tmp_path / "hooks", [str(guard)], libvirt_version=NEW_LIBVIRT)
    done = subprocess.run([str(result.path), "bad", "prepare", "begin", "-"], input="<domain/>",
                          text=True, capture_output=True, timeout=10)
    assert done.returncode == 1 and "refusing to start bad" in done.stderr
    assert (tmp_path / "guard.args").read_text() == "bad prepare begin -\n"
    assert (tmp_path / "guard.stdin").read_text() == "<domain/>"


def test_a_foreign_file_under_our_name_is_never_overwritten(tmp_path: Path, guard: Path) -> None:
    hooks = tmp_path / "hooks"
    (hooks / "qemu.d").mkdir(parents=True)
    script(hooks / "qemu.d" / GUARD_NAME, "exit 0\n")
    with pytest.raises(HookInstallError, match="not written by stonewall"):
        install_hook(hooks, [str(guard)], libvirt_version=NEW_LIBVIRT)


def test_old_libvirt_without_a_hook_gets_the_guard_as_qemu(tmp_path: Path, guard: Path) -> None:
    result = install_hook(tmp_path / "hooks", [str(guard)], libvirt_version=OLD_LIBVIRT)
    assert result.path == tmp_path / "hooks" / "qemu" and result.action is InstallAction.CREATED
    assert install_hook(tmp_path / "hooks", [str(guard)], libvirt_version=OLD_LIBVIRT).action is InstallAction.UNCHANGED


@pytest.fixture
def wrapped(tmp_path: Path, guard: Path) -> Path:
    """Old libvirt with an operator's own qemu hook (an XML filter that also vetoes 'vetoed')."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script(hooks / "qemu", f"""\
cat > {tmp_path}/original.stdin
echo "$@" > {tmp_path}/original.args
[ "$1" = vetoed ] && {{ echo "original: no" >&2; exit 3; }}
[ "$2" = migrate ] && echo "<domain><name>filtered</name></domain>"
exit 0
""")
    result = install_hook(hooks, [str(guard)], libvirt_version=OLD_LIBVIRT)
    assert result.action is InstallAction.WRAPPED and result.restart_needed
    assert result.wrapped == hooks / "qemu.before-stonewall"
    return result.path


def run(hook: Path, *args: str, xml: str = "<domain><name>g</name></domain>") -> subprocess.CompletedProcess:
    return subprocess.run([str(hook), *args], input=xml, text=True, capture_output=True, timeout=10)


def test_the_wrapper_refuses_before_the_original_hook_runs(tmp_path: Path, wrapped: Path) -> None:
    done = run(wrapped, "bad", "prepare", "begin", "-")
    assert done.returncode == 1 and "refusing to start bad" in done.stderr
    assert not (tmp_path / "original.args").exists()


def test_the_wrapper_runs_the_original_with_the_same_arguments_and_xml(tmp_path: Path, wrapped: Path) -> None:
    done = run(wrapped, "good", "migrate", "begin", "-", xml="<domain><name>good</name></domain>")
    assert done.returncode == 0
    assert done.stdout == "<domain><name>filtered</name></domain>\n"  # only the original's filter output
    assert (tmp_path / "original.args").read_text() == "good migrate begin -\n"
    assert (tmp_path / "original.stdin").read_text() == "<domain><name>good</name></domain>\n"
    assert (tmp_path / "guard.stdin").read_text() == "<domain><name>good</name></domain>\n"


def test_the_wrapper_passes_the_original_hooks_refusal_on(wrapped: Path) -> None:
    done = run(wrapped, "vetoed", "prepare", "begin", "-")
    assert done.returncode == 3 and "original: no" in done.stderr


def test_wrapping_twice_keeps_one_wrapper_and_one_original(tmp_path: Path, guard: Path, wrapped: Path) -> None:
    original = (tmp_path / "hooks" / "qemu.before-stonewall").read_text()
    again = install_hook(tmp_path / "hooks", [str(guard)], libvirt_version=OLD_LIBVIRT)
    assert again.action is InstallAction.UNCHANGED and again.wrapped == tmp_path / "hooks" / "qemu.before-stonewall"
    assert (tmp_path / "hooks" / "qemu.before-stonewall").read_text() == original


def test_a_foreign_hook_is_not_wrapped_over_a_leftover_original(tmp_path: Path, guard: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script(hooks / "qemu", "exit 0\n")
    script(hooks / "qemu.before-stonewall", "exit 0\n")
    with pytest.raises(HookInstallError, match="exists already"):
        install_hook(hooks, [str(guard)], libvirt_version=OLD_LIBVIRT)
    assert os.access(hooks / "qemu", os.X_OK)
