"""`drbdsetup status --json`: the real sample parses, malformed output is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from stonewall.storage.drbd.status import (
    ConnectionState,
    DiskState,
    DrbdStatusError,
    ReplicationState,
    Role,
    parse_status_json,
)

SAMPLE = (Path(__file__).parent / "fixtures" / "status-ha-cluster-exporter.json").read_text()


def test_real_status_sample_gives_resource_device_connection_and_peer_device() -> None:
    (resource,) = parse_status_json(SAMPLE)

    assert resource.name == "1-single-0" and resource.node_id == 1
    assert resource.role is Role.PRIMARY and resource.suspended is False
    assert resource.suspended_fencing is None  # older utils do not print it
    (device,) = resource.devices
    assert (device.volume, device.minor, device.disk_state) == (0, 2, DiskState.UP_TO_DATE)
    assert device.client is False and device.quorum is True and device.open is None
    (connection,) = resource.connections
    assert connection.peer_node_id == 2
    assert connection.name == "SLE15-sp1-gm-drbd1145296-node2"
    assert connection.connection_state is ConnectionState.CONNECTED
    assert connection.peer_role is Role.SECONDARY
    (peer_device,) = connection.peer_devices
    assert peer_device.volume == 0
    assert peer_device.replication_state is ReplicationState.ESTABLISHED
    assert peer_device.peer_disk_state is DiskState.UP_TO_DATE
    assert peer_device.peer_client is False
    assert peer_device.resync_suspended == "no" and peer_device.out_of_sync_kib == 0
    assert resource.connection(2) is connection and resource.connection(5) is None


def _resource(**overrides: object) -> str:
    resource: dict[str, object] = {"name": "r0", "node-id": 0, "role": "Primary",
                                   "devices": [], "connections": []}
    resource.update(overrides)
    return json.dumps([resource])


def test_newer_utils_report_io_frozen_by_fencing() -> None:
    (resource,) = parse_status_json(_resource(**{
        "suspended": True, "suspended-user": False, "suspended-no-data": False,
        "suspended-fencing": True, "suspended-quorum": False,
        "connections": [{"peer-node-id": 1, "name": "kvm-b",
                         "connection-state": "Connecting", "peer-role": "Unknown",
                         "tls": False, "paths": [], "peer_devices": [
                             {"volume": 0, "replication-state": "Off",
                              "peer-disk-state": "DUnknown"}]}]}))

    assert resource.suspended is True and resource.suspended_fencing is True
    connection = resource.connection(1)
    assert connection is not None
    assert connection.connection_state is ConnectionState.CONNECTING
    assert connection.peer_devices[0].peer_disk_state is DiskState.UNKNOWN


def test_a_resource_without_node_id_reports_none() -> None:
    (resource,) = parse_status_json(_resource(**{"node-id": -1}))

    assert resource.node_id is None


def test_only_identifying_keys_are_required() -> None:
    (resource,) = parse_status_json(json.dumps([{
        "name": "r0", "devices": [{"volume": 0, "minor": 5}],
        "connections": [{"peer-node-id": 1, "peer_devices": [{"volume": 0}]}]}]))

    assert resource.role is None and resource.devices[0].disk_state is None
    assert resource.connections[0].peer_devices[0].peer_disk_state is None


def test_no_resources_is_an_empty_tuple() -> None:
    assert parse_status_json("[\n]\n") == ()


MALFORMED = [
    ("not-json", "drbdsetup: unrecognized option '--json'", "not JSON"),
    ("not-a-list", json.dumps({"name": "r0"}), "array"),
    ("resource-not-object", json.dumps(["r0"]), "object"),
    ("missing-name", json.dumps([{"role": "Primary"}]), "'name'"),
    ("empty-name", json.dumps([{"name": ""}]), "'name'"),
    ("name-not-string", json.dumps([{"name": 5}]), "name"),
    ("unknown-role", _resource(role="Master"), "role"),
    ("suspended-as-string", _resource(suspended="no"), "suspended"),
    ("devices-not-list", _resource(devices={}), "devices"),
    ("device-without-minor", _resource(devices=[{"volume": 0}]), "'minor'"),
    ("minor-as-string", _resource(devices=[{"volume": 0, "minor": "2"}]), "minor"),
    ("minor-as-bool", _resource(devices=[{"volume": 0, "minor": True}]), "minor"),
    ("unknown-disk-state", _resource(devices=[{"volume": 0, "minor": 1,
                                               "disk-state": "UpToDateish"}]), "disk-state"),
    ("connection-without-peer", _resource(connections=[{"name": "kvm-b"}]), "'peer-node-id'"),
    ("unknown-connection-state", _resource(connections=[
        {"peer-node-id": 1, "connection-state": "WFConnection"}]), "connection-state"),
    ("peer-devices-not-list", _resource(connections=[
        {"peer-node-id": 1, "peer_devices": "none"}]), "peer_devices"),
    ("peer-device-without-volume", _resource(connections=[
        {"peer-node-id": 1, "peer_devices": [{"peer-disk-state": "UpToDate"}]}]), "'volume'"),
    ("unknown-replication-state", _resource(connections=[
        {"peer-node-id": 1, "peer_devices": [{"volume": 0, "replication-state": "Syncing"}]}]),
     "replication-state"),
]


@pytest.mark.parametrize("text, words", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_status_is_refused_naming_the_field(text: str, words: str) -> None:
    with pytest.raises(DrbdStatusError, match=words):
        parse_status_json(text)
