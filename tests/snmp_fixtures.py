"""Lab SNMP devices (a PDU pair, a switch) for tests that drive them with the real fence
agents; every device started is stopped by PID at teardown."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stonewall.config.model import AgentDevice, Secret
from stonewall.lab.snmp_process import SnmpDeviceProcess

DeviceFactory = Callable[..., SnmpDeviceProcess]
PDU1_KEY = "pdu1-usm-key-417"  # the APC PDU's SNMPv3 user key (SHA auth)
PDU2_COMMUNITY = "pdu2-community-93"  # the Eaton PDU's v2c community
SWITCH_COMMUNITY = "switch-community-58"


@pytest.fixture
def snmp_device(tmp_path: Path) -> Iterator[DeviceFactory]:
    """start(model, **SnmpDeviceProcess options) -> a running device."""
    started: list[SnmpDeviceProcess] = []

    def start(model: str, **options: Any) -> SnmpDeviceProcess:
        device = SnmpDeviceProcess(tmp_path / f"snmp-{len(started)}-{model}", model, **options)
        started.append(device)
        return device.start()

    yield start
    for device in started:
        device.stop()


def secret_file(directory: Path, name: str, value: str) -> str:
    """A private file holding `value` (the secrets module refuses anything looser)."""
    path = directory / f"{name}.secret"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


def apc_outlet(pdu: SnmpDeviceProcess, plug: int, key_file: str,
               extra: dict[str, str] | None = None) -> AgentDevice:
    """fence_apc_snmp over SNMPv3 (authNoPriv, SHA), the key read from `key_file`."""
    options = {"ip": pdu.host, "ipport": str(pdu.port), "plug": str(plug),
               "snmp_version": "3", "username": "stonewall", "snmp_sec_level": "authNoPriv",
               "snmp_auth_prot": "SHA", **(extra or {})}
    return AgentDevice("fence_apc_snmp", tuple(sorted(options.items())), Secret(file=key_file),
                       "password")


def eaton_outlet(pdu: SnmpDeviceProcess, plug: int, community_file: str,
                 extra: dict[str, str] | None = None) -> AgentDevice:
    """fence_eaton_snmp over v2c, the community read from `community_file`."""
    options = {"ip": pdu.host, "ipport": str(pdu.port), "plug": str(plug),
               "snmp_version": "2c", "power_wait": "0", **(extra or {})}
    return AgentDevice("fence_eaton_snmp", tuple(sorted(options.items())),
                       Secret(file=community_file), "community")


def switch_port(switch: SnmpDeviceProcess, port: str, community_file: str) -> AgentDevice:
    """fence_ifmib over v2c: one port of the SAN switch, by its ifDescr name."""
    options = {"ip": switch.host, "ipport": str(switch.port), "plug": port,
               "snmp_version": "2c"}
    return AgentDevice("fence_ifmib", tuple(sorted(options.items())),
                       Secret(file=community_file), "community")
