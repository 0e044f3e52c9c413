"""The failover demo (the README's main job): a two-node cluster on this machine from real
parts, node-a crashes, node-b fences it by storage and takes its guests over.

It prints a timeline: the fault, the DRBD fence-peer handler, the keys preempted per LUN,
the verification, the guests started on node-b (one at once, one after T_safe), node-a's
watchdog stand-in, the invariant verdict and the time from fault to service restored; then
`stonewall status`. Everything is stopped at the end, also on Ctrl-C.

    python -m stonewall.lab.demo        (./run demo; root: it runs tgtd)"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stonewall.lab.progress import progress
from stonewall.lab.scenario import LabGuest, ScenarioLab

DEMO_GUESTS = (LabGuest("api1", "node-a", 3, "immediate"), LabGuest("web1", "node-a", 4, "safe"),
               LabGuest("db1", "node-b", 5, "safe"))


def run_demo() -> int:
    """Run the demo; 0 when the fence was verified, node-a's guests run on node-b and the
    one rule held."""
    say = lambda text: print(text, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="stonewall-demo-") as tmp:
        lab = ScenarioLab(Path(tmp), guests=DEMO_GUESTS, log=say)
        try:
            say("== building the lab: tgtd (2 paths per node), two nodes with watchdog "
                "stand-ins, BMCs and libvirt test hypervisors ==")
            with progress("starting the lab"):
                lab.start()
            _status(lab, "node-a", "before the fault")
            time.sleep(1.0)  # let the guests write
            say("== fault: node-a crashes ==")
            fault = time.monotonic()
            lab.crash("node-a")
            record = lab.drbd_fence_peer("node-b", "node-a")
            if not record.fenced:
                say("node-a could not be proven fenced: I/O stays frozen, no guest is started")
                return 1
            say("== takeover on node-b (api1: immediate; web1: safe, waits T_safe unless the "
                "power-off was verified) ==")
            with progress("takeover (T_safe wait for 'safe' guests)"):
                report = lab.take_over("node-b", "node-a", record)
            restored = time.monotonic() - fault
            fired = lab.nodes["node-a"].supervisor.fired()  # type: ignore[union-attr]
            if fired is not None:
                lab.note(f"node-a's watchdog stand-in fired {fired.monotonic - fault:.2f}s "
                         "after the fault (its process group was already gone)")
            time.sleep(0.5)
            say("== invariant check: the LUNs read back ==")
            verdict = lab.check_invariants()
            say(verdict.describe())
            say(f"== fault to service restored (last guest running on node-b): "
                f"{restored:.2f}s ==")
            _status(lab, "node-b", "after the failover")
            ok = record.fenced and report.all_running and verdict.holds
            say("demo: " + ("OK" if ok else "FAILED"))
            return 0 if ok else 1
        finally:
            lab.stop()
            say("lab stopped: tgtd, services, stand-ins, BMCs, guests")


def _status(lab: ScenarioLab, node: str, title: str) -> None:
    print(f"-- stonewall status on {node} ({title}) --", flush=True)
    assert lab.cluster is not None
    result = subprocess.run([sys.executable, "-m", "stonewall", "--config",
                             str(lab.configs[node]), "status", "--direct", "--node", node],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, **lab.cluster.environment(node)})
    print(result.stdout.rstrip(), flush=True)


if __name__ == "__main__":
    sys.exit(run_demo())
