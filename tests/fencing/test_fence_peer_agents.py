"""fence-peer through fence-agents levels, run by DRBD's handler chain: node holders on tgtd,
a PDU pair (an APC rack PDU over SNMPv3 and an Eaton ePDU over v2c, one outlet per power
supply of each node) and a SAN switch (IF-MIB), all lab SNMP devices on 127.0.0.1 driven by
Debian's unmodified fence_apc_snmp, fence_eaton_snmp and fence_ifmib."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stonewall.eventlog import read_events

from ..snmp_fixtures import (  # noqa: F401  (the snmp_device fixture)
    PDU1_KEY, PDU2_COMMUNITY, SWITCH_COMMUNITY, DeviceFactory, secret_file, snmp_device)
from .drbd_calls import drbd9_env, lab_config_extra
from .test_fence_peer_storage import FENCED_BY_STORAGE, FROZEN, fence, key_of, luns_holding

POWERED_OFF = 7
PDU_TIMEOUT, FABRIC_TIMEOUT = 12.0, 12.0
EATON_CYCLING = 2
PLUG = {"node-a": 1, "node-b": 2}  # each node's outlet on both PDUs, and its switch port
SLACK = 8.0  # handler start-up, config load, fence-agents' Python start-ups, loaded CI


class Devices:
    """The lab's PDU pair and switch, and the secret files the nodes read."""

    def __init__(self, factory: DeviceFactory, directory: Path, request: Any) -> None:
        marker = request.node.get_closest_marker("agent_devices")
        options = marker.kwargs if marker else {}
        self.apc = factory("apc-rpdu", community=None, v3_user="stonewall",
                           v3_auth_key=PDU1_KEY)
        self.eaton = factory("eaton-managed", community=PDU2_COMMUNITY,
                             stuck=options.get("eaton_stuck"))
        self.switch = factory("ifmib", community=SWITCH_COMMUNITY, outlets=2)
        self.apc_key = secret_file(directory, "pdu1", options.get("apc_key", PDU1_KEY))
        self.eaton_community = secret_file(directory, "pdu2", PDU2_COMMUNITY)
        self.switch_community = secret_file(directory, "switch", SWITCH_COMMUNITY)

    def groups(self, node: str, apc_extra: dict[str, str] | None = None) -> dict[str, Any]:
        plug = str(PLUG[node])
        return {
            "pdu": [
                {"agent": "fence_apc_snmp", "secret_file": self.apc_key,
                 "options": {"ip": self.apc.host, "ipport": str(self.apc.port), "plug": plug,
                             "snmp_version": "3", "username": "stonewall",
                             "snmp_sec_level": "authNoPriv", "snmp_auth_prot": "SHA",
                             **(apc_extra or {})}},
                {"agent": "fence_eaton_snmp", "secret_file": self.eaton_community,
                 "secret_option": "community",
                 "options": {"ip": self.eaton.host, "ipport": str(self.eaton.port),
                             "plug": plug, "snmp_version": "2c", "power_wait": "0"}}],
            "san": [
                {"agent": "fence_ifmib", "secret_file": self.switch_community,
                 "secret_option": "community",
                 "options": {"ip": self.switch.host, "ipport": str(self.switch.port),
                             "plug": f"port-{plug}", "snmp_version": "2c"}}],
        }


@pytest.fixture
def devices(snmp_device: DeviceFactory, tmp_path: Path, request: Any) -> Devices:
    return Devices(snmp_device, tmp_path, request)


def with_devices(devices: Devices, fencing: list[dict[str, Any]],
                 apc_extra: dict[str, str] | None = None) -> dict[str, Any]:
    extra = lab_config_extra(fencing=fencing)
    for node in extra["nodes"]:  # type: ignore[union-attr]
        node["fence_devices"] = devices.groups(node["name"], apc_extra)
    return extra


@pytest.fixture
def lab_extra(devices: Devices, request: Any) -> dict[str, Any]:
    marker = request.node.get_closest_marker("agent_fencing")
    fencing = marker.args[0] if marker else [{"level": "agent", "devices": "pdu",
                                              "timeout": PDU_TIMEOUT}]
    return with_devices(devices, fencing, marker.kwargs.get("apc_extra") if marker else None)


def last_fence(lab) -> dict[str, Any]:
    return read_events(lab.config("node-b").paths.event_log)[-1]


