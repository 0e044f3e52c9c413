"""`vm list`: verdicts from placements and states, gathered from two test-driver hosts and the
SAN's views, rendered as a table and JSON, and the `vm` commands through their parsers."""
from __future__ import annotations

import argparse
import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig
from stonewall.handlers import vm_cmd
from stonewall.holder.handoffs import Direction, Handoffs
from stonewall.storage.scsi.types import ReservationType
from stonewall.vm.inventory import collect_inventory
from stonewall.vm.libvirt_conn import DomainState
from stonewall.vm.listing import GuestVerdict, guest_verdict, render_json, render_table
from stonewall.vm.mapping import guest_luns
from stonewall.vm.placement import may_run

from .conftest import (
    ARRAY, SHUT_OFF_RUNSTATE, NodeFile, block_disk, domain_xml, iscsi_disk, lun_view, owned_by)
from .views_files import state_file_views, write_views
from ..sim_clock import SimClock

RUNNING = DomainState.RUNNING
OFF = DomainState.SHUT_OFF
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


def placements(config: ClusterConfig, guest: str, views) -> dict:
    storage = guest_luns(config, guest, None)
    return {node.name: may_run(storage, node, views, config) for node in config.nodes}


@pytest.fixture
def web1_owned_by_a(config: ClusterConfig) -> dict:
    return placements(config, "web1", owned_by(config, "kvm-a", "kvm-b"))


def test_running_on_its_owner_is_ok(web1_owned_by_a: dict) -> None:
    row = guest_verdict("web1", web1_owned_by_a, {"kvm-a": RUNNING, "kvm-b": OFF})
    assert row.verdict is GuestVerdict.OK and row.owners == ("kvm-a",) and row.running_on == ("kvm-a",)


def test_running_on_a_node_that_does_not_own_it(web1_owned_by_a: dict) -> None:
    row = guest_verdict("web1", web1_owned_by_a, {"kvm-a": OFF, "kvm-b": DomainState.PAUSED})
    assert row.verdict is GuestVerdict.RUNS_WITHOUT_OWNERSHIP
    assert row.reasons == ("on kvm-b: LUN web1-disk is registered by kvm-a: the guest runs, or may run, there",)


def test_running_twice_is_reported_even_if_a_third_node_cannot_tell(web1_owned_by_a: dict) -> None:
    row = guest_verdict("web1", {**web1_owned_by_a, "kvm-c": web1_owned_by_a["kvm-b"]},
                        {"kvm-a": RUNNING, "kvm-b": RUNNING})
    assert row.verdict is GuestVerdict.RUNS_TWICE and row.states["kvm-c"] is DomainState.UNKNOWN


def test_a_handoff_in_flight_is_migrating_not_running_twice(config: ClusterConfig) -> None:
    both = {lun: lun_view(lun, [config.node("kvm-a").key, config.node("kvm-b").key], holder=0,
                          rtype=ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS)
            for lun in ("web1-disk",)}
    handoff = Handoffs("kvm-b", SimClock()).open("web1", "kvm-a", Direction.INCOMING,
                                                  ("web1-disk",), 30)
    row = guest_verdict("web1", placements(config, "web1", both),
                        {"kvm-a": RUNNING, "kvm-b": DomainState.PAUSED},
                        registrants=("kvm-a", "kvm-b"), migration=handoff)
    assert row.verdict is GuestVerdict.MIGRATING and row.reasons == ("migrating (kvm-a → kvm-b)",)
    assert "migrating (kvm-a → kvm-b)" in render_table([row])
    assert vm_cmd.list_exit_status([row]) == vm_cmd.EXIT_OK
    # Without the record the same picture is a guest on two nodes.
    assert guest_verdict("web1", placements(config, "web1", both),
                         {"kvm-a": RUNNING, "kvm-b": DomainState.PAUSED}).verdict \
        is GuestVerdict.RUNS_TWICE


def test_a_registration_left_by_a_crashed_destination_is_registered_but_not_running_here(
        config: ClusterConfig) -> None:
    both = {"web1-disk": lun_view("web1-disk", [config.node("kvm-a").key,
                                                config.node("kvm-b").key], holder=0,
                                  rtype=ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS)}
    row = guest_verdict("web1", placements(config, "web1", both),
                        {"kvm-a": RUNNING, "kvm-b": OFF}, registrants=("kvm-a", "kvm-b"))
    assert row.verdict is GuestVerdict.STALE_REGISTRATION
    assert row.verdict.value == "registered but not running here"
    assert row.reasons[0].startswith("kvm-b is registered on its LUNs but does not run it")
    assert vm_cmd.list_exit_status([row]) == vm_cmd.EXIT_PROBLEM


def test_owned_but_stopped(web1_owned_by_a: dict) -> None:
    row = guest_verdict("web1", web1_owned_by_a, {"kvm-a": OFF, "kvm-b": OFF})
    assert row.verdict is GuestVerdict.OWNED_BUT_STOPPED


