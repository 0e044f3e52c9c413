"""Fence devices driven by Debian's unmodified fence agents against lab SNMP devices on
127.0.0.1: an APC rack PDU (SNMPv3) and an Eaton ePDU (v2c) feeding one node's two power
supplies, and a switch's IF-MIB port table."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import AgentDevice, Node, Secret
from stonewall.fencing.agent_level import drive_group
from stonewall.power.agent import AgentAction, DeviceFailure, drive_device

from ..snmp_fixtures import (  # noqa: F401  (the snmp_device fixture)
    PDU1_KEY, PDU2_COMMUNITY, SWITCH_COMMUNITY, DeviceFactory, apc_outlet, eaton_outlet,
    secret_file, snmp_device, switch_port)

# fence-agents' Python start-up and a few snmpget runs per call, on a loaded machine.
SLACK = 4.0
EATON_CYCLING = 2  # the Eaton state that is neither on nor off


@pytest.fixture
def pdu_pair(snmp_device: DeviceFactory, tmp_path: Path):
    apc = snmp_device("apc-rpdu", community=None, v3_user="stonewall", v3_auth_key=PDU1_KEY)
    eaton = snmp_device("eaton-managed", community=PDU2_COMMUNITY)
    return apc, eaton, secret_file(tmp_path, "pdu1", PDU1_KEY), \
        secret_file(tmp_path, "pdu2", PDU2_COMMUNITY)


def node_with(group: str, *devices: AgentDevice) -> Node:
    return Node("node-a", 1, 0x1, fence_devices=((group, devices),))


def test_both_outlets_of_a_dual_psu_node_verified_off(pdu_pair):
    apc, eaton, key_file, community_file = pdu_pair
    node = node_with("pdu", apc_outlet(apc, 1, key_file), eaton_outlet(eaton, 1, community_file))
    result = drive_group(node, "pdu", AgentAction.OFF, Deadline.after(20), SYSTEM_CLOCK, {})
    assert result.verified, result.summary()
    assert apc.outlets() == {"1": "off", "2": "on"} and eaton.outlets() == {"1": "off", "2": "on"}
    for device in result.devices:
        off, status = device.calls
        assert (off.action, off.returncode) == (AgentAction.OFF, 0)
        assert (status.action, status.returncode) == (AgentAction.STATUS, 2)  # 2 = off
    assert "all 2 devices verified off" in result.summary()


def test_an_outlet_that_reads_neither_on_nor_off_fails_the_level_and_nothing_is_powered_on(
        snmp_device: DeviceFactory, tmp_path: Path):
    apc = snmp_device("apc-rpdu", community=None, v3_user="stonewall", v3_auth_key=PDU1_KEY)
    eaton = snmp_device("eaton-managed", community=PDU2_COMMUNITY, stuck={1: EATON_CYCLING})
    node = node_with("pdu", apc_outlet(apc, 1, secret_file(tmp_path, "k", PDU1_KEY)),
                     eaton_outlet(eaton, 1, secret_file(tmp_path, "c", PDU2_COMMUNITY)))
    result = drive_group(node, "pdu", AgentAction.OFF, Deadline.after(20), SYSTEM_CLOCK, {})
    assert not result.verified
    apc_result, eaton_result = result.devices
    assert apc_result.verified and apc.outlets()["1"] == "off"  # stays off: never powered on
    assert eaton_result.failure is DeviceFailure.REFUSED
    assert "Unable to obtain correct plug status" in eaton_result.calls[0].stderr
    assert "1 of 2 devices verified off" in result.summary()


def test_a_mute_pdu_costs_the_deadline_and_the_hung_agent_is_killed(pdu_pair):
    apc, eaton, key_file, community_file = pdu_pair
    apc.mute()
    # The agent's own timeouts (a login timeout of 30 s) are longer than the level's.
    node = node_with("pdu", apc_outlet(apc, 1, key_file, {"login_timeout": "30",
                                                          "shell_timeout": "30"}),
                     eaton_outlet(eaton, 1, community_file))
    began = time.monotonic()
    result = drive_group(node, "pdu", AgentAction.OFF, Deadline.after(5), SYSTEM_CLOCK, {})
    assert time.monotonic() - began < 5 + SLACK
    assert not result.verified
    muted, answered = result.devices
    assert muted.failure is DeviceFailure.TIMEOUT and muted.calls[0].returncode is None
    assert "killed at its deadline" in muted.summary()
    assert answered.verified  # the other PDU did its part, and its outlet stays off


def test_a_wrong_password_is_a_clear_refusal_that_never_shows_the_secret(
        snmp_device: DeviceFactory, tmp_path: Path):
    apc = snmp_device("apc-rpdu", community=None, v3_user="stonewall", v3_auth_key=PDU1_KEY)
    wrong = "not-the-key-5521"
    device = apc_outlet(apc, 1, secret_file(tmp_path, "wrong", wrong))
    result = drive_device(device, AgentAction.OFF, wrong, Deadline.after(15), SYSTEM_CLOCK)
    assert result.failure is DeviceFailure.REFUSED
    assert "Authentication failure" in result.summary()
    everything = json.dumps(asdict(result), default=str) + result.summary() + repr(device)
    assert wrong not in everything and PDU1_KEY not in everything
    assert apc.outlets()["1"] == "on"


def test_a_switch_port_is_verified_down_through_if_mib(snmp_device: DeviceFactory,
                                                       tmp_path: Path):
    switch = snmp_device("ifmib", community=SWITCH_COMMUNITY, outlets=4)
    community_file = secret_file(tmp_path, "switch", SWITCH_COMMUNITY)
    node = node_with("san", switch_port(switch, "port-2", community_file),
                     switch_port(switch, "port-3", community_file))
    result = drive_group(node, "san", AgentAction.OFF, Deadline.after(20), SYSTEM_CLOCK, {})
    assert result.verified, result.summary()
    assert switch.outlets() == {"1": "on", "2": "off", "3": "off", "4": "on"}
    assert [call.returncode for call in result.devices[0].calls] == [0, 2]


def test_a_missing_agent_names_the_package_to_install():
    device = AgentDevice("fence_no_such_device")
    result = drive_device(device, AgentAction.OFF, None, Deadline.after(5), SYSTEM_CLOCK)
    assert result.failure is DeviceFailure.NOT_INSTALLED
    assert "install the Debian package fence-agents" in result.summary()


@pytest.fixture
def redfish(tmp_path: Path):
    from stonewall.lab.redfish_process import RedfishEmulator, emulator_program

    if emulator_program() is None:
        pytest.skip("sushy-tools is not installed (pip install sushy-tools)")
    emulator = RedfishEmulator(tmp_path / "redfish").start()
    yield emulator
    emulator.stop()


def redfish_device(emulator, secret: str) -> AgentDevice:
    options = {"ip": emulator.host, "ipport": str(emulator.port), "username": "admin",
               "ssl_insecure": "1", "systems_uri": "/redfish/v1/Systems/test"}
    return AgentDevice("fence_redfish", tuple(sorted(options.items())),
                       Secret(file=secret), "password")


def test_a_redfish_system_is_verified_off_through_fence_redfish(redfish, tmp_path: Path):
    device = redfish_device(redfish, secret_file(tmp_path, "bmc", redfish.password))
    result = drive_device(device, AgentAction.OFF, redfish.password, Deadline.after(30),
                          SYSTEM_CLOCK)
    assert result.verified, result.summary()
    assert redfish.power_state() == "Off"
    assert [call.returncode for call in result.calls] == [0, 2]


def test_a_wrong_redfish_password_is_refused_and_never_shown(redfish, tmp_path: Path):
    wrong = "wrong-redfish-9931"
    device = redfish_device(redfish, secret_file(tmp_path, "bmc", wrong))
    result = drive_device(device, AgentAction.OFF, wrong, Deadline.after(30), SYSTEM_CLOCK)
    assert result.failure is DeviceFailure.REFUSED
    text = json.dumps(asdict(result), default=str) + result.summary()
    assert wrong not in text and redfish.password not in text
    assert redfish.power_state() == "On"
