"""The handler chain through real drbdadm: what drbdadm hands a handler parses and resolves,
and the handler's exit status reaches DRBD's kernel side unchanged."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from stonewall.config.model import ClusterConfig, DrbdResource, Lun, LunRole, Node, Transport
from stonewall.storage.drbd.env import DrbdVersion, HandlerEnv, HandlerEnvError, parse_handler_env
from stonewall.storage.drbd.exitcodes import FencePeerOutcome, exit_code_for
from stonewall.storage.drbd.resolve import PeerMatch, resolve_fence_target

from .drbdconf import (
    KERNEL_BASE,
    MY_ADDRESS,
    PEER_ADDRESS,
    PEER_HOST,
    THIS_HOST,
    run_drbdadm,
    write_resource,
)

RECORDER = Path(__file__).parent / "handler_recorder.py"

# What DRBD 9's kernel exports for fence-peer on a two-volume resource (drbd_khelper()).
V9_KERNEL_FENCE_PEER = {
    **KERNEL_BASE,
    "DRBD_MY_ADDRESS": MY_ADDRESS, "DRBD_MY_AF": "ipv4",
    "DRBD_PEER_ADDRESS": PEER_ADDRESS, "DRBD_PEER_AF": "ipv4",
    "DRBD_PEER_NODE_ID": "1", "DRBD_CSTATE": "NetworkFailure",
    "DRBD_MINOR_0": "10", "DRBD_MINOR_1": "11", "UP_TO_DATE_NODES": "0x00000001",
}
# DRBD 8.4's kernel exports only the peer's address (setup_khelper_env()).
V84_KERNEL = {**KERNEL_BASE, "DRBD_PEER_AF": "ipv4", "DRBD_PEER_ADDRESS": PEER_ADDRESS}


def _handlers(record: Path, exit_status: int) -> str:
    command = f"{sys.executable} {RECORDER} {record} {exit_status}"
    return "\n".join(["handlers {",
                      f'    fence-peer "{command}";',
                      f'    split-brain "{command}";',
                      "}"])


def _run_handler(tmp_path: Path, version: DrbdVersion, minors: list[int], args: list[str],
                 kernel_env: dict[str, str], exit_status: int = 0) -> tuple[int, dict[str, Any]]:
    """Run `drbdadm ARGS` on a resource whose handlers record what they get: (status, record)."""
    record = tmp_path / "record.json"
    config = write_resource(tmp_path, version, "r0", minors, _handlers(record, exit_status))

    completed = run_drbdadm(version, config, args, kernel_env)

    assert record.exists(), f"handler did not run: {completed.stderr}"
    return completed.returncode, json.loads(record.read_text())


def _handler_env(tmp_path: Path, version: DrbdVersion, minors: list[int], args: list[str],
                 kernel_env: dict[str, str]) -> HandlerEnv:
    """What parse_handler_env makes of the environment drbdadm gave the handler."""
    _, recorded = _run_handler(tmp_path, version, minors, args, kernel_env)
    return parse_handler_env(recorded["environ"], recorded["argv"])


def _cluster() -> ClusterConfig:
    nodes = (Node(name=THIS_HOST, id=1, key=0x5357000000000001, addresses=(MY_ADDRESS,)),
             Node(name=PEER_HOST, id=2, key=0x5357000000000002, addresses=(PEER_ADDRESS,)))
    luns = (Lun(name="arbiter", role=LunRole.ARBITER, transport=Transport.SG, order=1,
                wwid="36001405aaaa"),)
    return ClusterConfig(source="test", cluster="lab", nodes=nodes, luns=luns,
                         drbd_resources=(DrbdResource(name="r0", luns=("arbiter",),
                                                      peers={0: THIS_HOST, 1: PEER_HOST}),))


def test_drbd9_fence_peer_environment_from_drbdadm_parses_and_resolves(tmp_path: Path) -> None:
    env = _handler_env(tmp_path, DrbdVersion.V9, [10, 11], ["fence-peer", "r0"],
                          V9_KERNEL_FENCE_PEER)

    assert env.version is DrbdVersion.V9 and env.resource == "r0"
    assert env.handler is None  # drbdadm runs the handler string through /bin/sh, no args
    assert env.minors == (10, 11) and env.volumes == (0, 1)
    assert env.my_node_id == 0 and env.peer_node_id == 1
    assert env.peer_names == (PEER_HOST,)
    assert env.node_names == {0: (THIS_HOST,), 1: (PEER_HOST,)}
    assert env.config_file is not None and env.config_file.endswith("r0.res")
    target = resolve_fence_target(_cluster(), env)
    assert target.peer.name == PEER_HOST
    assert target.matched_by == {PeerMatch.NODE_ID, PeerMatch.ADDRESS}


def test_drbd84_fence_peer_environment_from_drbdadm_parses_and_resolves(tmp_path: Path) -> None:
    env = _handler_env(tmp_path, DrbdVersion.V8_4, [3, 4], ["fence-peer", "r0"], V84_KERNEL)

    assert env.version is DrbdVersion.V8_4
    assert env.peer_names == (PEER_HOST,) and env.minors == (3, 4)
    assert str(env.peer_address) == f"ipv4:{PEER_ADDRESS}"
    target = resolve_fence_target(_cluster(), env)
    assert target.peer.name == PEER_HOST and target.matched_by == {PeerMatch.ADDRESS}


def test_drbd84_split_brain_device_helper_gets_its_one_minor(tmp_path: Path) -> None:
    env = _handler_env(tmp_path, DrbdVersion.V8_4, [3, 4], ["split-brain", "minor-4"],
                          V84_KERNEL)

    assert env.resource == "r0" and env.minors == (4,) and env.volumes == (1,)


def test_drbd9_split_brain_gets_all_volumes_of_the_resource(tmp_path: Path) -> None:
    kernel = {**V9_KERNEL_FENCE_PEER, "DRBD_MINOR": "11", "DRBD_VOLUME": "1",
              "DRBD_CSTATE": "Connected"}
    for name in ("DRBD_MINOR_0", "DRBD_MINOR_1", "UP_TO_DATE_NODES"):
        del kernel[name]  # device helpers get neither

    env = _handler_env(tmp_path, DrbdVersion.V9, [10, 11], ["split-brain", "r0"], kernel)

    # drbdadm overwrites the kernel's single minor with every local volume of the resource.
    assert env.minors == (10, 11) and env.volumes == (0, 1)
    assert env.up_to_date_nodes is None and env.peer_node_id == 1


def test_a_drbd_conf_that_disagrees_with_the_kernel_about_minors_is_refused(
        tmp_path: Path) -> None:
    # The kernel runs volumes 0/1 as minors 10/11, drbd.conf (edited, not yet adjusted) says 0/1.
    _, recorded = _run_handler(tmp_path, DrbdVersion.V9, [0, 1], ["fence-peer", "r0"],
                               V9_KERNEL_FENCE_PEER)

    with pytest.raises(HandlerEnvError, match="DRBD_MINOR_0=10 disagrees"):
        parse_handler_env(recorded["environ"], recorded["argv"])


@pytest.mark.parametrize("version", list(DrbdVersion))
@pytest.mark.parametrize("outcome", list(FencePeerOutcome))
def test_drbdadm_passes_our_fence_peer_exit_code_on_unchanged(
        tmp_path: Path, version: DrbdVersion, outcome: FencePeerOutcome) -> None:
    code = exit_code_for(outcome, version)
    kernel = V9_KERNEL_FENCE_PEER if version is DrbdVersion.V9 else V84_KERNEL

    returned, recorded = _run_handler(tmp_path, version, [10, 11], ["fence-peer", "r0"], kernel,
                                      code)

    assert recorded["environ"]["DRBD_RESOURCE"] == "r0"  # our handler is what ran

    assert returned == code