def test_an_unknown_state_is_cannot_tell_never_stopped(web1_owned_by_a: dict) -> None:
    row = guest_verdict("web1", web1_owned_by_a, {"kvm-a": OFF, "kvm-b": DomainState.UNKNOWN})
    assert row.verdict is GuestVerdict.CANNOT_TELL and row.reasons == ("state on kvm-b is unknown",)


def test_unreadable_ownership_is_cannot_tell(config: ClusterConfig) -> None:
    row = guest_verdict("web1", placements(config, "web1", {}), {"kvm-a": RUNNING, "kvm-b": OFF})
    assert row.verdict is GuestVerdict.CANNOT_TELL
    assert "on kvm-a: LUN web1-disk: no ownership view (cannot tell)" in row.reasons


def test_stopped_and_owned_by_nobody_is_ok(config: ClusterConfig) -> None:
    views = {"web1-disk": lun_view("web1-disk", [])}
    row = guest_verdict("web1", placements(config, "web1", views), {"kvm-a": OFF, "kvm-b": OFF})
    assert row.verdict is GuestVerdict.OK and row.reasons == ("stopped, and no node owns its storage",)


def test_table_and_json(web1_owned_by_a: dict) -> None:
    rows = [guest_verdict("web1", web1_owned_by_a, {"kvm-a": RUNNING, "kvm-b": OFF}),
            guest_verdict("web1-copy", web1_owned_by_a, {"kvm-a": OFF, "kvm-b": RUNNING})]
    assert render_table(rows) == (
        "GUEST      OWNER  RUNS ON  VERDICT\n"
        "web1       kvm-a  kvm-a    ok\n"
        "web1-copy  kvm-a  kvm-b    runs without ownership\n"
        "  web1-copy: on kvm-b: LUN web1-disk is registered by kvm-a: the guest runs, or may run, there\n")
    document = json.loads(render_json(rows))
    assert document["guests"][1] == {
        "guest": "web1-copy", "owners": ["kvm-a"], "running_on": ["kvm-b"],
        "states": {"kvm-a": "shut off", "kvm-b": "running"}, "verdict": "runs_without_ownership",
        "reasons": ["on kvm-b: LUN web1-disk is registered by kvm-a: the guest runs, or may run, there"], "warnings": []}


def test_disk_set_ups_that_weaken_the_guard_are_listed(config: ClusterConfig) -> None:
    storage = guest_luns(config, "db1", domain_xml("db1", [
        block_disk("/dev/mapper/db1", "sda", device="lun", reservations=True)]))
    views = owned_by(config, "kvm-a")
    row = guest_verdict("db1", {n.name: may_run(storage, n, views, config) for n in config.nodes},
                        {"kvm-a": RUNNING, "kvm-b": OFF})
    assert row.verdict is GuestVerdict.OK and len(row.warnings) == 1
    assert render_table([row]).endswith(
        "  db1: warning: the guest issues SCSI reservations on LUN db1-disk itself (<reservations> on "
        "a device='lun' disk): they go through this node's I_T nexus, next to its fencing key\n")


@pytest.fixture
def two_hosts(node_file: NodeFile) -> dict[str, str]:
    """kvm-a runs web1 and db1; kvm-b runs db1 too and app1 (on /dev/drbd0 -> data0)."""
    web1 = domain_xml("web1", [iscsi_disk(f"{ARRAY}/2", "vda")], runstate=1)
    db1 = domain_xml("db1", [block_disk("/dev/mapper/db1", "vda")], runstate=1)
    app1 = domain_xml("app1", [block_disk("/dev/drbd0", "vda")], runstate=1)
    return {"kvm-a": node_file("kvm-a", [web1, db1]),
            "kvm-b": node_file("kvm-b", [db1, app1, domain_xml("idle", [], runstate=SHUT_OFF_RUNSTATE)])}


@pytest.fixture
def san(config: ClusterConfig) -> dict:
    """kvm-a holds everything; kvm-b's key is registered everywhere except on data0."""
    views = owned_by(config, "kvm-a", "kvm-b")
    views["data0"] = lun_view("data0", [config.node("kvm-a").key], holder=config.node("kvm-a").key, rtype=WE_RO)
    return views


def test_inventory_of_two_real_hosts(config: ClusterConfig, two_hosts: dict, san: dict) -> None:
    inventory = collect_inventory(config, lambda luns, deadline: san, two_hosts, local_node="kvm-a",
                                  deadline=Deadline.after(10))
    verdicts = {row.guest: row.verdict for row in inventory.rows}
    assert verdicts == {"web1": GuestVerdict.OK, "db1": GuestVerdict.RUNS_TWICE,
                        "app1": GuestVerdict.RUNS_WITHOUT_OWNERSHIP}
    app1 = inventory.rows[2]
    assert app1.running_on == ("kvm-b",) and "not registered" in app1.reasons[0]
    assert inventory.problems == ()


