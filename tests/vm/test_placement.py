"""may_run: a node may run a guest only if the SAN shows it owning every LUN of the guest."""
from __future__ import annotations

from stonewall.config.model import ClusterConfig
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.scsi.types import ReservationType
from stonewall.storage.view import LunView, PathView
from stonewall.vm.mapping import guest_luns
from stonewall.vm.placement import LunState, may_run

from .conftest import ARRAY, block_disk, domain_xml, iscsi_disk, lun_view, owned_by

WE = ReservationType.WRITE_EXCLUSIVE
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
WE_AR = ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS


def web1(config: ClusterConfig):
    return guest_luns(config, "web1", domain_xml("web1", [iscsi_disk(f"{ARRAY}/2", "vda")]))


def test_the_one_registrant_of_a_guest_lun_may_run_its_guest(config: ClusterConfig) -> None:
    placement = may_run(web1(config), config.node("kvm-a"), owned_by(config, "kvm-a", "kvm-b"), config)
    assert placement.allowed and placement.reasons == ()
    assert placement.owners == {"web1-disk": ("kvm-a",)}


def test_another_node_registered_on_a_guest_lun_is_named_and_refuses(config: ClusterConfig) -> None:
    placement = may_run(web1(config), config.node("kvm-b"), owned_by(config, "kvm-a", "kvm-b"), config)
    assert not placement.allowed and not placement.cannot_tell
    assert placement.reasons == ("LUN web1-disk is registered by kvm-a: the guest runs, or may run, there",)
    assert placement.checks[0].state is LunState.REGISTERED_BY_OTHER
    # Registered too (two nodes claiming at once, or a migration): still refused, named.
    a, b = config.node("kvm-a").key, config.node("kvm-b").key
    both = {"web1-disk": lun_view("web1-disk", [a, b], holder=0, rtype=WE_AR)}
    placement = may_run(web1(config), config.node("kvm-b"), both, config)
    assert placement.checks[0].state is LunState.REGISTERED_BY_OTHER


def test_a_guest_lun_without_a_reservation_is_owned_by_nobody(config: ClusterConfig) -> None:
    a = config.node("kvm-a").key
    views = {"web1-disk": lun_view("web1-disk", [a])}
    placement = may_run(web1(config), config.node("kvm-a"), views, config)
    assert not placement.allowed
    assert placement.checks[0].state is LunState.NOT_RESERVED and placement.checks[0].state.claimable
    assert placement.reasons == ("LUN web1-disk carries no reservation: a node that is not registered "
                                 "could write to it (expected Write Exclusive, all registrants)",)


def test_the_key_must_be_on_every_reachable_path(config: ClusterConfig) -> None:
    db1 = guest_luns(config, "db1", None)
    b = config.node("kvm-b").key
    held = Reservation(1, 0, WE_AR)
    split = {"db1-disk": LunView("db1-disk", (PathView("p0", (b,), held), PathView("p1", (), held)))}
    placement = may_run(db1, config.node("kvm-b"), split, config)
    assert not placement.allowed and placement.checks[0].state is LunState.NOT_REGISTERED
    assert placement.reasons == ("LUN db1-disk: kvm-b's key is not registered on path p1 (owned by kvm-b)",)


def test_a_fenced_node_whose_key_is_gone_may_not(config: ClusterConfig) -> None:
    a = config.node("kvm-a").key
    views = {"db1-disk": lun_view("db1-disk", [a], holder=a, rtype=WE_RO)}
    placement = may_run(guest_luns(config, "db1", None), config.node("kvm-b"), views, config)
    assert not placement.allowed and placement.owners == {"db1-disk": ("kvm-a",)}


def test_a_path_that_is_down_is_skipped_but_no_path_at_all_cannot_tell(config: ClusterConfig) -> None:
    db1 = guest_luns(config, "db1", None)
    b = config.node("kvm-b").key
    one_down = {"db1-disk": lun_view("db1-disk", [b], holder=0, rtype=WE_AR, down=["p1"])}
    assert may_run(db1, config.node("kvm-b"), one_down, config).allowed
    all_down = {"db1-disk": lun_view("db1-disk", [b], down=["p0", "p1"])}
    placement = may_run(db1, config.node("kvm-b"), all_down, config)
    assert not placement.allowed and placement.cannot_tell
    assert placement.reasons == ("LUN db1-disk: no path answered (cannot tell)",)


def test_a_lun_without_a_view_cannot_tell(config: ClusterConfig) -> None:
    placement = may_run(web1(config), config.node("kvm-a"), {}, config)
    assert not placement.allowed and placement.cannot_tell
    assert placement.checks[0].state is LunState.NO_VIEW


def test_every_lun_must_be_owned(config: ClusterConfig) -> None:
    storage = guest_luns(config, "web1", domain_xml("web1", [
        iscsi_disk(f"{ARRAY}/2", "vda"), block_disk("/dev/drbd0", "vdb")]))
    views = owned_by(config, "kvm-a")
    views["data0"] = lun_view("data0", [config.node("kvm-b").key])
    placement = may_run(storage, config.node("kvm-a"), views, config)
    assert not placement.allowed
    assert [c.state for c in placement.checks] == [LunState.OWNED, LunState.NOT_REGISTERED]


def test_a_foreign_key_holding_the_lun_is_named(config: ClusterConfig) -> None:
    foreign = 0x1234_5678_9ABC_DEF0
    views = {"web1-disk": lun_view("web1-disk", [foreign], holder=foreign, rtype=WE)}
    placement = may_run(web1(config), config.node("kvm-a"), views, config)
    assert placement.reasons == ("LUN web1-disk is reserved by foreign 0x123456789abcdef0 (Write Exclusive)",)


def test_an_unidentified_block_disk_makes_the_answer_cannot_tell(config: ClusterConfig) -> None:
    storage = guest_luns(config, "web1", domain_xml("web1", [
        iscsi_disk(f"{ARRAY}/2", "vda"), block_disk("/dev/sdq", "vdb")]))
    placement = may_run(storage, config.node("kvm-a"), owned_by(config, "kvm-a"), config)
    assert not placement.allowed and placement.cannot_tell
    assert placement.reasons == ("disk vdb (/dev/sdq): block device whose name identifies no LUN",)


def test_a_guest_stonewall_does_not_manage_is_allowed(config: ClusterConfig) -> None:
    storage = guest_luns(config, "scratch", domain_xml("scratch", [block_disk("/dev/sdq", "vda")]))
    placement = may_run(storage, config.node("kvm-b"), {}, config)
    assert placement.allowed and not placement.managed


def test_guest_side_reservations_and_shareable_disks_are_warned_about(config: ClusterConfig) -> None:
    storage = guest_luns(config, "db1", domain_xml("db1", [
        block_disk("/dev/mapper/db1", "sda", device="lun", reservations=True),
        block_disk("/dev/drbd0", "vdb", shareable=True)]))
    placement = may_run(storage, config.node("kvm-a"), owned_by(config, "kvm-a"), config)
    assert placement.allowed
    assert len(placement.warnings) == 2
    assert "LUN db1-disk itself" in placement.warnings[0] and "vdb (/dev/drbd0) is <shareable/>" in placement.warnings[1]
