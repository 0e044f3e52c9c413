"""This machine's own root as a throwaway copy: an overlay over `/` in a private mount
namespace, entered with chroot.

dpkg, its database, Python and systemd's tools are the machine's own, so installing a
package there is installing it on this machine; but every file written lands in the upper
layer. Nothing else on the machine (another test run, a Pacemaker that looks in /usr/sbin)
sees the package, a failed run leaves nothing installed, and after a purge the upper layer
shows exactly what was left behind. The namespace, and with it every mount, ends with the
one process that holds it.
"""
from __future__ import annotations

import os
import signal
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_READY = "ready"
_HOLD_SECONDS = 1800  # the holder outlives no test run by more than this


class ThrowawayRoot:
    """An overlay of `/` under `base`; `run()` executes inside it."""

    def __init__(self, base: Path) -> None:
        self.upper, self.work, self.merged = base / "upper", base / "work", base / "merged"
        self._holder: subprocess.Popen[str] | None = None

    def start(self) -> None:
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir(parents=True)
        merged = str(self.merged)
        script = (f"mount -t overlay overlay -o lowerdir=/,upperdir={self.upper},"
                  f"workdir={self.work} {merged} "
                  f"&& mount -t proc proc {merged}/proc "
                  f"&& mount --bind /dev {merged}/dev "
                  f"&& echo {_READY} && exec sleep {_HOLD_SECONDS}")
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline().strip()  # bounded: the script ends or says ready
        if line != _READY:
            self.stop()
            raise RuntimeError(f"cannot make the throwaway root: {self._holder.stderr.read()}")

    def in_namespace(self, argv: Sequence[str]) -> list[str]:
        """`argv` as a command run in the root's mount namespace, outside the chroot."""
        assert self._holder is not None
        return ["nsenter", "-t", str(self._holder.pid), "-m", *argv]

    def run(self, argv: Sequence[str], timeout: float = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`argv` inside the root, with the system's PATH and a clean environment."""
        assert self._holder is not None
        env = {"PATH": SYSTEM_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root",
               "DEBIAN_FRONTEND": "noninteractive"}
        command = self.in_namespace(["chroot", str(self.merged), *argv])
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env, input=stdin, check=False)

    def copy_in(self, source: Path, inside: str) -> None:
        """Put a host file at `inside` (written to the upper layer)."""
        target = self.upper / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())

    def changes(self) -> dict[str, str]:
        """What the root changed against the machine: path -> added, changed or deleted.
        Directories that only carry changes further down are not listed."""
        found = {}
        for path in self.upper.rglob("*"):
            inside = "/" + str(path.relative_to(self.upper))
            status = path.lstat()
            if stat.S_ISCHR(status.st_mode) and status.st_rdev == 0:
                found[inside] = "deleted"  # an overlay whiteout
            elif not os.path.lexists(inside):
                found[inside] = "added"
            elif not stat.S_ISDIR(status.st_mode):
                found[inside] = "changed"
        return found

    def stop(self) -> None:
        """End the namespace (its mounts go with it)."""
        if self._holder is not None and self._holder.poll() is None:
            self._holder.send_signal(signal.SIGKILL)
            self._holder.wait(timeout=30)
        self._holder = None
