"""`drbdsetup events2` lines: real fixtures parse into typed events, bad lines are refused."""
from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path

import pytest

from stonewall.storage.drbd.env import AddressFamily
from stonewall.storage.drbd.events import (
    ConnectionEvent,
    DeviceEvent,
    EventParseError,
    EventVerb,
    HelperEvent,
    InitialStateDone,
    PathEvent,
    PeerDeviceEvent,
    ResourceEvent,
    SuspendReason,
    parse_event_line,
    parse_event_lines,
)
from stonewall.storage.drbd.status import ConnectionState, DiskState, ReplicationState, Role

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines(keepends=True)


def test_drbd_utils_sync_fixture_parses_into_typed_events() -> None:
    events = list(parse_event_lines(_fixture_lines("events2-sync.txt")))

    assert [type(e) for e in events] == [
        InitialStateDone, ResourceEvent, DeviceEvent, ConnectionEvent, PeerDeviceEvent,
        PathEvent, DeviceEvent, ConnectionEvent, PeerDeviceEvent, HelperEvent, HelperEvent]
    done, resource, device, connection, peer_device, path, attached, connected, syncing, \
        call, response = events
    assert done.verb is EventVerb.EXISTS and done.timestamp is None

    assert isinstance(resource, ResourceEvent) and resource.verb is EventVerb.CREATE
    assert (resource.name, resource.role) == ("some-resource", Role.SECONDARY)
    assert resource.suspended == frozenset() and resource.may_promote is False
    assert resource.promotion_score == 0
    assert resource.extra == {"force-io-failures": "no"}

    assert isinstance(device, DeviceEvent)
    assert (device.volume, device.minor, device.disk) == (0, 1000, DiskState.DISKLESS)
    assert device.backing_dev == "none" and device.quorum is True and device.open is False

    assert isinstance(connection, ConnectionEvent)
    assert (connection.peer_node_id, connection.conn_name) == (1, "some-peer")
    assert connection.connection is ConnectionState.STANDALONE
    assert connection.role is Role.UNKNOWN

    assert isinstance(peer_device, PeerDeviceEvent)
    assert peer_device.replication is ReplicationState.OFF
    assert peer_device.peer_disk is DiskState.UNKNOWN and peer_device.peer_client is False

    assert isinstance(path, PathEvent)
    assert path.local.family is AddressFamily.IPV4
    assert (str(path.local.ip), path.local.port) == ("1.2.3.4", 7789)
    assert (str(path.peer.ip), path.peer.port) == ("5.6.7.8", 7790)
    assert path.established is False

    assert isinstance(attached, DeviceEvent) and attached.verb is EventVerb.CHANGE
    assert attached.disk is DiskState.UP_TO_DATE and attached.backing_dev == "/dev/sda"
    assert isinstance(connected, ConnectionEvent)
    assert connected.connection is ConnectionState.CONNECTED and connected.role is Role.SECONDARY
    assert isinstance(syncing, PeerDeviceEvent)
    assert syncing.replication is ReplicationState.SYNC_SOURCE
    assert syncing.peer_disk is DiskState.INCONSISTENT and syncing.done == 37.5

    assert isinstance(call, HelperEvent) and call.verb is EventVerb.CALL
    assert (call.helper, call.peer_node_id, call.volume, call.status) == \
        ("before-resync-target", 1, 0, None)
    assert isinstance(response, HelperEvent) and response.verb is EventVerb.RESPONSE
    assert response.status is not None and response.status.raw == 1


