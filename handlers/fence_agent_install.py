"""Make `fence_stonewall` visible to Pacemaker's fencer.

pacemaker-fenced runs RHCS-style agents only as `/usr/sbin/fence_<name>` (the directory is
compiled into libstonithd, reference/pacemaker.md B.1), while pip puts the console script in
a venv's bin/ or /usr/local/bin. So the install step links `/usr/sbin/fence_stonewall` to the
console script. It is idempotent and never replaces a file that is not its own link.
"""
from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from stonewall.handlers.fence_agent_metadata import AGENT_NAME

DEFAULT_SBIN_DIR = Path("/usr/sbin")  # the only place pacemaker-fenced looks


class AgentInstallError(Exception):
    """The link cannot be made (something else is in the way, or no permission)."""


class AgentNotFound(AgentInstallError):
    """No `fence_stonewall` executable to link to."""


class InstallAction(str, Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class InstallResult:
    link: Path
    source: Path
    action: InstallAction


def find_agent_executable(search_dirs: Sequence[Path] | None = None) -> Path:
    """The `fence_stonewall` console script: beside the running Python (its venv's bin/),
    else on $PATH; or the first hit in `search_dirs` when given. AgentNotFound otherwise."""
    if search_dirs is None:
        beside = Path(sys.executable).parent / AGENT_NAME
        if os.access(beside, os.X_OK):
            return beside
        found = shutil.which(AGENT_NAME)
        if found and Path(found).parent != DEFAULT_SBIN_DIR:
            return Path(found)
        where = f"{Path(sys.executable).parent} or $PATH"
    else:
        for directory in search_dirs:
            candidate = Path(directory) / AGENT_NAME
            if os.access(candidate, os.X_OK):
                return candidate
        where = ", ".join(str(directory) for directory in search_dirs)
    raise AgentNotFound(f"no executable {AGENT_NAME} in {where}: install stonewall (its "
                        f"console script {AGENT_NAME}) first, or name it with --source")


def _is_our_link(path: Path) -> bool:
    return path.is_symlink() and Path(os.readlink(path)).name == AGENT_NAME


def install_agent(sbin_dir: Path = DEFAULT_SBIN_DIR, source: Path | None = None) -> InstallResult:
    """Link `<sbin_dir>/fence_stonewall` to `source` (default: find_agent_executable())."""
    source = Path(source) if source is not None else find_agent_executable()
    if not source.is_absolute():
        raise AgentInstallError(f"{source} is not an absolute path")
    if not os.access(source, os.X_OK) or source.is_dir():
        raise AgentNotFound(f"{source} is not an executable file")
    link = Path(sbin_dir) / AGENT_NAME
    if link.is_symlink() and Path(os.readlink(link)) == source:
        return InstallResult(link, source, InstallAction.UNCHANGED)
    existed = os.path.lexists(link)
    if existed and not _is_our_link(link):
        raise AgentInstallError(f"{link} exists and is not a link to a {AGENT_NAME} "
                                "executable; not replacing it")
    # A new link under a temporary name, then rename(2) over the old one: the fencer sees the
    # old agent or the new one, never no agent.
    temporary = link.with_name(f".{AGENT_NAME}.{os.getpid()}")
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(source, temporary)
        os.replace(temporary, link)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise AgentInstallError(f"cannot link {link} -> {source}: {err.strerror or err}") from err
    return InstallResult(link, source, InstallAction.UPDATED if existed else InstallAction.CREATED)
