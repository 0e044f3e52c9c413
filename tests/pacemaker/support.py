"""Shared by the Pacemaker tests: lab configurations, the agent run as Pacemaker runs it
(key=value lines on stdin), and the target's own word on who is registered."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import ClusterConfig
from stonewall.holder.client import socket_path
from stonewall.lab.cluster import LabLun
from stonewall.lab.pacemaker_launcher import ServiceSpec
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import PathSet, close_paths, plan_paths
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.iscsi import IscsiSession

from ..lab_fixtures import Lab

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


def holder_service(lab: Lab, node: str, config_path: str) -> ServiceSpec:
    """`stonewall holder run` for `node` as a service of its lab node (started inside the
    node's namespaces, before corosync); ready once its socket exists."""
    return ServiceSpec(
        "holder", [sys.executable, "-m", "stonewall", "--config", config_path, "holder", "run",
                   "--node", node],
        env=lab.cluster.environment(node),
        ready_path=socket_path(lab.config(node).paths.runtime_dir))


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
