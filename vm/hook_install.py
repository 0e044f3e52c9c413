"""Install the storage guard as a libvirt qemu hook, without breaking a hook already there.

libvirt >= 6.5.0 runs every executable in `hooks/qemu.d/` after `hooks/qemu`, and aborts the
operation if any fails (reference vm.md 1.4): there the guard is one more file and an existing
`qemu` script keeps working untouched. Older libvirt runs only `hooks/qemu`; an existing one is
moved aside and a wrapper runs the guard first, then the original hook with the same arguments
and XML, passing on the original's exit status and stdout (a dispatcher that loses the exit
status silently disables the veto: VFIO-Tools PR#6).

Installing again is safe: an identical file is left alone, an older one of ours is replaced,
a foreign file is never overwritten.
"""
from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Mapping, Sequence

QEMU_D_MIN_VERSION = 6_005_000  # libvirt version number of 6.5.0 (major*1e6 + minor*1e3)
GUARD_NAME = "50-stonewall-guard"
WRAPPED_SUFFIX = ".before-stonewall"
MARKER = "# stonewall-libvirt-guard"
_WRAPS = "# wraps: "


class HookInstallError(Exception):
    """The hook cannot be installed without overwriting something that is not ours."""


class Layout(Enum):
    QEMU_D = "qemu.d"
    SINGLE_SCRIPT = "qemu"


class InstallAction(Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    WRAPPED = "wrapped the existing hook"


@dataclass(frozen=True)
class InstallResult:
    path: Path
    layout: Layout
    action: InstallAction
    wrapped: Path | None = None  # the original qemu hook, now run by our wrapper

    @property
    def restart_needed(self) -> bool:
        """libvirt looks for hook scripts when the daemon starts (reference vm.md 1.1)."""
        return self.action in (InstallAction.CREATED, InstallAction.WRAPPED)


def layout_for(libvirt_version: int) -> Layout:
    """qemu.d/ where libvirt runs it, the single `qemu` script before 6.5.0."""
    return Layout.QEMU_D if libvirt_version >= QEMU_D_MIN_VERSION else Layout.SINGLE_SCRIPT


def guard_script(command: Sequence[str], environment: Mapping[str, str]) -> str:
    """The hook script: exports `environment` and execs `command` with libvirt's arguments."""
    return "\n".join([
        "#!/bin/sh",
        MARKER,
        "# Refuses to start a guest on a node that does not own its LUNs.",
        "# Written by `stonewall vm hook install`: run that again instead of editing this file.",
        *_exports(environment),
        f"exec {_quoted(command)} -- \"$@\"",
        "",
    ])


def wrapper_script(command: Sequence[str], environment: Mapping[str, str], original: Path) -> str:
    """The single `qemu` script for libvirt < 6.5: the guard, then the original hook."""
    return "\n".join([
        "#!/bin/sh",
        MARKER,
        f"{_WRAPS}{original}",
        "# libvirt < 6.5 runs only hooks/qemu: the guard runs first and may refuse; then the",
        "# hook that was installed before stonewall runs with the same arguments and XML, and",
        "# its exit status (and stdout, libvirt's XML filter) are this script's.",
        "# Written by `stonewall vm hook install`: run that again instead of editing this file.",
        *_exports(environment),
        'xml=$(cat)',
        f"printf '%s\\n' \"$xml\" | {_quoted(command)} -- \"$@\" >/dev/null",
        "status=$?",
        '[ "$status" -eq 0 ] || exit "$status"',
        f"printf '%s\\n' \"$xml\" | {shlex.quote(str(original))} \"$@\"",
        "",
    ])


def install_hook(hooks_dir: Path, command: Sequence[str], *, libvirt_version: int,
                 environment: Mapping[str, str] | None = None) -> InstallResult:
    """Install the guard under `hooks_dir` (normally /etc/libvirt/hooks) for this libvirt."""
    env = dict(environment or {})
    hooks_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    if layout_for(libvirt_version) is Layout.QEMU_D:
        target = hooks_dir / "qemu.d" / GUARD_NAME
        target.parent.mkdir(mode=0o755, exist_ok=True)
        return InstallResult(target, Layout.QEMU_D, _write_ours(target, guard_script(command, env)))
    target = hooks_dir / "qemu"
    current = _read(target)
    if current is None:
        return InstallResult(target, Layout.SINGLE_SCRIPT, _write_ours(target, guard_script(command, env)))
    if MARKER in current:
        original = _wrapped_original(current)
        content = (guard_script(command, env) if original is None
                   else wrapper_script(command, env, original))
        return InstallResult(target, Layout.SINGLE_SCRIPT, _write_ours(target, content), original)
    original = target.with_name(target.name + WRAPPED_SUFFIX)
    if original.exists():
        raise HookInstallError(f"{target} is not stonewall's and {original} exists already: move "
                               "one of them away, then install again")
    os.rename(target, original)
    _write_atomically(target, wrapper_script(command, env, original))
    return InstallResult(target, Layout.SINGLE_SCRIPT, InstallAction.WRAPPED, original)


def _write_ours(target: Path, content: str) -> InstallAction:
    current = _read(target)
    if current is not None and MARKER not in current:
        raise HookInstallError(f"{target} exists and was not written by stonewall; not touching it")
    if current == content and os.access(target, os.X_OK):
        return InstallAction.UNCHANGED
    _write_atomically(target, content)
    return InstallAction.CREATED if current is None else InstallAction.UPDATED


def _write_atomically(target: Path, content: str) -> None:
    # libvirt may run the hook at any moment: it must see the old file or the new one, whole.
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(content)
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None


def _wrapped_original(content: str) -> Path | None:
    for line in content.splitlines():
        if line.startswith(_WRAPS):
            return Path(line.removeprefix(_WRAPS))
    return None


def _exports(environment: Mapping[str, str]) -> list[str]:
    return [f"{name}={shlex.quote(value)}; export {name}" for name, value in sorted(environment.items())]


def _quoted(command: Sequence[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