def test_statistics_now_dump_keeps_statistics_as_extra_and_ends_with_exists_dash() -> None:
    events = list(parse_event_lines(_fixture_lines("events2-statistics-now.txt")))

    assert all(e.verb is EventVerb.EXISTS for e in events)
    assert isinstance(events[-1], InitialStateDone)
    resource, connection, device, peer_device = events[:4]
    assert isinstance(resource, ResourceEvent) and resource.role is Role.PRIMARY
    assert resource.extra == {"write-ordering": "flush"}
    assert isinstance(connection, ConnectionEvent) and connection.peer_node_id == 0
    assert connection.extra == {"congested": "no"}
    assert isinstance(device, DeviceEvent) and device.extra["size"] == "31455260"
    assert device.disk is DiskState.UP_TO_DATE
    assert isinstance(peer_device, PeerDeviceEvent)
    assert peer_device.peer_disk is DiskState.UP_TO_DATE
    assert peer_device.extra["out-of-sync"] == "0"


def test_resource_exists_fixture() -> None:
    (event,) = parse_event_lines(_fixture_lines("events2-resource-exists.txt"))

    assert isinstance(event, ResourceEvent) and event.verb is EventVerb.EXISTS
    assert event.name == "some-resource" and event.may_promote is False


def test_timestamps_prefix_becomes_an_aware_datetime() -> None:
    event = parse_event_line("2026-08-01T10:15:30.123456+02:00 change connection name:r0 "
                             "peer-node-id:1 conn-name:kvm-b connection:NetworkFailure\n")

    assert event.timestamp is not None
    assert event.timestamp.utcoffset() == timedelta(hours=2)
    assert event.timestamp.microsecond == 123456
    assert isinstance(event, ConnectionEvent)
    assert event.connection is ConnectionState.NETWORK_FAILURE


def test_timestamp_with_negative_offset() -> None:
    event = parse_event_line("2026-08-01T10:15:30.000001-03:30 exists -")

    assert isinstance(event, InitialStateDone)
    assert event.timestamp is not None
    assert event.timestamp.utcoffset() == -timedelta(hours=3, minutes=30)


def test_io_frozen_by_fencing_shows_as_a_suspend_reason() -> None:
    event = parse_event_line("change resource name:r0 suspended:user,fencing")

    assert isinstance(event, ResourceEvent)
    assert event.suspended == {SuspendReason.USER, SuspendReason.FENCING}
    assert event.role is None  # a change line carries only what changed


def test_fence_peer_response_status_is_the_raw_wait_status() -> None:
    event = parse_event_line("response helper name:r0 peer-node-id:1 conn-name:peer "
                             "helper:fence-peer status:1024")

    assert isinstance(event, HelperEvent) and event.helper == "fence-peer"
    assert event.status is not None and event.status.exit_code == 4


def test_helper_addresses_and_minor_are_kept() -> None:
    event = parse_event_line("call helper name:r0 peer-node-id:1 conn-name:peer "
                             "local:ipv4:192.0.2.1:7789 peer:ipv4:192.0.2.2:7789 volume:0 "
                             "minor:3 helper:split-brain")

    assert isinstance(event, HelperEvent) and event.minor == 3
    assert event.extra == {"local": "ipv4:192.0.2.1:7789", "peer": "ipv4:192.0.2.2:7789"}


def test_ipv6_path_endpoints() -> None:
    event = parse_event_line("create path name:r0 peer-node-id:1 conn-name:kvm-b "
                             "local:ipv6:[fd00::1]:7789 peer:ipv6:[fd00::2]:7789 established:yes")

    assert isinstance(event, PathEvent) and event.established is True
    assert event.peer.ip == ipaddress.IPv6Address("fd00::2") and event.peer.port == 7789


def test_split_brain_shows_as_sync_state_on_a_standalone_connection() -> None:
    event = parse_event_line("change connection name:r0 peer-node-id:1 conn-name:kvm-b "
                             "connection:StandAlone sync-state:SplitBrain")

    assert isinstance(event, ConnectionEvent) and event.sync_state == "SplitBrain"


def test_rename_and_destroy_lines() -> None:
    renamed = parse_event_line("rename resource name:old new_name:new")
    destroyed = parse_event_line("destroy device name:r0 volume:1")

    assert isinstance(renamed, ResourceEvent) and renamed.new_name == "new"
    assert isinstance(destroyed, DeviceEvent) and destroyed.minor is None