def test_a_node_nobody_can_ask_makes_the_inventory_cannot_tell(config: ClusterConfig, two_hosts: dict, san: dict) -> None:
    inventory = collect_inventory(config, lambda luns, deadline: san, {"kvm-a": two_hosts["kvm-a"]},
                                  local_node="kvm-a", deadline=Deadline.after(10))
    # kvm-a runs web1 and db1 as their owner, but kvm-b might run a copy: nobody can tell.
    assert [row.verdict for row in inventory.rows] == [GuestVerdict.CANNOT_TELL] * 3
    assert inventory.rows[0].states == {"kvm-a": RUNNING, "kvm-b": DomainState.UNKNOWN}
    assert inventory.problems == ("kvm-b: no libvirt URI given (--uri kvm-b=URI)",)


def test_a_failing_views_source_is_reported_and_cannot_tell(config: ClusterConfig, two_hosts: dict) -> None:
    def broken(luns, deadline):
        raise OSError("holder socket refused")

    inventory = collect_inventory(config, broken, two_hosts, local_node="kvm-a", deadline=Deadline.after(10))
    verdicts = {row.guest: row.verdict for row in inventory.rows}
    assert verdicts == {"web1": GuestVerdict.CANNOT_TELL, "db1": GuestVerdict.RUNS_TWICE, "app1": GuestVerdict.CANNOT_TELL}
    assert inventory.problems == ("cannot read LUN ownership: holder socket refused",)


def cli(argv: list[str], views_dir: Path | None = None) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="stonewall")
    parser.add_argument("--config")
    source = None if views_dir is None else (lambda config: state_file_views(views_dir))
    vm_cmd.register(parser.add_subparsers(required=True), views_source=source)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = args.func(args)
    return status, out.getvalue(), err.getvalue()


def test_vm_list_command(tmp_path: Path, config_path: Path, two_hosts: dict, san: dict) -> None:
    write_views(tmp_path / "views", san.values())
    status, out, err = cli(["--config", str(config_path), "vm", "list", "--json", "--node", "kvm-a",
                            "--uri", f"kvm-a={two_hosts['kvm-a']}", "--uri", f"kvm-b={two_hosts['kvm-b']}"],
                           tmp_path / "views")
    assert status == vm_cmd.EXIT_PROBLEM and err == ""
    assert [g["verdict"] for g in json.loads(out)["guests"]] == ["ok", "runs_twice", "runs_without_ownership"]


def test_vm_list_without_a_views_source_cannot_tell(config_path: Path, two_hosts: dict) -> None:
    status, out, err = cli(["--config", str(config_path), "vm", "list", "--node", "kvm-a",
                            "--uri", f"kvm-b={two_hosts['kvm-b']}"])
    # kvm-a is asked through the config's libvirt_uri (test:///default): no guest of ours there.
    assert status == vm_cmd.EXIT_CANNOT_TELL
    assert "no source of LUN ownership is wired" in err
    assert out.startswith("GUEST")


def test_vm_list_rejects_a_malformed_uri_option(config_path: Path) -> None:
    status, _out, err = cli(["--config", str(config_path), "vm", "list", "--uri", "kvm-b"])
    assert status == vm_cmd.EXIT_ERROR and "expected NODE=URI" in err


def test_vm_hook_install_command(tmp_path: Path, config_path: Path) -> None:
    status, out, _err = cli(["--config", str(config_path), "vm", "hook", "install", "--hooks-dir",
                             str(tmp_path / "hooks"), "--node", "kvm-a", "--stonewall", "/usr/bin/stonewall"])
    assert status == 0 and "created (qemu.d layout)" in out and "restart libvirtd" in out
    installed = (tmp_path / "hooks" / "qemu.d" / "50-stonewall-guard").read_text()
    assert f"STONEWALL_CONFIG={config_path}; export STONEWALL_CONFIG" in installed
    assert "exec /usr/bin/stonewall vm hook run -- \"$@\"" in installed
    status, out, _err = cli(["vm", "hook", "install", "--hooks-dir", str(tmp_path / "hooks"),
                             "--stonewall", "/usr/bin/stonewall"])
    assert status == 0 and "updated" in out  # without --config/--node: a different script


def test_vm_hook_run_without_a_views_source_refuses_starts_but_passes_reconnects(
        config_path: Path, feed_stdin) -> None:
    xml = domain_xml("web1", [iscsi_disk(f"{ARRAY}/2", "vda")])
    feed_stdin(xml)
    status, _out, err = cli(["--config", str(config_path), "vm", "hook", "run", "--node", "kvm-a",
                             "--", "web1", "prepare", "begin", "-"])
    assert status == 1 and "no source of LUN ownership is wired" in err
    feed_stdin(xml)
    assert cli(["--config", str(config_path), "vm", "hook", "run", "--node", "kvm-a",
                "--", "web1", "reconnect", "begin", "-"])[0] == 0


@pytest.fixture
def feed_stdin():
    """Feed text to sys.stdin (the hook's XML input) and restore it afterwards."""
    saved = sys.stdin

    def feed(text: str) -> None:
        sys.stdin = io.StringIO(text)

    yield feed
    sys.stdin = saved
