"""Shared by the Pacemaker tests: lab configurations, the agent run as Pacemaker runs it
(key=value lines on stdin), and the target's own word on who is registered."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import ClusterConfig
from stonewall.lab.cluster import LabCluster, LabLun
from stonewall.lab.processes import StonewallProcess
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import PathSet, close_paths, plan_paths
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.iscsi import IscsiSession

NODES = ["node1", "node2", "node3"]  # lower case: Pacemaker warns about capitals
LUNS = [LabLun("arbiter0", 1, "arbiter", 0), LabLun("arbiter1", 2, "arbiter", 1),
        LabLun("data0", 3, "shared")]
OBSERVER_IQN = "iqn.2026-11.lab.stonewall:observer"  # judges results, never registers


@dataclass(frozen=True)
class AgentRun:
    returncode: int
    stdout: str
    stderr: str


def run_agent(stdin: str | None = None, argv: tuple[str, ...] = (), *, timeout: float = 60,
              user: str | None = None, env: dict[str, str] | None = None) -> AgentRun:
    """The agent as a process: `python -m stonewall.handlers.fence_agent ARGV < STDIN`."""
    command = [sys.executable, "-m", "stonewall.handlers.fence_agent", *argv]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True,
                            timeout=timeout, cwd="/", env=env)
    return AgentRun(result.returncode, result.stdout, result.stderr)


def stdin_lines(**parameters: str) -> str:
    """key=value lines as pacemaker-fenced writes them."""
    return "".join(f"{name}={value}\n" for name, value in parameters.items())


class NodeFiles:
    """Each lab node's configuration and boot id, and its holder process when started."""

    def __init__(self, cluster: LabCluster) -> None:
        self.cluster = cluster
        self.configs = {node: cluster.write_config(node) for node in cluster.nodes}
        self.boots = {node: cluster.boot(node, f"{node}-boot-1") for node in cluster.nodes}
        self.holders: dict[str, StonewallProcess] = {}

    def config(self, node: str) -> ClusterConfig:
        return load_config(str(self.configs[node]))

    def holder_argv(self, node: str, config_path: str, join: bool = False) -> list[str]:
        """`stonewall holder run` for `node`, as a command line."""
        return [sys.executable, "-m", "stonewall", "--config", config_path, "holder", "run",
                "--node", node, *(["--join"] if join else [])]

    def start_holder(self, node: str, join: bool = False) -> StonewallProcess:
        """`node`'s holder on the host (it reaches tgtd on 127.0.0.1)."""
        args = ["holder", "run", "--node", node, *(["--join"] if join else [])]
        process = StonewallProcess(self.configs[node], args,
                                   env={"STONEWALL_BOOT_ID_FILE": str(self.boots[node])})
        self.holders[node] = process.start()
        return process

    def stop_holders(self) -> None:
        for process in self.holders.values():
            process.stop()
        self.holders.clear()


def observer_paths(config: ClusterConfig, deadline: Deadline) -> PathSet:
    """Sessions of a separate initiator on every path, logged in from the calling thread
    (so from inside a namespace the thread entered)."""
    paths = plan_paths(list(config.luns), OBSERVER_IQN, "reader")
    for lun_paths in paths.values():
        for path in lun_paths:
            assert path.session is not None
            path.session.connect(deadline)
    return paths


def keys_on_paths(paths: PathSet, deadline: Deadline) -> dict[tuple[str, str], tuple[int, ...]]:
    """(LUN, path) -> the keys the target reports there; a path that does not answer fails."""
    found = {}
    for lun, view in read_views(paths, deadline, SYSTEM_CLOCK).items():
        for path in view.paths:
            assert path.up, f"{lun} via {path.path}: {path.error}"
            found[(lun, path.path)] = tuple(path.keys or ())
    return found


def read_keys_now(config: ClusterConfig, deadline: Deadline) -> dict[tuple[str, str], tuple[int, ...]]:
    """keys_on_paths on fresh observer sessions, closed afterwards."""
    paths = observer_paths(config, deadline)
    try:
        return keys_on_paths(paths, deadline)
    finally:
        close_paths(paths)


def data_nexus(config: ClusterConfig, node: str, lun: str, deadline: Deadline) -> IscsiSession:
    """A session of `node`'s initiator beside its holder's, registered with `node`'s key: the
    node's data path (what its guests write through), a nexus of its own."""
    location = config.lun(lun).iscsi
    assert location is not None
    session = IscsiSession(str(location.portals[0]), location.target, location.lun,
                           config.node(node).initiator or "", role="data")
    session.connect(deadline)
    CommandPrDevice(session).register(0, config.node(node).key, deadline)
    return session