def test_open_unknown_is_none() -> None:
    event = parse_event_line("change device name:r0 volume:0 minor:0 open:unknown")

    assert isinstance(event, DeviceEvent) and event.open is None


MALFORMED = [
    ("empty", "", "separated by single spaces"),
    ("verb-only", "exists", "separated by single spaces"),
    ("double-space", "change  resource name:r0", "separated by single spaces"),
    ("unknown-verb", "modify resource name:r0", "verb 'modify'"),
    ("unknown-object", "create widget name:r0", "unknown object 'widget'"),
    ("dash-with-fields", "exists - name:r0", "'exists -'"),
    ("change-dash", "change -", "'exists -'"),
    ("not-key-value", "change resource name:r0 Primary", "is not key:value"),
    ("empty-key", "change resource :r0", "is not key:value"),
    ("duplicate-key", "change resource name:r0 name:r1", "appears twice"),
    ("missing-name", "change resource role:Primary", "'name'"),
    ("empty-name", "change resource name:", "'name'"),
    ("device-without-volume", "change device name:r0 minor:1", "'volume'"),
    ("volume-word", "change device name:r0 volume:x", "volume:x"),
    ("yes-no-other", "change device name:r0 volume:0 open:maybe", "open:maybe"),
    ("unknown-disk", "change device name:r0 volume:0 disk:Fine", "disk 'Fine'"),
    ("diff-output", "change resource name:r0 role:Secondary->Primary", "role"),
    ("unknown-suspend-reason", "change resource name:r0 suspended:tired", "suspended"),
    ("score-word", "change resource name:r0 promotion_score:high", "promotion_score"),
    ("done-word", "change peer-device name:r0 peer-node-id:1 conn-name:p volume:0 done:half",
     "done:half"),
    ("connection-without-peer", "change connection name:r0 conn-name:p", "'peer-node-id'"),
    ("helper-change", "change helper name:r0 helper:fence-peer", "'call' or 'response'"),
    ("call-with-status", "call helper name:r0 helper:fence-peer status:0", "'status'"),
    ("response-without-status", "response helper name:r0 helper:fence-peer", "'status'"),
    ("status-too-big", "response helper name:r0 helper:fence-peer status:4294967296",
     "outside"),
    ("endpoint-without-port", "create path name:r0 peer-node-id:1 conn-name:p "
                              "local:ipv4:1.2.3.4 peer:ipv4:5.6.7.8:1", "local:"),
    ("ipv6-without-brackets", "create path name:r0 peer-node-id:1 conn-name:p "
                              "local:ipv6:fd00::1:7789 peer:ipv4:5.6.7.8:1", "local:"),
    ("port-too-big", "create path name:r0 peer-node-id:1 conn-name:p "
                     "local:ipv4:1.2.3.4:70000 peer:ipv4:5.6.7.8:1", "local:"),
    ("unknown-family", "create path name:r0 peer-node-id:1 conn-name:p "
                       "local:ipx:1.2.3.4:1 peer:ipv4:5.6.7.8:1", "address family"),
    ("path-without-peer", "create path name:r0 peer-node-id:1 conn-name:p "
                          "local:ipv4:1.2.3.4:1", "'peer'"),
]


@pytest.mark.parametrize("line, words", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_lines_are_refused(line: str, words: str) -> None:
    with pytest.raises(EventParseError, match=re.escape(words)):
        parse_event_line(line)


def test_a_bad_line_in_a_dump_stops_the_parse_there() -> None:
    lines = ["exists resource name:r0 role:Primary", "exists bogus", "exists -"]
    parsed = parse_event_lines(lines)

    assert isinstance(next(parsed), ResourceEvent)
    with pytest.raises(EventParseError):
        next(parsed)