def test_a_pdu_pair_verified_off_exits_7_and_leaves_no_stale_key(lab, observer, programs,
                                                                  devices):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == POWERED_OFF, run.stderr
    assert "exit 7 (PEER_STONITHED)" in run.stderr
    # Both power supplies of node-a are off; node-b's are untouched.
    assert devices.apc.outlets() == {"1": "off", "2": "on"}
    assert devices.eaton.outlets() == {"1": "off", "2": "on"}
    agent, after = last_fence(lab)["details"]["levels"]
    assert (agent["level"], agent["devices"], agent["verified"]) == ("agent", "pdu", True)
    assert [d["verified"] for d in agent["results"]] == [True, True]
    assert [[c["action"], c["exit"]] for c in agent["results"][0]["calls"]] == [
        ["off", 0], ["status", 2]]
    # Storage after power: node-a's key is gone from every LUN, its guest's LUN included.
    assert (after["follow_up"], after["verified"]) == ("after-power", True)
    assert luns_holding(observer(), key_of(lab, "node-a")) == set()


@pytest.mark.agent_fencing([{"level": "agent", "devices": "pdu", "timeout": PDU_TIMEOUT},
                      {"level": "fabric", "devices": "san", "timeout": FABRIC_TIMEOUT}])
@pytest.mark.agent_devices(eaton_stuck={PLUG["node-a"]: EATON_CYCLING})
def test_one_pdu_outlet_unknown_fails_the_level_and_the_next_level_fences(lab, programs,
                                                                          devices):
    began = time.monotonic()
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert time.monotonic() - began < PDU_TIMEOUT + FABRIC_TIMEOUT + SLACK
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr  # fabric: cut off the SAN
    agent, fabric = last_fence(lab)["details"]["levels"]
    assert agent["verified"] is False
    assert [d["verified"] for d in agent["results"]] == [True, False]
    assert "Unable to obtain correct plug status" in agent["results"][1]["calls"][0]["stderr"]
    assert devices.apc.outlets()["1"] == "off"  # the outlet that went off stays off
    assert (fabric["level"], fabric["verified"]) == ("fabric", True)
    assert devices.switch.outlets() == {"1": "off", "2": "on"}


@pytest.mark.agent_devices(eaton_stuck={PLUG["node-a"]: EATON_CYCLING})
def test_one_pdu_outlet_unknown_as_the_only_level_keeps_io_frozen(lab, programs, devices):
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FROZEN, run.stderr
    assert "NOT fenced" in run.stderr
    assert last_fence(lab)["outcome"] != "fenced"


@pytest.mark.agent_fencing([{"level": "agent", "devices": "pdu", "timeout": 5.0}],
                     apc_extra={"login_timeout": "60", "shell_timeout": "60"})
def test_a_hung_agent_is_killed_at_the_deadline_and_the_event_log_says_so(lab, programs,
                                                                          devices):
    devices.apc.mute()
    began = time.monotonic()
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert time.monotonic() - began < 5.0 + SLACK
    assert run.exit_code == FROZEN, run.stderr
    record = last_fence(lab)
    apc = record["details"]["levels"][0]["results"][0]
    assert (apc["failure"], apc["calls"][0]["killed_at_deadline"]) == ("timeout", True)
    assert "killed at its deadline" in run.stderr
    assert record["outcome"] != "fenced"


@pytest.mark.agent_devices(apc_key="wrong-usm-key-0007")
def test_a_wrong_password_is_a_clear_error_and_no_secret_is_printed(lab, programs, devices):
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FROZEN, run.stderr
    assert "Authentication failure" in run.stderr
    event_log = Path(lab.config("node-b").paths.event_log).read_text()
    for secret in ("wrong-usm-key-0007", PDU1_KEY, PDU2_COMMUNITY, SWITCH_COMMUNITY):
        assert secret not in run.stderr and secret not in event_log
    assert devices.apc.outlets()["1"] == "on"


@pytest.mark.agent_fencing([{"level": "fabric", "devices": "san", "timeout": FABRIC_TIMEOUT}])
def test_fabric_port_off_verified_and_unfencing_refused_before_a_reboot(lab, programs,
                                                                         devices):
    lab.start_holder("node-a")  # node-a joins in boot 1
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FENCED_BY_STORAGE, run.stderr
    assert devices.switch.outlets() == {"1": "off", "2": "on"}
    lab.stop()
    refused = unfence(lab, "node-a")
    assert refused.returncode == 3, refused.stderr
    assert "only after a reboot" in refused.stderr
    assert devices.switch.outlets()["1"] == "off"
    lab.reboot("node-a", "node-a-boot-2")
    allowed = unfence(lab, "node-a")
    assert allowed.returncode == 0, allowed.stderr
    assert devices.switch.outlets() == {"1": "on", "2": "on"}


def unfence(lab, node: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stonewall", "--config", str(lab.configs[node]), "fabric",
         "unfence", "--node", node], capture_output=True, text=True, timeout=60,
        env=os.environ.copy())
