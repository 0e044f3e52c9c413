"""Persistent reservations against a real tgtd, two initiators (node-a, node-b)."""
from __future__ import annotations

import time

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.lab.ports import free_port
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.errors import (
    CommandTimeout, ReservationConflict, TransportError, UnitAttention,
    UnsupportedServiceAction)
from stonewall.storage.scsi.iscsi import IscsiSession
from stonewall.storage.scsi.retry import RetryPolicy, RetryReport, run_with_retries
from stonewall.storage.scsi.sense import SenseKey
from stonewall.storage.scsi.status import raise_for_status
from stonewall.storage.scsi.types import ReservationType
from stonewall.lab.identities import ARRAY_IQN, NODE_A_IQN, NODE_B_IQN

KEY_A, KEY_B = 0x5357000000000001, 0x5357000000000002
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
BLOCK = 512


def soon() -> Deadline:
    return Deadline.after(5)


def write_block(session: IscsiSession, lba: int, payload: bytes) -> None:
    result = session.execute(cdb.write_10(lba, 1), soon(), data_out=payload.ljust(BLOCK, b"\0"))
    raise_for_status(result, f"WRITE(10) by {session.initiator}")


def read_block(session: IscsiSession, lba: int) -> bytes:
    result = session.execute(cdb.read_10(lba, 1), soon(), data_in_length=BLOCK)
    raise_for_status(result, "READ(10)")
    return result.data


@pytest.fixture
def two_nodes(sessions):
    a, b = sessions(NODE_A_IQN, portal_index=0), sessions(NODE_B_IQN, portal_index=1)
    dev_a, dev_b = CommandPrDevice(a), CommandPrDevice(b)
    dev_a.register(0, KEY_A, soon(), ignore_existing=True)
    dev_b.register(0, KEY_B, soon(), ignore_existing=True)
    return a, b, dev_a, dev_b


def test_register_reserve_and_read_back(two_nodes):
    _a, _b, dev_a, dev_b = two_nodes
    dev_a.reserve(KEY_A, WE_RO, soon())
    keys = dev_b.read_keys(soon())
    assert sorted(keys.keys) == [KEY_A, KEY_B]
    reservation = dev_b.read_reservation(soon())
    assert reservation.holder == KEY_A and reservation.type is WE_RO
    assert reservation.generation == keys.generation == 2  # one per successful PR OUT


def test_preempted_node_gets_unit_attention_then_conflict_on_write(two_nodes):
    a, b, dev_a, dev_b = two_nodes
    dev_a.reserve(KEY_A, WE_RO, soon())
    write_block(a, 0, b"node-a before the fence")
    dev_b.preempt(KEY_B, KEY_A, WE_RO, soon())

    assert dev_b.read_keys(soon()).keys == (KEY_B,)
    assert dev_b.read_reservation(soon()).holder == KEY_B
    with pytest.raises(UnitAttention) as attention:
        write_block(a, 0, b"node-a after the fence")
    assert attention.value.sense.is_(SenseKey.UNIT_ATTENTION, 0x2A, 0x03)
    with pytest.raises(ReservationConflict):
        write_block(a, 0, b"node-a after the fence")
    write_block(b, 1, b"node-b owns it now")
    assert read_block(b, 0).startswith(b"node-a before the fence")
    assert read_block(b, 1).startswith(b"node-b owns it now")


def test_retry_policy_consumes_the_unit_attention_and_reports_it(two_nodes):
    a, _b, dev_a, dev_b = two_nodes
    dev_a.reserve(KEY_A, WE_RO, soon())
    dev_b.preempt(KEY_B, KEY_A, WE_RO, soon())
    report = RetryReport()
    with pytest.raises(ReservationConflict):
        run_with_retries(lambda d: write_block(a, 0, b"x"), soon(), SYSTEM_CLOCK,
                         report=report)
    assert [(s.asc, s.ascq) for s in report.unit_attentions] == [(0x2A, 0x03)]


def test_unit_attention_retries_are_bounded(two_nodes):
    _a, _b, dev_a, _dev_b = two_nodes
    calls = []

    def always_attention(deadline):
        calls.append(deadline)
        dev_a.read_keys(deadline)  # real traffic, then the condition a target could repeat
        raise UnitAttention("repeated UNIT ATTENTION")

    with pytest.raises(UnitAttention):
        run_with_retries(always_attention, soon(), SYSTEM_CLOCK,
                         RetryPolicy(unit_attention_retries=3))
    assert len(calls) == 4


def test_preempt_and_abort_unsupported_then_preempt_fallback(two_nodes):
    _a, _b, dev_a, dev_b = two_nodes
    dev_a.reserve(KEY_A, WE_RO, soon())
    with pytest.raises(UnsupportedServiceAction):
        dev_b.preempt(KEY_B, KEY_A, WE_RO, soon(), abort=True)
    assert KEY_A in dev_b.read_keys(soon()).keys  # nothing happened
    dev_b.preempt(KEY_B, KEY_A, WE_RO, soon())
    assert dev_b.read_keys(soon()).keys == (KEY_B,)


def test_read_full_status_reported_unsupported(two_nodes):
    with pytest.raises(UnsupportedServiceAction):
        two_nodes[2].read_full_status(soon())


def test_report_capabilities_of_tgtd(two_nodes):
    caps = two_nodes[2].report_capabilities(soon())
    assert not caps.atp_c and caps.tmv and WE_RO in caps.types


