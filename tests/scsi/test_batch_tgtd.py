"""Operations batched on one poll loop (storage/scsi/batch.py), against a real tgtd."""
from __future__ import annotations

import threading
import time

from stonewall.bounded import Abandoned
from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.lab.identities import NODE_A_IQN, NODE_B_IQN
from stonewall.storage.scsi.batch import run_all
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.errors import CommandTimeout, ReservationConflict
from stonewall.storage.scsi.iscsi import dropped_sessions
from stonewall.storage.scsi.retry import RetryReport, retrying
from stonewall.storage.scsi.steps import Blocking, Steps
from stonewall.storage.scsi.types import ReservationType

KEY_A, KEY_B = 0x5357000000000001, 0x5357000000000002
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


def soon() -> Deadline:
    return Deadline.after(5)


def test_one_batch_reads_every_path_and_keeps_the_order(sessions):
    opened = [sessions(NODE_A_IQN, lun=lun, portal_index=portal)
              for lun in (1, 2, 3, 4) for portal in (0, 1)]
    devices = [CommandPrDevice(session) for session in opened]
    for lun_index in (0, 2):  # LUNs 1 and 2, each registered through its first path
        devices[lun_index * 2].register(0, KEY_A + lun_index, soon(), ignore_existing=True)
    answers = run_all([device.pr_steps().read_keys() for device in devices], soon())
    assert [answer.keys for answer in answers] == [
        (KEY_A,), (KEY_A,), (), (), (KEY_A + 2,), (KEY_A + 2,), (), ()]


def test_a_preempted_nexus_unit_attention_is_consumed_inside_the_batch(sessions):
    a, b = sessions(NODE_A_IQN), sessions(NODE_B_IQN, portal_index=1)
    dev_a, dev_b = CommandPrDevice(a), CommandPrDevice(b)
    dev_a.register(0, KEY_A, soon(), ignore_existing=True)
    dev_b.register(0, KEY_B, soon(), ignore_existing=True)
    dev_a.reserve(KEY_A, WE_RO, soon())
    dev_b.preempt(KEY_B, KEY_A, WE_RO, soon())
    report = RetryReport()
    [keys] = run_all([retrying(dev_a.pr_steps().read_keys, soon(), SYSTEM_CLOCK,
                               report=report)], soon())
    assert keys.keys == (KEY_B,)
    assert len(report.unit_attentions) == 1  # RESERVATIONS PREEMPTED, re-issued once


def test_the_targets_answer_is_thrown_into_the_operation(sessions):
    unregistered = CommandPrDevice(sessions(NODE_A_IQN))
    CommandPrDevice(sessions(NODE_B_IQN)).register(0, KEY_B, soon(), ignore_existing=True)

    def preempt_or_say_why() -> Steps[str]:
        try:
            yield from unregistered.pr_steps().preempt(KEY_A, KEY_B, WE_RO)
        except ReservationConflict:
            return "refused: not registered"
        return "preempted"

    assert run_all([preempt_or_say_why()], soon()) == ["refused: not registered"]


def test_blocking_steps_run_on_workers_beside_the_exchanges(sessions):
    device = CommandPrDevice(sessions(NODE_A_IQN))
    device.register(0, KEY_A, soon(), ignore_existing=True)
    seen: list[str] = []

    def slow_call() -> Steps[str]:
        return (yield Blocking(lambda _deadline: seen.append(threading.current_thread().name)
                               or "called"))

    keys, called = run_all([device.pr_steps().read_keys(), slow_call()], soon())
    assert keys.keys == (KEY_A,) and called == "called"
    assert seen and seen[0].startswith("stonewall-batch")


def test_a_blocking_call_past_the_deadline_is_abandoned():
    def sleeper() -> Steps[None]:
        yield Blocking(lambda _deadline: time.sleep(1.0))

    [result] = run_all([sleeper()], Deadline.after(0.2))
    assert isinstance(result, Abandoned)


def test_a_session_busy_in_another_thread_is_waited_for(sessions):
    session = sessions(NODE_A_IQN)
    device = CommandPrDevice(session)
    device.register(0, KEY_A, soon(), ignore_existing=True)
    session.lock.acquire()
    releaser = threading.Timer(0.2, session.lock.release)
    releaser.start()
    try:
        [keys] = run_all([device.pr_steps().read_keys()], soon())
    finally:
        releaser.join()
    assert keys.keys == (KEY_A,)
    assert not session.lock.locked()


def test_a_hung_target_ends_the_batch_at_its_deadline(tgtd, sessions):
    opened = [sessions(NODE_A_IQN, lun=lun) for lun in (1, 2)]
    tgtd.freeze()
    try:
        started = time.monotonic()
        answers = run_all([CommandPrDevice(s).pr_steps().read_keys() for s in opened],
                          Deadline.after(0.5))
        assert time.monotonic() - started < 1.5
    finally:
        tgtd.thaw()
    assert all(isinstance(answer, CommandTimeout) for answer in answers)
    assert not any(s.connected for s in opened)  # a command in limbo drops its session
    assert not any(s.lock.locked() for s in opened)


def test_dropped_sessions_are_found_with_one_poll(tgtd, sessions):
    kept, lost = sessions(NODE_A_IQN), sessions(NODE_B_IQN)
    assert tgtd.drop_connections(1, NODE_B_IQN) == 1
    deadline = Deadline.after(2)
    found: list[object] = []
    while not found and not deadline.expired():  # tgtd closes the socket asynchronously
        found = dropped_sessions([kept, lost])
        time.sleep(0.01)
    assert found == [lost]
    assert kept.connected and not lost.connected
