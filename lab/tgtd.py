"""A private tgtd (Debian `tgt`) for tests, benchmarks and the demo: file-backed LUNs on
several loopback portals (several portals = several paths), its own control port, stopped by
PID. Faults: remove a portal or drop connections (a lost path), SIGSTOP (a hung array)."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from stonewall.lab.ports import free_port

TGTD_SOCKET_DIR = Path("/var/run/tgtd")


class TgtdError(RuntimeError):
    """tgtd or tgtadm failed, or is not installed."""


@dataclass
class TargetSpec:
    tid: int
    iqn: str
    luns: dict[int, Path] = field(default_factory=dict)


class Tgtd:
    """One tgtd process with its own control port and portals on `host`."""

    def __init__(self, workdir: Path, portal_count: int = 2, host: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        for binary in ("tgtd", "tgtadm"):
            if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
                raise TgtdError(f"{binary} not found: install the Debian package tgt")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.netns = netns  # run inside this network namespace (`ip netns`), host is its address
        self.portal_count = portal_count
        self.portals: list[str] = []
        self.targets: dict[int, TargetSpec] = {}
        self.control_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    # -- life cycle ----------------------------------------------------------------------
    def start(self, ready_timeout: float = 10.0) -> "Tgtd":
        self.control_port = self._free_control_port()
        first = self._new_portal()
        command = [self._bin("tgtd"), "-f", "-C", str(self.control_port), "--iscsi",
                   f"portal={first}"]
        if self.netns:
            # `ip netns exec` execs tgtd, so the PID stays tgtd's; tgtadm still reaches it
            # through its unix socket, a file outside any network namespace.
            command = ["ip", "netns", "exec", self.netns, *command]
        log = open(self.workdir / "tgtd.log", "ab")
        self.process = subprocess.Popen(
            command,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self.portals = [first]
        deadline = time.monotonic() + ready_timeout
        while self._tgtadm("--op", "show", "--mode", "portal", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TgtdError(f"tgtd did not start; see {self.workdir / 'tgtd.log'}")
            time.sleep(0.05)
        for _ in range(self.portal_count - 1):
            self.add_portal()
        return self

    def stop(self) -> None:
        """Stop tgtd by its control port, then by PID (it ignores SIGTERM, measured)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # a frozen tgtd answers nothing
            for tid in list(self.targets):
                self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(tid),
                             "--force", check=False, timeout=5)
            self._tgtadm("--op", "delete", "--mode", "system", check=False, timeout=5)
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for leftover in (f"socket.{self.control_port}", f"socket.{self.control_port}.lock"):
            (TGTD_SOCKET_DIR / leftover).unlink(missing_ok=True)
        self.targets.clear()

    def __enter__(self) -> "Tgtd":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None, "tgtd is not running"
        return self.process.pid

    # -- configuration -------------------------------------------------------------------
    def add_portal(self, portal: str | None = None) -> str:
        portal = portal or self._new_portal()
        self._tgtadm("--op", "new", "--mode", "portal", "--param", f"portal={portal}")
        if portal not in self.portals:
            self.portals.append(portal)
        return portal

    def remove_portal(self, portal: str) -> None:
        """Stop listening on `portal` (new logins through it fail)."""
        self._tgtadm("--op", "delete", "--mode", "portal", "--param", f"portal={portal}")

    def add_target(self, iqn: str, tid: int | None = None) -> int:
        tid = tid if tid is not None else max(self.targets, default=0) + 1
        self._tgtadm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
        self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")
        self.targets[tid] = TargetSpec(tid, iqn)
        return tid

    def require_chap(self, tid: int, user: str, secret: str) -> None:
        """From now on target `tid` admits only initiators that log in with CHAP as
        `user` with `secret`."""
        for args in (("--op", "new", "--mode", "account", "--user", user, "--password", secret),
                     ("--op", "bind", "--mode", "account", "--tid", str(tid), "--user", user)):
            result = self._tgtadm(*args, check=False)
            if result.returncode != 0:  # name the step, not the command: it carries the secret
                raise TgtdError(f"tgtadm {args[1]} account {user!r}: {result.stderr.strip()}")

    def add_lun(self, tid: int, lun: int, size_mb: int = 8) -> Path:
        """A file-backed LUN (sparse file) on target `tid`."""
        backing = self.workdir / f"t{tid}-lun{lun}.img"
        with open(backing, "wb") as handle:
            handle.truncate(size_mb * 1024 * 1024)
        self._tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun",
                     str(lun), "-b", str(backing))
        self.targets[tid].luns[lun] = backing
        return backing

    # -- faults --------------------------------------------------------------------------
    def drop_connections(self, tid: int, initiator: str | None = None) -> int:
        """Close the sessions of target `tid` (of one initiator, or all); returns how many."""
        dropped = 0
        for sid, cid, name in self.connections(tid):
            if initiator is None or name == initiator:
                self._tgtadm("--op", "delete", "--mode", "conn", "--tid", str(tid), "--sid",
                             str(sid), "--cid", str(cid), check=False)
                dropped += 1
        return dropped

    def connections(self, tid: int) -> list[tuple[int, int, str]]:
        """(session id, connection id, initiator name) of target `tid`'s I_T nexuses."""
        text = self._tgtadm("--op", "show", "--mode", "target").stdout
        found, sid, name, in_target = [], None, None, False
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("Target "):
                in_target = line.split()[1].rstrip(":") == str(tid)
            elif in_target and line.startswith("I_T nexus:"):
                sid = int(line.split(":")[1])
            elif in_target and line.startswith("Initiator:"):
                name = line.split(":", 1)[1].strip().split(" ")[0]
            elif in_target and line.startswith("Connection:") and sid is not None:
                found.append((sid, int(line.split(":")[1]), name or ""))
        return found

    def freeze(self) -> None:
        """SIGSTOP: the array hangs; I/O neither completes nor fails."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    # -- plumbing ------------------------------------------------------------------------
    def _new_portal(self) -> str:
        if self.netns:
            # free_port() probes this process's namespace; the lab's own namespace has
            # nothing else listening, so the iSCSI port and the ones after it are free.
            return f"{self.host}:{3260 + len(self.portals)}"
        return f"{self.host}:{free_port(self.host)}"

    @staticmethod
    def _bin(name: str) -> str:
        return shutil.which(name) or f"/usr/sbin/{name}"

    @staticmethod
    def _free_control_port() -> int:
        # tgtd's -C takes 0..32767 (measured: 32768 is "out of range"); the control channel
        # is the unix socket /var/run/tgtd/socket.N, so a free N is one without that file.
        while True:
            port = random.randint(1024, 32767)
            if not (TGTD_SOCKET_DIR / f"socket.{port}").exists():
                return port

    def _tgtadm(self, *args: str, check: bool = True,
                timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        command = [self._bin("tgtadm"), "-C", str(self.control_port), "--lld", "iscsi", *args]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TgtdError(f"{' '.join(command)}: no answer in {timeout}s") from exc
        if check and result.returncode != 0:
            raise TgtdError(f"{' '.join(command)}: {result.stderr.strip() or result.stdout}")
        return result
