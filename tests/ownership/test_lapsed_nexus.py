"""A control-path nexus that lost its registration on reconnect (tgtd ties a registration to
its session: a re-login is a new nexus, and the old entry lingers in READ KEYS until a PREEMPT
removes every entry of the key). The holder registers it again only on proof that the key is
still ours: READ KEYS lists it, and lists exactly one more entry after our REGISTER. Against
tgtd, node-b's holder in this process, node-a's holder a real process."""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.holder.node import NodeHolder
from stonewall.storage import ownership
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import PathKind

from ..sim_clock import SimClock
from .races import PreemptedBeforeRegistering

NODE_WIDE = ("arbiter0", "arbiter1", "data0")


def soon() -> Deadline:
    return Deadline.after(10)


def entries_of(observer, key: int) -> dict[str, int]:
    """LUN -> how many registrations of `key` READ KEYS lists (one per nexus)."""
    views = read_views(observer(), soon(), SYSTEM_CLOCK)
    return {lun: (views[lun].up_paths[0].keys or ()).count(key) for lun in NODE_WIDE}


@pytest.fixture
def holder_b(lab, monkeypatch) -> Iterator[NodeHolder]:
    """node-b's holder in this process, joined; node-a's holder runs beside it."""
    lab.start_holder("node-a")
    with lab.in_process_holder("node-b", monkeypatch) as holder:
        yield holder


def refresh_after_drop(holder: NodeHolder) -> list[str]:
    """holder.refresh once tgtd's closing of the sessions has reached them (tgtadm returns
    before the connections are gone)."""
    deadline = soon()
    while not deadline.expired():
        lines = holder.refresh(soon())
        if lines:
            return lines
        time.sleep(0.05)
    raise AssertionError("the holder never saw its sessions dropped")


def control_paths(holder: NodeHolder) -> list:
    return [p for lun in NODE_WIDE for p in holder.paths[lun] if p.kind is PathKind.CONTROL]


def test_lapsed_control_nexuses_are_registered_again_on_proof_and_can_fence(
        lab, tgtd, holder_b, observer):
    key_b = holder_b.node.key
    assert entries_of(observer, key_b) == {lun: 2 for lun in NODE_WIDE}
    tgtd.drop_connections(1, lab.cluster.initiator("node-b"))
    lines = refresh_after_drop(holder_b)
    paths = control_paths(holder_b)
    assert len(paths) == 6 and all(p.up and p.registered for p in paths), lines
    assert sum("registration lost after reconnect" in line for line in lines) == 6, lines
    assert sum("lapsed path registered" in line for line in lines) == 6, lines
    # The lapsed entries linger beside the new ones: two more per LUN.
    assert entries_of(observer, key_b) == {lun: 4 for lun in NODE_WIDE}
    assert not holder_b.boot_records.fenced_in_this_boot()
    outcome = holder_b.preempt("node-a", None, soon())
    assert outcome.fenced is True, outcome


def test_a_node_preempted_while_its_sessions_were_down_is_not_registered_again(
        lab, tgtd, holder_b, observer):
    key_b = holder_b.node.key
    tgtd.drop_connections(1, lab.cluster.initiator("node-b"))
    assert lab.client("node-a").preempt("node-b", None, soon()).fenced is True
    lines = refresh_after_drop(holder_b)
    assert not any(p.registered for p in control_paths(holder_b))
    assert any("lapsed path preempted meanwhile" in line for line in lines), lines
    assert holder_b.boot_records.fenced_in_this_boot()
    assert entries_of(observer, key_b) == {lun: 0 for lun in NODE_WIDE}
    assert holder_b.preempt("node-a", None, soon()).fenced is False


def test_a_preempt_between_the_count_and_the_register_is_undone(lab, tgtd, holder_b,
                                                                observer):
    key_b = holder_b.node.key
    tgtd.drop_connections(1, lab.cluster.initiator("node-b"))
    arbiter = [p for p in holder_b.paths["arbiter0"] if p.kind is PathKind.CONTROL]
    for path in arbiter:
        assert path.session is not None
        path.session.reconnect(soon())
        path.registered = False
    fenced: list = []
    first = arbiter[0]
    first.device = PreemptedBeforeRegistering(
        first.device, lambda: fenced.append(lab.client("node-a").preempt("node-b", None,
                                                                         soon())))
    clock = SimClock()
    result = ownership.adopt_path(first, holder_b.paths["arbiter0"], key_b,
                                  Deadline.after(10, clock), clock, lapsed=True)
    assert fenced and fenced[0].fenced is True
    assert result is ownership.AdoptResult.PREEMPTED
    assert first.registered is False
    assert entries_of(observer, key_b)["arbiter0"] == 0  # the REGISTER was withdrawn at once


def test_a_nexus_that_kept_its_registration_is_not_judged_by_the_count(holder_b, observer):
    """A real array keeps a reconnected initiator port's registration: REGISTER AND IGNORE
    would add no entry there, so the count must not be asked (it would read "preempted")."""
    key_b = holder_b.node.key
    path = control_paths(holder_b)[0]
    path.registered = False  # as after a reconnect whose probe could not answer
    others = [p for p in holder_b.paths[path.lun.name] if p is not path]
    for other in others:
        other.registered = False
    clock = SimClock()
    result = ownership.adopt_path(path, holder_b.paths[path.lun.name], key_b,
                                  Deadline.after(10, clock), clock, lapsed=True)
    assert result is ownership.AdoptResult.REGISTERED and path.registered
    assert entries_of(observer, key_b)[path.lun.name] == 2  # no entry added, none removed


def test_an_old_nexus_that_lapsed_itself_does_not_pass_for_a_preempt(lab, tgtd, holder_b,
                                                                    observer):
    """Nemesis seed 5: both control paths of a LUN came back as new nexuses; the first one
    adopted still looked registered to the holder, refused the probe, and was taken for
    proof of a PREEMPT (a false self-fence). The count says otherwise."""
    key_b = holder_b.node.key
    tgtd.drop_connections(1, lab.cluster.initiator("node-b"))
    first, second = [p for p in holder_b.paths["arbiter0"] if p.kind is PathKind.CONTROL]
    for path in (first, second):
        assert path.session is not None
        path.session.reconnect(soon())
    second.registered = False  # `first` still looks registered: not probed yet
    clock = SimClock()
    result = ownership.adopt_path(second, holder_b.paths["arbiter0"], key_b,
                                  Deadline.after(10, clock), clock, lapsed=True)
    assert result is ownership.AdoptResult.REGISTERED and second.registered
    assert entries_of(observer, key_b)["arbiter0"] == 3  # two lingering, one new
    assert not holder_b.boot_records.fenced_in_this_boot()
