"""How each stonewall fence entry point is started, exactly as its caller starts it:

- DRBD fence-peer: drbdadm runs the drbd.conf handler string through `/bin/sh -c` with the
  kernel's and drbdadm's DRBD_* variables (reference/drbd.md); the program is the
  `stonewall-drbd-fence-peer` console script. Fenced by storage = exit 4 (DRBD 9).
- Pacemaker `fence_stonewall`: the fencer runs the agent with no arguments and writes
  `name=value` lines to its stdin. Fenced = exit 0.
- the holder client (benchmarks/preempt_client.py): the floor both share, run as a file
  (`python -P FILE`), so it imports the stonewall of the Python that runs it.

Every command runs under `python`: `./run bench` passes a normal (not editable) install of
the tree, as a cluster node has it (an editable install adds its finder to every start).

An entry point whose module is not in the tree yet is reported as unavailable, not timed."""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from stonewall.benchmarks import preempt_client
from stonewall.benchmarks.lab import FENCER, VICTIM, Nodes
from stonewall.lab.drbd_side import drbd9_handler_env


@dataclass(frozen=True)
class Invocation:
    command: list[str]
    expected_exit: int
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    replace_env: bool = False  # DRBD's helper gets only the variables DRBD sets


@dataclass(frozen=True)
class EntryPoint:
    name: str
    invocation: Invocation | None
    unavailable: str = ""  # why it cannot be timed


def _has(module: str, function: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    return hasattr(importlib.import_module(module), function)


def console_script(directory: Path, name: str, module: str, function: str,
                   python: str = sys.executable) -> Path:
    """The installed console script `name` next to `python`, else one written into
    `directory` the way pip writes console scripts."""
    installed = Path(python).parent / name
    if installed.exists():
        return installed
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(f"#!{python}\nimport sys\nfrom {module} import {function}\n"
                      f"sys.exit({function}())\n")
    script.chmod(0o755)
    return script


def fence_entry_points(nodes: Nodes, workdir: Path,
                       python: str = sys.executable) -> list[EntryPoint]:
    """Every fence entry point, each ready to fence node-b from node-a under `python`."""
    config = str(nodes.configs[FENCER])
    points = []
    module, function = "stonewall.handlers.drbd_handlers", "fence_peer_main"
    if _has(module, function):
        from stonewall.storage.drbd.env import DrbdVersion
        from stonewall.storage.drbd.exitcodes import FencePeerOutcome, exit_code_for
        script = console_script(workdir / "bin", "stonewall-drbd-fence-peer", module, function,
                                python)
        points.append(EntryPoint("drbd fence-peer", Invocation(
            ["/bin/sh", "-c", f"{script} --config {config} --node {FENCER}"],
            exit_code_for(FencePeerOutcome.PEER_FENCED_BY_STORAGE, DrbdVersion.V9),
            env=drbd9_handler_env("r0", "0", 0, 1, {0: FENCER, 1: VICTIM}), replace_env=True)))
    else:
        points.append(EntryPoint("drbd fence-peer", None, f"{module}.{function} not in tree"))
    module, function = "stonewall.handlers.fence_agent", "main"
    if _has(module, function):
        script = console_script(workdir / "bin", "fence_stonewall", module, function, python)
        points.append(EntryPoint("fence_stonewall off", Invocation(
            [str(script)], 0, stdin=f"action=off\nplug={VICTIM}\nconfig={config}\n")))
    else:
        points.append(EntryPoint("fence_stonewall off", None, f"{module} not in tree"))
    points.append(EntryPoint("holder client", Invocation(
        [python, "-P", preempt_client.__file__, "--config", str(nodes.configs[FENCER]),
         "--victim", VICTIM], 0)))
    return points
