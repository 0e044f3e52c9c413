"""A private libvirtd (QEMU driver) for tests, isolated in its own mount namespace.

libvirtd's paths are compiled in (/etc/libvirt, /run/libvirt, /var/lib/libvirt, and the hook
directory /etc/libvirt/hooks), so it runs under `unshare --mount` with overlays on /etc, /var
and /run whose upper layers live in the scratch directory: nothing on the host changes. Inside:
- /etc/libvirt/hooks is the scratch `hooks/` directory, so tests install hooks with the real
  installer before the daemon starts (libvirt only finds hooks at start-up);
- /run/libvirt is the scratch `run/` directory, so clients outside the namespace connect
  through `qemu+unix:///system?socket=<scratch>/run/libvirt-sock`;
- qemu.conf runs QEMU as root without a security driver or virtlogd (Debian's default user
  `libvirt-qemu` is added to the overlay's /etc/passwd only).
The daemon and every QEMU it started are stopped by PID.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

LIBVIRTD = "/usr/sbin/libvirtd"

_NAMESPACE_SETUP = r"""
set -e
scratch=$1; host_uuid=$2; shift 2
for dir in etc var run; do
  mkdir -p "$scratch/overlay/$dir-upper" "$scratch/overlay/$dir-work"
  mount -t overlay overlay \
    -o "lowerdir=/$dir,upperdir=$scratch/overlay/$dir-upper,workdir=$scratch/overlay/$dir-work" "/$dir"
done
mkdir -p /etc/libvirt/hooks /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
mount --bind "$scratch/hooks" /etc/libvirt/hooks
mount --bind "$scratch/run" /run/libvirt
# Incoming migrations listen above Linux's ephemeral ports (32768-60999): libvirt's default
# range (49152-49215) lies inside it, and on this shared machine (11,000 TCP sockets, 69 of them
# on 49152-49299, measured) an outgoing connection's local port made QEMU's bind fail.
printf '%s\n' 'user = "root"' 'group = "root"' 'security_driver = "none"' \
  'dynamic_ownership = 0' 'remember_owner = 0' 'namespaces = [ ]' 'stdio_handler = "file"' \
  'migration_port_min = 61000' 'migration_port_max = 61063' \
  > /etc/libvirt/qemu.conf
# libvirt refuses to migrate to a daemon with its own host UUID: each gets one of its own.
if [ -n "$host_uuid" ]; then printf 'host_uuid = "%s"\n' "$host_uuid" > /etc/libvirt/libvirtd.conf; fi
grep -q '^libvirt-qemu:' /etc/passwd || echo 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >> /etc/passwd
grep -q '^libvirt-qemu:' /etc/group || echo 'libvirt-qemu:x:64055:' >> /etc/group
exec "$@"
"""


def libvirtd_unavailable() -> str | None:
    """Why a private libvirtd cannot run here, or None."""
    if os.geteuid() != 0:
        return "a private libvirtd needs root (mount namespace and overlays)"
    for binary in (LIBVIRTD, shutil.which("unshare"), shutil.which("qemu-system-x86_64")):
        if binary is None or not os.path.exists(binary):
            return "libvirt-daemon-driver-qemu, util-linux (unshare) and qemu-system-x86 are needed"
    return None


class PrivateLibvirtd:
    def __init__(self, scratch: Path, host_uuid: str = "") -> None:
        """`host_uuid`: this daemon's host UUID (libvirt rejects one made of a single
        repeated digit); empty keeps the host's."""
        self.scratch = scratch
        self.host_uuid = host_uuid
        self.hooks_dir = scratch / "hooks"
        self.run_dir = scratch / "run"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.run_dir}/libvirt-sock"

    @property
    def pid(self) -> int:
        """The daemon's PID (unshare and the setup shell exec into it)."""
        assert self._process is not None, "libvirtd is not running"
        return self._process.pid

    @property
    def log(self) -> Path:
        return self.scratch / "libvirtd.log"

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start the daemon; hooks must already be in `hooks_dir`."""
        for directory in (self.hooks_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # A daemon that was killed leaves its socket: waiting for it would return at once.
        (self.run_dir / "libvirt-sock").unlink(missing_ok=True)
        with open(self.log, "wb") as log:
            # unshare execs the setup shell, which execs libvirtd: the PID is libvirtd's.
            self._process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", _NAMESPACE_SETUP,
                 "sh", str(self.scratch), self.host_uuid, LIBVIRTD]
                + (["-f", "/etc/libvirt/libvirtd.conf"] if self.host_uuid else []),
                stdout=log, stderr=subprocess.STDOUT)
        ends = time.monotonic() + ready_timeout
        while not (self.run_dir / "libvirt-sock").exists():
            if self._process.poll() is not None or time.monotonic() > ends:
                self.stop()
                raise RuntimeError(f"libvirtd did not come up; see {self.log}:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop libvirtd, then kill every QEMU it left, each by its PID file."""
        if self._process is None:
            return
        qemu_pids = [int(p.read_text()) for p in (self.run_dir / "qemu").glob("*.pid") if p.read_text().strip()]
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        for pid in qemu_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._process = None
