"""Call the DRBD handlers exactly as DRBD does: drbdadm runs the drbd.conf string through
`/bin/sh -c` with the kernel's environment plus its own (reference/drbd.md 0-1); the
programs are console scripts like the ones pip installs for our entry points."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stonewall.lab.bmc_process import BmcProcess
from stonewall.lab.drbd_side import KERNEL_HELPER_BASE, drbd9_handler_env

NODES = {"node-a": (1, 0, "127.0.1.1"), "node-b": (2, 1, "127.0.1.2")}  # id, DRBD id, address
RESOURCES = {"r0": ["arbiter0", "arbiter1", "data0"], "r1": ["arbiter0", "data0"],
             "r2": ["arbiter1", "data0"]}
ENTRY_POINTS = {"fence-peer": "fence_peer_main", "unfence-peer": "unfence_peer_main",
                "split-brain": "split_brain_main"}
HANDLER_TIMEOUT = 60.0


def lab_config_extra(bmcs: dict[str, BmcProcess] | None = None,
                     fencing: list[dict[str, object]] | None = None,
                     power_delay: dict[str, float] | None = None) -> dict[str, object]:
    """Config keys that add DRBD resources, node addresses and (optionally) BMCs."""
    nodes = []
    for name, (node_id, _, address) in NODES.items():
        node: dict[str, object] = {"name": name, "id": node_id,
                                   "initiator": f"iqn.2026-11.lab.stonewall:{name}",
                                   "addresses": [address]}
        if bmcs:
            bmc = bmcs[name]
            node["ipmi"] = {"address": bmc.host, "port": bmc.port, "username": bmc.user,
                            "password_file": str(bmc.password_file), "timeout": 6,
                            "poll_interval": 0.2}
        if power_delay and name in power_delay:
            node["power_delay"] = power_delay[name]
        nodes.append(node)
    peers = {drbd_id: name for name, (_, drbd_id, _) in NODES.items()}
    extra: dict[str, object] = {
        "nodes": nodes,
        "drbd": [{"name": name, "luns": luns, "minors": [index], "peers": peers}
                 for index, (name, luns) in enumerate(RESOURCES.items())],
    }
    if fencing:
        extra["fencing"] = fencing
    return extra


def _minor(resource: str) -> str:
    # A resource the lab does not configure still has a minor on the DRBD side.
    return str(list(RESOURCES).index(resource)) if resource in RESOURCES else "99"


def _base_env() -> dict[str, str]:
    return dict(KERNEL_HELPER_BASE)


def drbd9_env(me: str, peer: str, resource: str = "r0") -> dict[str, str]:
    """fence-peer/unfence-peer environment of DRBD 9 (kernel + drbdadm)."""
    return drbd9_handler_env(resource, _minor(resource), NODES[me][1], NODES[peer][1],
                             {drbd_id: name for name, (_, drbd_id, _) in NODES.items()},
                             NODES[me][2], NODES[peer][2])


def drbd84_env(peer: str, resource: str = "r0") -> dict[str, str]:
    """fence-peer environment of DRBD 8.4 (kernel + drbdadm): no node ids."""
    return {**_base_env(), "DRBD_RESOURCE": resource, "DRBD_CONF": "/etc/drbd.conf",
            "DRBD_PEER_AF": "ipv4", "DRBD_PEER_ADDRESS": NODES[peer][2], "DRBD_PEER": peer,
            "DRBD_PEERS": peer, "DRBD_MINOR": _minor(resource)}


def kernel_only_env(me: str, peer: str) -> dict[str, str]:
    """What DRBD 9's kernel alone passes a connection helper (usermode_helper = us)."""
    return {**_base_env(), "DRBD_PEER_NODE_ID": str(NODES[peer][1]),
            "DRBD_MY_ADDRESS": NODES[me][2], "DRBD_MY_AF": "ipv4",
            "DRBD_PEER_ADDRESS": NODES[peer][2], "DRBD_PEER_AF": "ipv4",
            "DRBD_CSTATE": "Connecting", "DRBD_MINOR_0": "0",
            "UP_TO_DATE_NODES": f"0x{1 << NODES[me][1]:08X}"}


def install_programs(directory: Path) -> dict[str, Path]:
    """The stonewall-drbd-* console scripts, as pip writes them for our entry points."""
    directory.mkdir(parents=True, exist_ok=True)
    programs = {}
    for handler, function in ENTRY_POINTS.items():
        path = directory / f"stonewall-drbd-{handler}"
        path.write_text(f"#!{sys.executable}\nimport sys\n"
                        f"from stonewall.handlers.drbd_handlers import {function}\n"
                        f"sys.exit({function}())\n")
        path.chmod(0o755)
        programs[handler] = path
    return programs


@dataclass(frozen=True)
class HandlerRun:
    exit_code: int
    stderr: str
    elapsed: float


def run_handler_string(command: str, env: dict[str, str],
                       timeout: float = HANDLER_TIMEOUT) -> HandlerRun:
    """Run a drbd.conf handler string the way drbdadm does: /bin/sh -c with `env`."""
    began = time.monotonic()
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True,
                          text=True, timeout=timeout)
    return HandlerRun(done.returncode, done.stderr, time.monotonic() - began)
