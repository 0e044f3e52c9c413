"""The first process of a lab cluster node, run inside the node's own namespaces:

    unshare -m -p -f --mount-proc --propagation private [-n] \\
        python -m stonewall.lab.pacemaker_launcher SPEC.json [--exec COMMAND...]

It gives the node private copies of what Pacemaker and corosync assume they own alone
(reference/pacemaker.md B.4/B.5): tmpfs on /dev/shm (libqb IPC) and /run (corosync's lock and
pid files, /run/crm), the node's own /var/lib/pacemaker (the CIB) and /var/lib/corosync,
and an overlay on /usr/sbin that adds fence_stonewall, the only place pacemaker-fenced runs
agents from. Then it starts the node's services (e.g. the session holder), corosync and
pacemakerd, records their PIDs in <workdir>/state.json, and reaps children as PID 1 of the
PID namespace. SIGTERM stops pacemakerd, corosync and the services by PID, in that order; if
this process dies anyway, the kernel kills everything left in the namespace.

With --exec it only sets up the mounts and runs COMMAND (no cluster): stonith_admin
--metadata/--validate against the agent without touching the host's /usr/sbin.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

CLUSTER_USER, CLUSTER_GROUP = "hacluster", "haclient"
COROSYNC_READY_SECONDS = 15.0
SERVICE_READY_SECONDS = 15.0
STOP_SECONDS = 30.0  # pacemakerd stops resources first (measured 1.2 s; a stuck stop: KILL)
_TOOL_SECONDS = 10.0


@dataclass
class ServiceSpec:
    """A node process started before the cluster stack (e.g. stonewall's session holder)."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str | None = None  # wait for this file (a socket) before going on


@dataclass
class NodeSpec:
    """Everything the launcher needs, written as JSON by stonewall.lab.pacemaker."""

    name: str
    workdir: str  # node_dirs() layout; logs and state.json land here
    corosync_conf: str | None = None  # None: mounts only (--exec)
    binds: list[list[str]] = field(default_factory=list)  # [source, target under /run]
    services: list[ServiceSpec] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "NodeSpec":
        data = json.loads(path.read_text())
        data["services"] = [ServiceSpec(**service) for service in data.get("services", [])]
        return cls(**data)


def node_dirs(workdir: Path) -> dict[str, Path]:
    """The node's directories, by role."""
    return {
        "varlib_pacemaker": workdir / "varlib-pacemaker",
        "varlib_corosync": workdir / "varlib-corosync",
        "log": workdir / "log",
        "sbin_upper": workdir / "sbin-up",
        "sbin_work": workdir / "sbin-work",
    }


class LaunchError(RuntimeError):
    """A mount, a tool or a daemon failed while the node was being brought up."""


def _run(*argv: str) -> None:
    binary = shutil.which(argv[0])
    if binary is None:
        raise LaunchError(f"{argv[0]} not found")
    result = subprocess.run([binary, *argv[1:]], capture_output=True, text=True,
                            timeout=_TOOL_SECONDS)
    if result.returncode != 0:
        raise LaunchError(f"{' '.join(argv)}: {result.stderr.strip()}")


def mount_private_views(spec: NodeSpec) -> None:
    """The node's private /dev/shm, /run, /usr/sbin overlay and /var/lib binds."""
    dirs = node_dirs(Path(spec.workdir))
    _run("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm")
    _run("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    for directory in ("/run/crm", "/run/lock"):
        os.makedirs(directory, exist_ok=True)
    shutil.chown("/run/crm", CLUSTER_USER, CLUSTER_GROUP)
    os.chmod("/run/crm", 0o750)
    _run("mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir=/usr/sbin,upperdir={dirs['sbin_upper']},workdir={dirs['sbin_work']}",
         "/usr/sbin")
    for source, target in ((dirs["varlib_pacemaker"], "/var/lib/pacemaker"),
                           (dirs["varlib_corosync"], "/var/lib/corosync"),
                           (dirs["log"], "/var/log/pacemaker")):
        _run("mount", "--bind", str(source), target)
    for source, target in spec.binds:
        if not target.startswith("/run/"):
            raise LaunchError(f"bind target {target} is not under the node's private /run")
        os.makedirs(target, exist_ok=True)
        _run("mount", "--bind", source, target)


class _Stop(Exception):
    """SIGTERM arrived."""


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop()


class Supervisor:
    """PID 1 of the node: starts daemons, reaps every child, stops daemons by PID."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.workdir = Path(spec.workdir)
        self.pids: dict[str, int] = {}
        self.exited: dict[str, int] = {}
        self.ready = False
        self.error: str | None = None

    def write_state(self) -> None:
        state = {"ready": self.ready, "pids": self.pids, "exited": self.exited,
                 "error": self.error}
        temporary = self.workdir / "state.json.tmp"
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.workdir / "state.json")

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        binary = shutil.which(argv[0])
        if binary is None:
            raise LaunchError(f"{name}: {argv[0]} not found")
        with open(self.workdir / f"{name}.out", "ab") as output:
            process = subprocess.Popen([binary, *argv[1:]], stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=subprocess.STDOUT,
                                       env={**os.environ, **(env or {})})
        self.pids[name] = process.pid
        self.write_state()
        return process.pid

    def reap(self, block: bool) -> bool:
        """Collect exited children (any process re-parented to PID 1 too); False when this
        process has no children left."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            for name, known in self.pids.items():
                if known == pid and name not in self.exited:
                    self.exited[name] = os.waitstatus_to_exitcode(status)
                    self.write_state()
            if block:
                return True

    def running(self, name: str) -> bool:
        return name in self.pids and name not in self.exited

    def wait_until(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while not condition():
            self.reap(block=False)
            if time.monotonic() > end:
                raise LaunchError(f"{what}: not within {seconds:g} s")
            time.sleep(0.05)

    def start(self) -> None:
        _run("ip", "link", "set", "lo", "up")  # a fresh `unshare --net` has it down
        for service in self.spec.services:
            self.spawn(service.name, service.argv, service.env)
            if service.ready_path:
                ready_path = service.ready_path
                self.wait_until(lambda: os.path.exists(ready_path) or not self.running(
                    service.name), SERVICE_READY_SECONDS, f"service {service.name}")
                if not self.running(service.name):
                    raise LaunchError(f"service {service.name} exited; see "
                                      f"{self.workdir / (service.name + '.out')}")
        assert self.spec.corosync_conf is not None
        self.spawn("corosync", ["corosync", "-f", "-c", self.spec.corosync_conf])
        self.wait_until(self._corosync_ready, COROSYNC_READY_SECONDS, "corosync")
        self.spawn("pacemakerd", ["pacemakerd"], {
            "PCMK_logfile": "/var/log/pacemaker/pacemaker.log", "PCMK_logfacility": "none"})
        self.ready = True
        self.write_state()

    def _corosync_ready(self) -> bool:
        if not self.running("corosync"):
            raise LaunchError(f"corosync exited; see {self.workdir / 'corosync.out'}")
        return subprocess.run(["corosync-cfgtool", "-s"], capture_output=True,
                              timeout=_TOOL_SECONDS).returncode == 0

    def stop(self) -> None:
        """pacemakerd first (it stops resources and its children), then corosync, then the
        services; each by PID, SIGKILL when it outlives STOP_SECONDS."""
        order = ["pacemakerd", "corosync"] + [s.name for s in reversed(self.spec.services)]
        for name in order:
            if not self.running(name):
                continue
            try:
                os.kill(self.pids[name], signal.SIGTERM)
                self.wait_until(lambda: not self.running(name), STOP_SECONDS, f"stop {name}")
            except LaunchError:
                os.kill(self.pids[name], signal.SIGKILL)
                self.wait_until(lambda: not self.running(name), STOP_SECONDS, f"kill {name}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, _raise_stop)
        try:
            try:
                mount_private_views(self.spec)
                self.start()
            except LaunchError as err:
                self.error = str(err)
                self.write_state()
                self.stop()
                return 1
            while True:
                if not self.reap(block=True):
                    signal.pause()  # a fenced node's stack is gone; keep its mounts for a look
        except _Stop:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self.stop()
            return 0


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m stonewall.lab.pacemaker_launcher SPEC.json [--exec COMMAND...]",
              file=sys.stderr)
        return 2
    spec = NodeSpec.load(Path(argv[0]))
    if argv[1:2] == ["--exec"]:
        mount_private_views(spec)
        command = argv[2:]
        os.execvp(command[0], command)
    return Supervisor(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