def test_write_exclusive_type_1_only_holder_writes(two_nodes):
    a, b, dev_a, dev_b = two_nodes
    dev_a.reserve(KEY_A, ReservationType.WRITE_EXCLUSIVE, soon())
    assert dev_b.read_reservation(soon()).type is ReservationType.WRITE_EXCLUSIVE
    write_block(a, 2, b"guest on node-a")
    with pytest.raises(ReservationConflict):  # registered, but not the holder
        write_block(b, 2, b"guest started twice")
    assert read_block(b, 2).startswith(b"guest on node-a")  # reads stay allowed


def test_release_and_clear(two_nodes):
    _a, _b, dev_a, dev_b = two_nodes
    dev_a.reserve(KEY_A, WE_RO, soon())
    with pytest.raises(ReservationConflict):
        dev_b.reserve(KEY_B, WE_RO, soon())
    dev_a.release(KEY_A, WE_RO, soon())
    assert dev_b.read_reservation(soon()).holder is None
    dev_b.clear(KEY_B, soon())
    # CLEAR raises a UNIT ATTENTION (2A/xx: tgtd says 2A/03) on the other registered nexuses:
    # re-issue, as the policy says.
    report = RetryReport()
    assert run_with_retries(dev_a.read_keys, soon(), SYSTEM_CLOCK, report=report).keys == ()
    assert [s.asc for s in report.unit_attentions] == [0x2A]


def test_unregister_with_register_to_zero(two_nodes):
    _a, _b, dev_a, dev_b = two_nodes
    dev_a.register(KEY_A, 0, soon())
    assert dev_b.read_keys(soon()).keys == (KEY_B,)


def test_unregistered_nexus_cannot_preempt(sessions, two_nodes):
    # A fresh session of node-a is a new I_T nexus on tgtd: not registered (scsi-pr.md).
    _a, _b, dev_a, _dev_b = two_nodes
    dev_a.reserve(KEY_A, WE_RO, soon())
    stranger = CommandPrDevice(sessions(NODE_A_IQN, portal_index=1))
    with pytest.raises(ReservationConflict):
        stranger.preempt(KEY_A, KEY_B, WE_RO, soon())


def test_key_list_longer_than_first_allocation_is_read_whole(sessions):
    reader = CommandPrDevice(sessions(NODE_A_IQN), first_allocation_length=16)
    for index in range(5):
        CommandPrDevice(sessions(f"{NODE_B_IQN}-{index}")).register(
            0, 0x100 + index, soon(), ignore_existing=True)
    assert sorted(reader.read_keys(soon()).keys) == [0x100 + i for i in range(5)]


def test_more_nexuses_than_the_default_allocation_holds(sessions):
    count = 70  # 70 keys = 568 bytes, more than the default 512-byte first read
    for index in range(count):
        CommandPrDevice(sessions(f"{NODE_B_IQN}-{index}", portal_index=index % 2)).register(
            0, 0x1000 + index, soon(), ignore_existing=True)
    keys = CommandPrDevice(sessions(NODE_A_IQN)).read_keys(soon()).keys
    assert len(keys) == count and sorted(keys) == [0x1000 + i for i in range(count)]


def test_both_paths_are_separate_nexuses(sessions):
    on_path_1 = CommandPrDevice(sessions(NODE_A_IQN, portal_index=0))
    on_path_2 = CommandPrDevice(sessions(NODE_A_IQN, portal_index=1))
    on_path_1.register(0, KEY_A, soon(), ignore_existing=True)
    on_path_2.register(0, KEY_A, soon(), ignore_existing=True)
    assert on_path_1.read_keys(soon()).keys == (KEY_A, KEY_A)


def test_hung_target_times_out_within_the_deadline(tgtd, sessions):
    session = sessions(NODE_A_IQN)
    tgtd.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            CommandPrDevice(session).read_keys(Deadline.after(0.5))
        assert time.monotonic() - started < 1.5
        assert not session.connected  # a session with a command in limbo is dropped
    finally:
        tgtd.thaw()


def test_unreachable_portal_is_a_transport_error():
    session = IscsiSession(f"127.0.0.1:{free_port()}", ARRAY_IQN, 1, NODE_A_IQN)
    with pytest.raises(TransportError, match="login failed"):
        session.connect(soon())
    assert not session.connected


def test_unknown_target_fails_login(tgtd):
    session = IscsiSession(tgtd.portals[0], ARRAY_IQN + "-missing", 1, NODE_A_IQN)
    with pytest.raises(TransportError):
        session.connect(soon())


def test_dropped_connection_is_reported_and_reconnect_restores_io(tgtd, sessions):
    session = sessions(NODE_A_IQN)
    device = CommandPrDevice(session)
    device.register(0, KEY_A, soon(), ignore_existing=True)
    assert tgtd.drop_connections(1, NODE_A_IQN) == 1
    with pytest.raises(TransportError):
        device.read_keys(soon())
    session.reconnect(soon())
    # tgtd ties a registration to the old session: the key is still listed, but the new
    # nexus is not registered and may not act with it (reference/scsi-pr.md, measured).
    assert device.read_keys(soon()).keys == (KEY_A,)
    with pytest.raises(ReservationConflict):
        device.reserve(KEY_A, WE_RO, soon())
