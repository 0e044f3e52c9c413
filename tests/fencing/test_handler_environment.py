"""fence-peer started the way DRBD starts it on a cluster node: real drbdadm, the kernel's
environment and nothing of the service's (no STONEWALL_CONFIG, no STONEWALL_NODE, no
password variable), the handler named in drbd.conf without arguments. It finds
/etc/stonewall/cluster.yaml by itself, knows which node it is from DRBD's node id, and
fences the peer by storage. /etc is overlaid in a private mount namespace, so the file
exists for this run only."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from stonewall.eventlog import read_events
from stonewall.storage.drbd.env import DrbdVersion

from ..drbd.drbdconf import KERNEL_BASE, MY_ADDRESS, PEER_ADDRESS, drbdadm, write_resource
from .drbd_calls import lab_config_extra
from .test_fence_peer_storage import FENCED_BY_STORAGE, key_of, luns_holding

# drbdadm's own `on` section is this host (node id 0); in the configuration that is node-b,
# which fences node-a (DRBD node id 1), reached at the addresses drbd.conf gives them.
PEERS = {0: "node-b", 1: "node-a"}
ADDRESSES = {"node-b": MY_ADDRESS, "node-a": PEER_ADDRESS}


@pytest.fixture
def lab_extra() -> dict[str, Any]:
    extra = lab_config_extra()
    for node in extra["nodes"]:
        node["addresses"] = [ADDRESSES[node["name"]]]
    extra["drbd"] = [{"name": "r0", "luns": ["arbiter0", "arbiter1", "data0"], "minors": [0],
                      "peers": PEERS}]
    return extra


def _drbdadm_with_default_config(tmp_path: Path, config: Path, resource: Path,
                                 environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`drbdadm fence-peer r0` with `config` at /etc/stonewall/cluster.yaml in a private
    mount namespace (an overlay on /etc that ends with the command), on a host named node-b
    (a private UTS namespace): drbdadm finds its own `on` section by the host name, and the
    handler checks drbd.conf's names against the configuration's."""
    upper, work = tmp_path / "etc-upper", tmp_path / "etc-work"
    upper.mkdir()
    work.mkdir()
    script = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
              f" && mkdir -p /etc/stonewall && cp {config} /etc/stonewall/cluster.yaml"
              f" && exec {drbdadm(DrbdVersion.V9)} -c {resource} fence-peer r0")
    return subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "sh",
                           "-c", f"hostname node-b && {script}"],
                          env=environ, capture_output=True, text=True, timeout=120, check=False)


def test_drbdadm_starts_fence_peer_with_no_stonewall_environment_and_it_fences(
        lab, observer, programs, tmp_path: Path) -> None:
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    handler = programs["fence-peer"]  # a console script, as the package installs it
    resource = write_resource(tmp_path, DrbdVersion.V9, "r0", [0],
                              f'handlers {{\n    fence-peer "{handler}";\n}}',
                              hosts=("node-b", "node-a"))
    # What DRBD 9's kernel exports for fence-peer; drbdadm adds its own DRBD_* variables.
    kernel = {**KERNEL_BASE, "DRBD_MY_ADDRESS": MY_ADDRESS, "DRBD_MY_AF": "ipv4",
              "DRBD_PEER_ADDRESS": PEER_ADDRESS, "DRBD_PEER_AF": "ipv4",
              "DRBD_PEER_NODE_ID": "1", "DRBD_CSTATE": "NetworkFailure", "DRBD_MINOR_0": "0",
              "UP_TO_DATE_NODES": "0x00000001"}
    assert not [name for name in kernel if name.startswith("STONEWALL")]

    done = _drbdadm_with_default_config(tmp_path, lab.configs["node-b"], resource, kernel)

    assert done.returncode == FENCED_BY_STORAGE, done.stderr
    assert "fence-peer r0 peer node-a: node-a fenced-by-storage" in done.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}  # not in r0
    # This node is node-b by DRBD's node id alone (no --node, no STONEWALL_NODE).
    [record] = read_events(lab.config("node-b").paths.event_log)
    assert (record["actor"], record["target"], record["outcome"]) == ("node-b", "node-a",
                                                                      "fenced")
