"""The power level against the lab BMC (lab/bmc.py, pyghmi's BMC on 127.0.0.1): a verified
IPMI power-off of node-b, process start to exit, and how long `power off` takes to give up
on a mute BMC against the deadline configured for node-b (ipmi.timeout)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from stonewall.benchmarks.cases import STONEWALL_TIMEOUT, CaseResult, run_case
from stonewall.benchmarks.lab import FENCER, VICTIM, Nodes
from stonewall.benchmarks.measure import BenchFailure, expect_exit, time_process

MUTE_DEADLINE = 2.0  # node-b's ipmi.timeout in the benchmark's configuration
POLL_INTERVAL = 0.1
EXIT_OK, EXIT_BMC_FAILED = 0, 1  # `stonewall power` (handlers/power_cmd.py)


def power_available() -> str:
    """"" when `stonewall power` exists in this tree, else why not."""
    probe = subprocess.run([sys.executable, "-m", "stonewall", "power", "--help"],
                           capture_output=True, text=True, timeout=60)
    return "" if probe.returncode == 0 else "`stonewall power` is not in this tree"


def power_cases(nodes: Nodes, workdir: Path, runs: int) -> list[CaseResult]:
    """Verified off against a loopback BMC, then the same BMC muted."""
    from stonewall.lab.bmc_process import BmcProcess  # pyghmi: only on the power path
    from stonewall.power.protocol import PowerState

    bmc = BmcProcess(workdir / "bmc").start()
    try:
        config = _config_with_bmc(nodes, bmc.port, str(bmc.password_file), bmc.user)
        base = [sys.executable, "-m", "stonewall", "--config", str(config), "power"]

        def power_on() -> None:
            expect_exit(time_process([*base, "on", VICTIM], STONEWALL_TIMEOUT), EXIT_OK,
                        "power on (reset)")

        def verified_off() -> float:
            run = time_process([*base, "off", VICTIM], STONEWALL_TIMEOUT)
            seconds = expect_exit(run, EXIT_OK, "power off")
            if bmc.state().power is not PowerState.OFF:
                raise BenchFailure(f"power off exited 0 but the BMC says {bmc.state().power}")
            return seconds

        def mute_off() -> float:
            run = time_process([*base, "off", VICTIM], STONEWALL_TIMEOUT)
            return expect_exit(run, EXIT_BMC_FAILED, "power off against a mute BMC")

        off = run_case("power", "stonewall power off (verified)", nodes, verified_off,
                       power_on, runs)
        power_on()
        bmc.set_mute(True)
        mute = run_case("power", "stonewall power off, mute BMC", nodes, mute_off,
                        lambda: None, runs)
        if mute.stats:
            mute.notes = {"deadline_s": MUTE_DEADLINE,
                          "median_over_deadline_ms": round(
                              (mute.stats.median - MUTE_DEADLINE) * 1000, 1)}
    finally:
        bmc.stop()
    for result in (off, mute):  # not a LUN case
        result.luns = result.paths = 0
    return [off, mute]


def _config_with_bmc(nodes: Nodes, port: int, password_file: str, user: str) -> Path:
    """node-a's configuration with node-b's BMC added."""
    document = nodes.cluster.document(FENCER)
    for node in document["nodes"]:  # type: ignore[union-attr]
        if node["name"] == VICTIM:
            node["ipmi"] = {"address": "127.0.0.1", "port": port, "username": user,
                            "password_file": password_file, "timeout": MUTE_DEADLINE,
                            "poll_interval": POLL_INTERVAL}
    path = nodes.cluster.node_dir(FENCER) / "power.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return path
