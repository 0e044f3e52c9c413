"""Real corosync + Pacemaker for tests: one node, or two nodes that can be cut apart.

One node (`OneNodeCluster`): corosync on 127.0.0.1 inside private mount, network and PID
namespaces (`unshare -m -n -p`), a pre-seeded CIB so it is online in ~5 s. Its agent reaches
the node's session holder through the holder's socket file, and the holder reaches tgtd on
the host's 127.0.0.1, so the SAN stays outside the node.

Two nodes (`TwoNodeLab`): three network namespaces the lab creates and deletes.
  san    tgtd on 169.254.10.1 (portals 3260, 3261: two paths per LUN), on a bridge
  node1  169.254.10.11 on the SAN bridge, 169.254.20.1 on the cluster link
  node2  169.254.10.12 on the SAN bridge, 169.254.20.2 on the cluster link
Corosync runs over the cluster link only, so `cut_cluster_link()` splits the cluster while
both nodes still reach the SAN: the split brain that storage fencing exists for. Each node
also has private mount and PID namespaces (`ip netns exec NODE unshare -m -p`). Addresses are
link-local and exist only inside these namespaces.

Every daemon is stopped by PID through its node's launcher (stonewall.lab.pacemaker_launcher),
and dies with its PID namespace if the launcher is killed; namespaces are deleted in `stop()`,
which context managers call even when a test fails.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stonewall.clock import Deadline
from stonewall.handlers.fence_agent_install import AgentNotFound, find_agent_executable, install_agent
from stonewall.handlers.fence_agent_metadata import AGENT_NAME
from stonewall.lab.netns import Link, Namespace, lab_tag
from stonewall.lab.pacemaker_config import CibSeed, CorosyncMember, corosync_conf, write_cib
from stonewall.lab.pacemaker_launcher import (
    CLUSTER_GROUP, CLUSTER_USER, NodeSpec, ServiceSpec, node_dirs)
from stonewall.lab.tgtd import Tgtd

REQUIRED_BINARIES = ("corosync", "pacemakerd", "stonith_admin", "crm_mon", "cibadmin",
                     "corosync-cfgtool", "unshare", "nsenter", "ip", "mount")
_POLL_SECONDS = 0.2
_PACEMAKER_VARLIB_DIRS = ("cib", "pengine", "blackbox", "cores")


class PacemakerLabError(RuntimeError):
    """The lab cluster could not be started, reached or stopped."""


def missing_prerequisites() -> list[str]:
    """What keeps a lab cluster from running here (empty when it can run)."""
    missing = [binary for binary in REQUIRED_BINARIES if shutil.which(binary) is None]
    if os.geteuid() != 0:
        missing.append("root (namespaces and mounts)")
    return missing


@dataclass(frozen=True)
class CommandResult:
    """A finished command's status and output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_command(argv: Sequence[str], timeout: float, stdin: str | None = None,
                env: dict[str, str] | None = None) -> CommandResult:
    """Run `argv` (a list, never a shell) within `timeout` seconds."""
    binary = shutil.which(argv[0])
    if binary is None:
        raise PacemakerLabError(f"{argv[0]} not found")
    try:
        result = subprocess.run([binary, *argv[1:]], input=stdin, capture_output=True,
                                text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise PacemakerLabError(f"{' '.join(argv)}: no answer in {timeout:g} s") from None
    return CommandResult(result.returncode, result.stdout, result.stderr)


def stage_agent(sbin_upper: Path) -> Path:
    """Put fence_stonewall into the overlay's upper dir (it appears as /usr/sbin/fence_stonewall
    inside the node). The installed console script when there is one, linked by the real
    install step; otherwise a launcher that runs this checkout with this Python."""
    try:
        return install_agent(sbin_upper, find_agent_executable()).link
    except AgentNotFound:
        pass
    launcher = sbin_upper / AGENT_NAME  # a regular file: readable by hacluster via the overlay
    launcher.write_text(f"#!{sys.executable}\nimport sys\n"
                        "from stonewall.handlers.fence_agent import main\n"
                        "sys.exit(main())\n")
    launcher.chmod(0o755)
    return launcher


def _prepare_node_dirs(workdir: Path) -> dict[str, Path]:
    """The node's directories, owned as Debian's packages own the ones they stand in for."""
    dirs = node_dirs(workdir)
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    cluster_owned = [(dirs["log"], 0o770),
                     *((dirs["varlib_pacemaker"] / sub, 0o750) for sub in _PACEMAKER_VARLIB_DIRS)]
    for path, mode in cluster_owned:
        path.mkdir(exist_ok=True)
        shutil.chown(path, CLUSTER_USER, CLUSTER_GROUP)
        path.chmod(mode)
    stage_agent(dirs["sbin_upper"])
    return dirs


@dataclass(frozen=True)
class ResourceState:
    id: str
    agent: str
    role: str
    nodes: tuple[str, ...]
    failed: bool


@dataclass(frozen=True)
class ClusterView:
    """What `crm_mon` reports on one node."""

    online: tuple[str, ...]
    offline: tuple[str, ...]
    resources: dict[str, ResourceState]
    quorate: bool

    def started(self, resource: str) -> bool:
        state = self.resources.get(resource)
        return state is not None and state.role == "Started" and not state.failed


def parse_crm_mon_xml(text: str) -> ClusterView:
    """`crm_mon -1 --output-as=xml` as a ClusterView."""
    root = ET.fromstring(text)
    nodes = root.findall("./nodes/node")
    online = tuple(n.get("name", "") for n in nodes if n.get("online") == "true")
    offline = tuple(n.get("name", "") for n in nodes if n.get("online") != "true")
    resources = {}
    for element in root.iter("resource"):
        resources[element.get("id", "")] = ResourceState(
            element.get("id", ""), element.get("resource_agent", ""), element.get("role", ""),
            tuple(n.get("name", "") for n in element.findall("node")),
            element.get("failed") == "true")
    quorum = root.find("./summary/current_dc")
    return ClusterView(online, offline, resources,
                       quorum is not None and quorum.get("with_quorum") == "true")


class LabNode:
    """One corosync + Pacemaker node in its own namespaces, driven from the host."""

    def __init__(self, name: str, workdir: Path, corosync_text: str, cib: CibSeed, *,
                 netns: Namespace | None = None, services: Sequence[ServiceSpec] = (),
                 binds: Sequence[tuple[str, str]] = ()) -> None:
        self.name = name
        self.workdir = Path(workdir)
        self.netns = netns  # None: a private, unnamed network namespace (loopback only)
        self.corosync_text = corosync_text
        self.cib = cib
        self.services = list(services)
        self.binds = [list(pair) for pair in binds]
        self.process: subprocess.Popen[bytes] | None = None
        self.launcher_pid: int | None = None

    # -- life cycle ----------------------------------------------------------------------
    def start(self, deadline: Deadline) -> "LabNode":
        """Start the node's launcher; returns once corosync is up and pacemakerd started."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        dirs = _prepare_node_dirs(self.workdir)
        cib_path = dirs["varlib_pacemaker"] / "cib" / "cib.xml"
        write_cib(cib_path, self.cib)
        shutil.chown(cib_path, CLUSTER_USER, CLUSTER_GROUP)
        cib_path.chmod(0o600)
        conf = self.workdir / "corosync.conf"
        conf.write_text(self.corosync_text)
        spec = NodeSpec(self.name, str(self.workdir), str(conf), self.binds, self.services)
        spec_path = self.workdir / "node.json"
        spec.save(spec_path)
        (self.workdir / "state.json").unlink(missing_ok=True)
        command = self._namespaced([sys.executable, "-m", "stonewall.lab.pacemaker_launcher",
                                    str(spec_path)])
        with open(self.workdir / "launcher.out", "ab") as output:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.launcher_pid = self._wait_for_launcher(deadline)
            self.wait_for(lambda: self._state().get("ready") is True, deadline,
                          "corosync up and pacemakerd started", check_state=True)
        except BaseException:
            self.stop()
            raise
        return self

    def _namespaced(self, argv: list[str]) -> list[str]:
        unshare = ["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                   "--propagation", "private", "--kill-child"]
        if self.netns is None:
            return [*unshare[:1], "--net", *unshare[1:], *argv]
        return self.netns.exec_argv([*unshare, *argv])

    def _wait_for_launcher(self, deadline: Deadline) -> int:
        """The launcher's PID on the host: unshare's only child."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        while True:
            try:
                pids = children.read_text().split()
            except FileNotFoundError:
                pids = []
            if pids:
                return int(pids[0])
            if self.process.poll() is not None or deadline.expired():
                raise PacemakerLabError(f"{self.name}: launcher did not start; see "
                                        f"{self.workdir / 'launcher.out'}")
            deadline.clock.sleep(0.02)

    def _state(self) -> dict:
        try:
            return json.loads((self.workdir / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def stop(self, seconds: float = 45.0) -> None:
        """Stop the node: request_stop(), then finish_stop() within `seconds`."""
        self.request_stop()
        self.finish_stop(Deadline.after(seconds))

    def request_stop(self) -> None:
        """SIGTERM the launcher: it stops pacemakerd, corosync and the services by PID."""
        if self.process is not None and self.process.poll() is None and self.launcher_pid:
            os.kill(self.launcher_pid, signal.SIGTERM)

    def finish_stop(self, deadline: Deadline) -> None:
        """Wait for the launcher until `deadline`, then SIGKILL it, which kills everything
        left in its PID namespace (a node cut off with a fence pending does not stop: its
        controller waits for the fence)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            if self.launcher_pid is not None:
                os.kill(self.launcher_pid, signal.SIGKILL)
            process.kill()
            process.wait(timeout=10)

    # -- talking to the node ---------------------------------------------------------------
    def run(self, argv: Sequence[str], timeout: float = 30.0, stdin: str | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run `argv` inside the node's mount and network namespaces."""
        if self.launcher_pid is None:
            raise PacemakerLabError(f"{self.name} is not running")
        return run_command(["nsenter", "-t", str(self.launcher_pid), "-m", "-n", "--", *argv],
                           timeout, stdin, env)

    def stonith_admin(self, *arguments: str, timeout: float = 60.0) -> CommandResult:
        return self.run(["stonith_admin", *arguments], timeout=timeout)

    def fence(self, target: str, timeout: float = 30.0) -> CommandResult:
        """`stonith_admin --fence TARGET` (fenced's own timeout inside ours)."""
        return self.stonith_admin("--fence", target, "--timeout", f"{timeout:g}",
                                  timeout=timeout + 15)

    def unfence(self, target: str, timeout: float = 30.0) -> CommandResult:
        return self.stonith_admin("--unfence", target, "--timeout", f"{timeout:g}",
                                  timeout=timeout + 15)

    def view(self) -> ClusterView | None:
        """crm_mon's picture, or None while Pacemaker does not answer."""
        result = self.run(["crm_mon", "-1", "--output-as=xml"], timeout=20)
        if result.returncode != 0:
            return None
        try:
            return parse_crm_mon_xml(result.stdout)
        except ET.ParseError:
            return None

    def wait_for(self, condition: Callable[[], bool], deadline: Deadline, what: str, *,
                 check_state: bool = False) -> None:
        """Poll `condition` until it holds; PacemakerLabError at the deadline."""
        while not condition():
            if check_state:
                error = self._state().get("error")
                if error or (self.process is not None and self.process.poll() is not None):
                    raise PacemakerLabError(f"{self.name}: launcher stopped: "
                                            f"{error or 'see ' + str(self.workdir / 'launcher.out')}")
            if deadline.expired():
                raise PacemakerLabError(f"{self.name}: {what}: not within the deadline; see "
                                        f"{self.workdir}")
            deadline.clock.sleep(_POLL_SECONDS)

    def wait_online(self, nodes: Iterable[str], deadline: Deadline) -> ClusterView:
        """Wait until this node sees every one of `nodes` online."""
        wanted = set(nodes)
        seen: list[ClusterView] = []

        def online() -> bool:
            view = self.view()
            if view is not None and wanted <= set(view.online):
                seen.append(view)
                return True
            return False

        self.wait_for(online, deadline, f"online {sorted(wanted)}")
        return seen[-1]

    def wait_started(self, resource: str, deadline: Deadline) -> ClusterView:
        seen: list[ClusterView] = []

        def started() -> bool:
            view = self.view()
            if view is not None and view.started(resource):
                seen.append(view)
                return True
            return False

        self.wait_for(started, deadline, f"{resource} started")
        return seen[-1]

    def pacemaker_log(self) -> str:
        path = node_dirs(self.workdir)["log"] / "pacemaker.log"
        return path.read_text(errors="replace") if path.exists() else ""


class OneNodeCluster:
    """A one-node cluster on 127.0.0.1 in private namespaces (context manager)."""

    def __init__(self, workdir: Path, cib: CibSeed, *, node: str = "node1",
                 services: Sequence[ServiceSpec] = ()) -> None:
        text = corosync_conf(cib.cluster_name, [CorosyncMember(node, 1, "127.0.0.1")],
                             Path(workdir) / node / "corosync.log")
        self.node = LabNode(node, Path(workdir) / node, text, cib, services=services)

    def start(self, deadline: Deadline) -> "OneNodeCluster":
        self.node.start(deadline)
        self.node.wait_online([self.node.name], deadline)
        return self

    def stop(self) -> None:
        self.node.stop()

    def __enter__(self) -> "OneNodeCluster":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


SAN_ADDRESS = "169.254.10.1"
_SAN_PREFIX = "/24"
_NODE_SAN_ADDRESSES = ("169.254.10.11", "169.254.10.12")
_NODE_CLUSTER_ADDRESSES = ("169.254.20.1", "169.254.20.2")
NODE_NAMES = ("node1", "node2")
# The management network (`TwoNodeLab(management=True)`): BMCs and PDUs, apart from the SAN.
MGMT_ADDRESS = "169.254.30.1"
_NODE_MGMT_ADDRESSES = ("169.254.30.11", "169.254.30.12")
NODE_STOP_SECONDS = 10.0  # a connected node stops in ~2 s (measured); a cut-off one never
TOKEN_MS = 1500  # corosync token: a cut is noticed ~3 s later (token + 1.2 x token consensus)


class TwoNodeLab:
    """Namespaces, SAN, tgtd and two cluster nodes; see the module doc for the layout."""

    def __init__(self, workdir: Path, *, portal_count: int = 2,
                 management: bool = False) -> None:
        self.workdir = Path(workdir)
        tag = lab_tag()
        self.tag = tag
        self.san = Namespace(f"sw{tag}-san")
        self.node_namespaces = {name: Namespace(f"sw{tag}-{name}") for name in NODE_NAMES}
        self.tgtd = Tgtd(self.workdir / "tgtd", portal_count=portal_count, host=SAN_ADDRESS,
                         netns=self.san.name)
        self.cluster_link: Link | None = None
        self.management = management
        self.san_links: dict[str, Link] = {}
        self.nodes: dict[str, LabNode] = {}

    def start_network(self) -> "TwoNodeLab":
        """Namespaces, the SAN bridge with both nodes on it, the cluster link, and tgtd."""
        try:
            self.san.create()
            self.san.add_bridge(f"sw{self.tag}br", SAN_ADDRESS + _SAN_PREFIX)
            for index, name in enumerate(NODE_NAMES):
                namespace = self.node_namespaces[name].create()
                self.san_links[name] = Link(
                    namespace, f"sw{self.tag}s{index + 1}", _NODE_SAN_ADDRESSES[index] + _SAN_PREFIX,
                    self.san, f"sw{self.tag}b{index + 1}", b_bridge=f"sw{self.tag}br").create()
            if self.management:
                self.san.add_bridge(f"sw{self.tag}mg", MGMT_ADDRESS + _SAN_PREFIX)
                for index, name in enumerate(NODE_NAMES):
                    Link(self.node_namespaces[name], f"sw{self.tag}m{index + 1}",
                         _NODE_MGMT_ADDRESSES[index] + _SAN_PREFIX, self.san,
                         f"sw{self.tag}n{index + 1}", b_bridge=f"sw{self.tag}mg").create()
            first, second = (self.node_namespaces[name] for name in NODE_NAMES)
            self.cluster_link = Link(first, f"sw{self.tag}c1", _NODE_CLUSTER_ADDRESSES[0] + _SAN_PREFIX,
                                     second, f"sw{self.tag}c2",
                                     b_address=_NODE_CLUSTER_ADDRESSES[1] + _SAN_PREFIX).create()
            self.tgtd.start()
        except BaseException:
            self.stop()
            raise
        return self

    def corosync_text(self, name: str, cluster_name: str, *, two_node: bool = True) -> str:
        members = [CorosyncMember(node, index + 1, address)
                   for index, (node, address) in enumerate(zip(NODE_NAMES, _NODE_CLUSTER_ADDRESSES))]
        return corosync_conf(cluster_name, members, self.workdir / name / "corosync.log",
                             two_node=two_node, token_ms=TOKEN_MS)

    def start_nodes(self, cibs: dict[str, CibSeed], deadline: Deadline, *,
                    services: dict[str, Sequence[ServiceSpec]] | None = None,
                    binds: dict[str, Sequence[tuple[str, str]]] | None = None,
                    two_node: bool = True) -> "TwoNodeLab":
        """Start both nodes; returns once each sees both online."""
        try:
            for name in NODE_NAMES:
                node = LabNode(name, self.workdir / name,
                               self.corosync_text(name, cibs[name].cluster_name, two_node=two_node),
                               cibs[name], netns=self.node_namespaces[name],
                               services=(services or {}).get(name, ()),
                               binds=(binds or {}).get(name, ()))
                self.nodes[name] = node
                node.start(deadline)
            for node in self.nodes.values():
                node.wait_online(NODE_NAMES, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def cut_san_link(self, node: str) -> None:
        """`node` loses the SAN (its iSCSI sessions); the management network stays."""
        self.san_links[node].cut()

    def cut_cluster_link(self) -> None:
        """The two nodes stop hearing each other; both still reach the SAN."""
        assert self.cluster_link is not None, "start_network() first"
        self.cluster_link.cut()

    def stop(self) -> None:
        """Nodes, tgtd, then the namespaces; every step runs even if one before it failed."""
        problems = []
        for node in self.nodes.values():
            node.request_stop()  # both at once: a node cut off may take the whole grace
        grace = Deadline.after(NODE_STOP_SECONDS)
        for node in self.nodes.values():
            try:
                node.finish_stop(grace)
            except (OSError, subprocess.SubprocessError) as err:
                problems.append(f"{node.name}: {err}")
        self.tgtd.stop()
        for namespace in [*self.node_namespaces.values(), self.san]:
            try:
                namespace.delete()
            except RuntimeError as err:
                problems.append(str(err))
        if problems:
            raise PacemakerLabError("; ".join(problems))

    def __enter__(self) -> "TwoNodeLab":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def in_agent_sandbox(workdir: Path, argv: Sequence[str], timeout: float = 30.0) -> CommandResult:
    """Run `argv` in a private mount namespace where /usr/sbin has fence_stonewall and
    /var/lib/pacemaker is the lab's own: Pacemaker's tools without a cluster (stonith_admin
    --metadata/--validate), with nothing changed on the host."""
    workdir = Path(workdir)
    _prepare_node_dirs(workdir)
    spec_path = workdir / "sandbox.json"
    NodeSpec("sandbox", str(workdir)).save(spec_path)
    return run_command(["unshare", "--mount", "--propagation", "private", sys.executable, "-m",
                        "stonewall.lab.pacemaker_launcher", str(spec_path), "--exec", *argv],
                       timeout)
