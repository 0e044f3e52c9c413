"""A DRBD pair on local disks (no shared LUNs): fence-peer fences by the PDU pair alone and
exits 7 only when both outlets read back off; anything less keeps I/O frozen."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stonewall.eventlog import read_events

from ..snmp_fixtures import (  # noqa: F401  (the snmp_device fixture)
    PDU1_KEY, PDU2_COMMUNITY, SWITCH_COMMUNITY, DeviceFactory, snmp_device)
from .drbd_calls import NODES, drbd9_env, install_programs, run_handler_string
from .test_fence_peer_agents import EATON_CYCLING, PLUG, Devices

POWERED_OFF, FROZEN = 7, 1


def write_config(directory: Path, devices: Devices) -> Path:
    nodes = [{"name": name, "id": node_id, "addresses": [address],
              "fence_devices": {"pdu": devices.groups(name)["pdu"]}}
             for name, (node_id, _, address) in NODES.items()]
    document: dict[str, Any] = {
        "cluster": "lab",
        "paths": {"state_dir": str(directory / "state"), "runtime_dir": str(directory / "run"),
                  "event_log": str(directory / "events.jsonl")},
        "nodes": nodes,
        "luns": [],
        "drbd": [{"name": "r0", "minors": [0],
                  "peers": {drbd_id: name for name, (_, drbd_id, _) in NODES.items()}}],
        "fencing": [{"level": "agent", "devices": "pdu", "timeout": 12}],
    }
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


@pytest.fixture
def devices(snmp_device: DeviceFactory, tmp_path: Path, request: Any) -> Devices:
    return Devices(snmp_device, tmp_path, request)


def fence_peer(tmp_path: Path, devices: Devices):  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, devices)
    program = install_programs(tmp_path / "bin")["fence-peer"]
    return run_handler_string(f"{program} --config {config}",
                              drbd9_env("node-b", "node-a", "r0")), config


def test_without_shared_luns_fence_peer_exits_7_after_both_outlets_read_off(tmp_path, devices):
    run, config = fence_peer(tmp_path, devices)
    assert run.exit_code == POWERED_OFF, run.stderr
    assert devices.apc.outlets()["1"] == "off" and devices.eaton.outlets()["1"] == "off"
    levels = read_events(str(tmp_path / "events.jsonl"))[-1]["details"]["levels"]
    assert [(level["level"], level["verified"]) for level in levels] == [("agent", True)]


@pytest.mark.agent_devices(eaton_stuck={PLUG["node-a"]: EATON_CYCLING})
def test_without_shared_luns_one_outlet_not_off_keeps_io_frozen(tmp_path, devices):
    run, _ = fence_peer(tmp_path, devices)
    assert run.exit_code == FROZEN, run.stderr
    assert "NOT fenced" in run.stderr
