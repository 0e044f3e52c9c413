"""The demo on the embedded lab: tgtd with LUNs on two portals, two nodes' holders join,
node-b fences node-a by storage, `stonewall status` before and after. Everything it starts
is stopped at the end, also on Ctrl-C."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from stonewall.clock import Deadline
from stonewall.config.loader import load_config
from stonewall.holder.client import HolderClient
from stonewall.holder.server import socket_path
from stonewall.lab.cluster import LabCluster, LabLun
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.processes import StonewallProcess
from stonewall.lab.tgtd import Tgtd

DEMO_LUNS = [LabLun("arbiter0", 1, "arbiter", 0), LabLun("arbiter1", 2, "arbiter", 1),
             LabLun("web1-disk", 3, "guest", reservation="we"),
             LabLun("db1-disk", 4, "guest", reservation="we")]


def run_demo(say: Callable[[str], None] = print) -> int:
    """Run the demo; returns 0 when node-a was fenced and verified."""
    started = time.monotonic()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - started:6.2f}s] {text}")

    with tempfile.TemporaryDirectory(prefix="stonewall-demo-") as tmp:
        workdir = Path(tmp)
        holders: list[StonewallProcess] = []
        with Tgtd(workdir / "tgtd", portal_count=2) as tgtd:
            try:
                tid = tgtd.add_target(ARRAY_IQN)
                for lun in DEMO_LUNS:
                    tgtd.add_lun(tid, lun.lun)
                step(f"tgtd pid {tgtd.pid}: {len(DEMO_LUNS)} LUNs on portals "
                     f"{', '.join(tgtd.portals)} (two paths per LUN)")
                lab = LabCluster(workdir, tgtd, luns=DEMO_LUNS)
                configs = {node: lab.write_config(node) for node in lab.nodes}
                for node in lab.nodes:
                    boot = lab.boot(node, f"{node}-boot-1")
                    holders.append(StonewallProcess(
                        configs[node], ["holder", "run", "--node", node, "--join"],
                        env={"STONEWALL_BOOT_ID_FILE": str(boot)}).start())
                    step(f"{node}: holder up, registered on every path")
                _status(configs["node-a"], step, "both nodes joined")
                config = load_config(str(configs["node-b"]))
                client = HolderClient(socket_path(config.paths.runtime_dir))
                step("node-b fences node-a: PREEMPT its key, arbiter LUNs first")
                before = time.monotonic()
                outcome = client.preempt("node-a", None, Deadline.after(10))
                took = (time.monotonic() - before) * 1000
                for lun in outcome["preempt"]["luns"]:
                    step(f"  {lun['lun']}: {lun['action']} via {lun['path'] or '-'}")
                for check in outcome["verification"]["checks"]:
                    step(f"  verify {check['lun']}: node-a key absent on "
                         f"{check['paths_up']} path(s): {check['verdict']}")
                step(f"node-a fenced and verified: {outcome['fenced']} ({took:.1f} ms)")
                _status(configs["node-b"], step, "after the fence", paths=True)
                return 0 if outcome["fenced"] else 1
            finally:
                for holder in holders:
                    holder.stop()
                step("lab stopped")


def _status(config: Path, step: Callable[[str], None], title: str, paths: bool = False) -> None:
    step(f"stonewall status ({title}):")
    command = [sys.executable, "-m", "stonewall", "--config", str(config), "status",
               "--direct"] + (["--paths"] if paths else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    print(result.stdout.rstrip(), flush=True)
