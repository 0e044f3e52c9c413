"""The data path (DESIGN sections 1 and 3), against tgtd: a node's guests write through its
kernel's nexuses (lab/kernel_standin.py: the nexus stand-in behind per-path devices and a multipath
map), never through the service's control sessions, and ownership is proven there.

web1-disk is a guest LUN (type 7, Write Exclusive – All Registrants): a node is registered on
it only while it claims it for its guest."""
from __future__ import annotations

from typing import Iterator

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import LunRole
from stonewall.holder.node import NodeHolder
from stonewall.storage import ownership
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import PathKind, new_data_paths
from stonewall.storage.scsi.types import ReservationType

from ..sim_clock import SimClock
from .races import PreemptedBeforeRegistering

GUEST_LUN = "web1-disk"


def soon() -> Deadline:
    return Deadline.after(10)


def write_on_every_path(lab, node: str) -> dict[str, str]:
    return lab.write_on_every_path(node, GUEST_LUN)


def guest_lun_keys(observer) -> tuple[int, ...]:
    view = read_views(observer(), soon(), SYSTEM_CLOCK)[GUEST_LUN]
    return tuple(sorted(k for path in view.up_paths[:1] for k in (path.keys or ())))


def test_the_owners_writes_succeed_on_every_path_and_fail_on_every_path_after_a_fence(
        lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    config = lab.config("node-a")
    key_a, key_b = config.node("node-a").key, config.node("node-b").key
    claimed = lab.client("node-a").claim(GUEST_LUN, soon())
    assert claimed.ok is True, claimed
    before = write_on_every_path(lab, "node-a")
    assert len(before) == 2 and set(before.values()) == {"written"}, before
    # READ KEYS lists one entry per registered nexus: two data paths and two control paths.
    assert guest_lun_keys(observer) == (key_a,) * 4
    outcome = lab.client("node-b").preempt("node-a", None, soon())
    assert outcome.fenced is True, outcome
    after = write_on_every_path(lab, "node-a")
    assert set(after.values()) == {"ReservationConflict"}, after
    # The fencer joined the guest LUN on its control path to preempt there, and stays: the
    # all-registrants reservation outlives the victim, so its stale guest stays refused.
    assert guest_lun_keys(observer) == (key_b, key_b)
    reservation = read_views(observer(), soon(), SYSTEM_CLOCK)[GUEST_LUN].reservation()
    assert reservation is not None
    assert reservation.type is ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS


def test_a_node_that_is_not_registered_cannot_write_even_around_our_tools(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    # Before any claim the LUN carries no reservation; node-a claims it for its guest.
    assert lab.client("node-a").claim(GUEST_LUN, soon()).ok is True
    # node-b's kernel writes straight down its own paths, as a raw dd would.
    assert set(write_on_every_path(lab, "node-b").values()) == {"ReservationConflict"}
    refused = lab.client("node-b").claim(GUEST_LUN, soon())
    assert refused.ok is False and "node-a" in refused.detail, refused
    assert set(write_on_every_path(lab, "node-a").values()) == {"written"}


def test_a_release_after_the_stop_lets_the_other_node_claim_and_write(lab, observer):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    key_b = lab.config("node-a").node("node-b").key
    assert lab.client("node-a").claim(GUEST_LUN, soon()).ok is True
    released = lab.client("node-a").release(GUEST_LUN, soon())
    assert released.ok is True, released
    assert guest_lun_keys(observer) == ()
    assert lab.client("node-b").claim(GUEST_LUN, soon()).ok is True
    assert guest_lun_keys(observer) == (key_b,) * 4
    assert set(write_on_every_path(lab, "node-b").values()) == {"written"}
    assert set(write_on_every_path(lab, "node-a").values()) == {"ReservationConflict"}


def test_claims_are_refused_for_other_luns_and_in_a_fenced_boot(lab):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    with pytest.raises(Exception, match="not a guest LUN"):
        lab.client("node-a").claim("arbiter0", soon())
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    lab.client("node-a").preempt("node-b", ["arbiter0"], soon())  # learns it lost
    with pytest.raises(Exception, match="fenced in boot"):
        lab.client("node-a").claim(GUEST_LUN, soon())


# -- paths that appear while the node owns the LUN (in-process holder) ----------------------
@pytest.fixture
def spare_portal(lab, tgtd) -> str:
    """node-a's kernel gets a third path to the array, logged in but not shown yet."""
    lab.cluster.portals_of["node-a"] = list(tgtd.portals)
    portal = tgtd.add_portal()
    lab.cluster.start_kernel("node-a", Deadline.after(20), spare_portals=[portal])
    return portal


@pytest.fixture
def holder_a(lab, spare_portal, monkeypatch) -> Iterator[NodeHolder]:
    """node-a's holder in this process (its sg_persist runs see node-a's kernel devices)."""
    with lab.in_process_holder("node-a", monkeypatch) as holder:
        yield holder


def test_a_path_added_while_owning_is_registered_before_it_carries_a_write(
        lab, holder_a, spare_portal, observer):
    key_a = lab.config("node-a").node("node-a").key
    assert holder_a.claim(GUEST_LUN, soon()).ok
    lab.cluster.kernels["node-a"].add_path(spare_portal)
    report, lines = holder_a.check_own(soon())
    assert report.proven, report
    assert len(lines) == 1 and "new path registered" in lines[0], lines
    data = [p for p in holder_a.paths[GUEST_LUN] if p.kind is PathKind.DATA]
    assert len(data) == 3 and all(p.registered for p in data)
    assert guest_lun_keys(observer) == (key_a,) * 5  # three data paths, two control paths
    assert set(write_on_every_path(lab, "node-a").values()) == {"written"}


def test_a_fenced_node_gets_no_registration_through_a_new_path(lab, holder_a, spare_portal,
                                                              observer):
    lab.start_holder("node-b")
    assert holder_a.claim(GUEST_LUN, soon()).ok
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    lab.cluster.kernels["node-a"].add_path(spare_portal)
    report, lines = holder_a.check_own(soon())
    assert not report.proven
    assert any("new path preempted meanwhile" in line for line in lines), lines
    assert holder_a.boot_records.fenced_in_this_boot()
    key_a = lab.config("node-a").node("node-a").key
    assert key_a not in guest_lun_keys(observer)
    assert set(write_on_every_path(lab, "node-a").values()) == {"ReservationConflict"}


def test_a_preempt_between_our_look_and_the_new_paths_register_is_undone(
        lab, holder_a, spare_portal, observer):
    lab.start_holder("node-b")
    clock = SimClock()
    config = holder_a.config
    key_a = config.node("node-a").key
    assert holder_a.claim(GUEST_LUN, soon()).ok
    kernel = lab.cluster.kernels["node-a"]
    kernel.add_path(spare_portal)
    (new,) = new_data_paths(config.lun(GUEST_LUN), holder_a.paths[GUEST_LUN],
                            holder_a.kernel.discover(), kernel.dev)
    fenced: list[dict] = []
    new.device = PreemptedBeforeRegistering(
        new.device, lambda: fenced.append(lab.client("node-b").preempt("node-a", None, soon())))
    lun_paths = holder_a.paths[GUEST_LUN] + [new]
    result = ownership.adopt_path(new, lun_paths, key_a, Deadline.after(10, clock), clock)
    assert fenced and fenced[0].fenced is True
    assert result is ownership.AdoptResult.PREEMPTED
    assert new.registered is False
    assert key_a not in guest_lun_keys(observer)  # the REGISTER was withdrawn at once
    assert config.lun(GUEST_LUN).role is LunRole.GUEST


def test_a_restarted_service_finds_the_guest_luns_its_data_path_still_carries(lab):
    holder = lab.start_holder("node-a")
    assert lab.client("node-a").claim(GUEST_LUN, soon()).ok is True
    holder.stop()  # the guest keeps running: the kernel keeps its registered nexuses
    lab.start_holder("node-a")
    state = lab.client("node-a").state(soon())
    assert state.guest_luns_held == (GUEST_LUN,)
    assert set(write_on_every_path(lab, "node-a").values()) == {"written"}
