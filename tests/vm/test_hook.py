"""The qemu hook run the way libvirt runs it: the installed hook script as a subprocess, with
libvirt's minimal environment, argv `GUEST OPERATION SUB-OP EXTRA` and the domain XML on
stdin. LUN ownership comes from state files (views_files.py) through the same
`read_views` seam the node's holder fills in production."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from stonewall.config.model import ClusterConfig
from stonewall.vm.hook_install import install_hook
from stonewall.vm.libvirt_conn import LibvirtConnection

from .conftest import ARRAY, block_disk, domain_xml, file_disk, iscsi_disk, owned_by
from .views_files import write_views

RUNNER = Path(__file__).with_name("hook_runner.py")
LIBVIRT_ENV = {"LC_ALL": "C", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
LIBVIRT_QEMU_D = 9_000_000  # the libvirt of this machine (9.0.0) runs hooks/qemu.d/*


@dataclass
class HookRun:
    status: int
    stdout: str
    stderr: str
    seconds: float


RunHook = Callable[..., HookRun]


@pytest.fixture
def views_dir(tmp_path: Path) -> Path:
    path = tmp_path / "views"
    path.mkdir()
    return path


@pytest.fixture
def install_for(tmp_path: Path, config_path: Path) -> Callable[[str], Path]:
    """install_for(node) -> the hook script installed for that node under a private hooks dir."""

    def install(node: str) -> Path:
        hooks = tmp_path / f"hooks-{node}"
        result = install_hook(hooks, [sys.executable, str(RUNNER), "vm", "hook", "run", "--timeout", "1"],
                              libvirt_version=LIBVIRT_QEMU_D,
                              environment={"STONEWALL_CONFIG": str(config_path), "STONEWALL_NODE": node})
        return result.path

    return install


@pytest.fixture
def run_hook(install_for: Callable[[str], Path], views_dir: Path) -> RunHook:
    """run_hook(node, guest, operation, sub_op, extra, xml) -> HookRun."""

    def run(node: str, guest: str, operation: str, sub_op: str, extra: str, xml: str) -> HookRun:
        script = install_for(node)
        started = time.monotonic()
        done = subprocess.run([str(script), guest, operation, sub_op, extra], input=xml, text=True,
                              capture_output=True, env={**LIBVIRT_ENV, "STONEWALL_TEST_VIEWS": str(views_dir)},
                              timeout=30)
        run_result = HookRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        assert run_result.status != 97, "the hook loaded libvirt"
        assert run_result.stdout == "", "a hook's stdout would replace the domain XML"
        return run_result

    return run


@pytest.fixture
def web1_xml(fresh_host: LibvirtConnection) -> str:
    """web1 as libvirt describes it: one iSCSI disk on the web1-disk LUN."""
    fresh_host.define(domain_xml("web1", [iscsi_disk(f"{ARRAY}/2", "vda")]))
    return fresh_host.xml("web1")


def test_a_double_start_is_refused_naming_the_owner(
        run_hook: RunHook, views_dir: Path, config: ClusterConfig, web1_xml: str) -> None:
    write_views(views_dir, owned_by(config, "kvm-a", "kvm-b").values())
    refused = run_hook("kvm-b", "web1", "prepare", "begin", "-", web1_xml)
    assert refused.status == 1
    assert refused.stderr == ("stonewall: refusing to start web1 on kvm-b: LUN web1-disk is "
                              "registered by kvm-a: the guest runs, or may run, there\n")


def test_the_owner_may_start_it(run_hook: RunHook, views_dir: Path, config: ClusterConfig, web1_xml: str) -> None:
    write_views(views_dir, owned_by(config, "kvm-a", "kvm-b").values())
    allowed = run_hook("kvm-a", "web1", "prepare", "begin", "-", web1_xml)
    assert (allowed.status, allowed.stderr) == (0, "")


@pytest.mark.parametrize("operation, sub_op, extra", [
    ("reconnect", "begin", "-"), ("start", "begin", "-"), ("started", "begin", "-"),
    ("stopped", "end", "-"), ("release", "end", "shutdown"), ("attach", "begin", "-"),
    ("prepare", "end", "-"), ("some-future-op", "begin", "-"),
])
def test_operations_that_are_not_judged_always_pass(
        run_hook: RunHook, config_path: Path, web1_xml: str, operation: str, sub_op: str, extra: str) -> None:
    # No views at all and an unreadable config: a judged call would be refused. A failing
    # `reconnect` would make libvirt kill the running guest.
    config_path.write_text("cluster: [unclosed")
    passed = run_hook("kvm-b", "web1", operation, sub_op, extra, web1_xml)
    assert (passed.status, passed.stderr) == (0, "")


def test_an_incoming_migration_to_a_non_owner_is_refused_at_migrate_begin(
        run_hook: RunHook, views_dir: Path, config: ClusterConfig, web1_xml: str) -> None:
    write_views(views_dir, owned_by(config, "kvm-a", "kvm-b").values())
    refused = run_hook("kvm-b", "web1", "migrate", "begin", "-", web1_xml)
    assert refused.status == 1
    assert refused.stderr.startswith("stonewall: refusing to receive the incoming migration of web1 on kvm-b: "
                                     "LUN web1-disk is registered by kvm-a")


def test_an_incoming_migration_to_the_owner_passes_with_the_xml_unchanged(
        run_hook: RunHook, views_dir: Path, config: ClusterConfig, web1_xml: str) -> None:
    write_views(views_dir, owned_by(config, "kvm-b", "kvm-a").values())
    for operation in ("migrate", "prepare"):  # the order libvirt uses on the destination
        passed = run_hook("kvm-b", "web1", operation, "begin", "-", web1_xml)
        assert (passed.status, passed.stderr) == (0, "")  # and empty stdout: XML unchanged


def test_restoring_a_saved_guest_is_judged_like_a_start(
        run_hook: RunHook, views_dir: Path, config: ClusterConfig, web1_xml: str) -> None:
    write_views(views_dir, owned_by(config, "kvm-a").values())
    refused = run_hook("kvm-b", "web1", "restore", "begin", "-", web1_xml)
    assert refused.status == 1 and "refusing to restore web1 on kvm-b" in refused.stderr


def test_without_any_view_of_the_lun_the_start_is_refused(run_hook: RunHook, web1_xml: str) -> None:
    refused = run_hook("kvm-a", "web1", "prepare", "begin", "-", web1_xml)
    assert refused.status == 1
    assert refused.stderr == ("stonewall: refusing to start web1 on kvm-a: LUN web1-disk: no ownership "
                              "view (cannot tell)\n")


def test_a_hung_ownership_read_refuses_at_the_deadline(
        run_hook: RunHook, views_dir: Path, web1_xml: str) -> None:
    os.mkfifo(views_dir / "web1-disk.json")  # opening it blocks: a storage read that never ends
    refused = run_hook("kvm-a", "web1", "prepare", "begin", "-", web1_xml)
    assert refused.status == 1
    assert refused.stderr == ("stonewall: refusing to start web1 on kvm-a: LUN ownership (web1-disk) "
                              "could not be read in time\n")
    assert refused.seconds < 5  # the hook timeout is 1 s, plus interpreter start


def test_an_unidentified_disk_refuses_the_start(
        run_hook: RunHook, views_dir: Path, config: ClusterConfig, fresh_host: LibvirtConnection) -> None:
    fresh_host.define(domain_xml("web1", [iscsi_disk(f"{ARRAY}/2", "vda"), block_disk("/dev/sdq", "vdb")]))
    write_views(views_dir, owned_by(config, "kvm-a").values())
    refused = run_hook("kvm-a", "web1", "prepare", "begin", "-", fresh_host.xml("web1"))
    assert refused.status == 1
    assert refused.stderr.endswith("disk vdb (/dev/sdq): block device whose name identifies no LUN\n")


def test_a_guest_without_cluster_storage_is_not_our_business(run_hook: RunHook) -> None:
    xml = domain_xml("scratch", [file_disk("/srv/scratch.qcow2", "vda")])
    assert run_hook("kvm-b", "scratch", "prepare", "begin", "-", xml).status == 0


@pytest.mark.parametrize("xml, complaint", [
    ("<domain><name>web1", "cannot read the domain XML"),
    (domain_xml("db1", []), "describes 'db1', not 'web1'"),
])
def test_an_unreadable_domain_xml_refuses(run_hook: RunHook, xml: str, complaint: str) -> None:
    refused = run_hook("kvm-a", "web1", "prepare", "begin", "-", xml)
    assert refused.status == 1 and complaint in refused.stderr


def test_a_node_missing_from_the_config_refuses(run_hook: RunHook, web1_xml: str) -> None:
    refused = run_hook("kvm-z", "web1", "prepare", "begin", "-", web1_xml)
    assert refused.status == 1 and "this node (kvm-z) is not in the cluster configuration" in refused.stderr


def test_an_invalid_config_refuses_a_start(run_hook: RunHook, config_path: Path, web1_xml: str) -> None:
    config_path.write_text("cluster: lab\n")
    refused = run_hook("kvm-a", "web1", "prepare", "begin", "-", web1_xml)
    assert refused.status == 1 and "cannot read the cluster configuration" in refused.stderr


def test_arguments_libvirt_would_never_pass_are_a_usage_error(run_hook: RunHook) -> None:
    wrong = run_hook("kvm-a", "web1", "", "", "", "")
    assert wrong.status == 2 and "GUEST OPERATION SUB-OPERATION" in wrong.stderr


def test_a_configured_guest_without_luns_needs_no_ownership_read(config: ClusterConfig) -> None:
    from stonewall.clock import Deadline
    from stonewall.vm.hook import HookCall, decide

    asked: list[tuple[str, ...]] = []

    def read_views(luns, deadline):
        asked.append(tuple(luns))
        raise OSError("holder down")

    decision = decide(HookCall("app1", "prepare", "begin", "-"),
                      domain_xml("app1", [file_disk("/srv/app1.qcow2", "vda")]),
                      load_config=lambda: config, node_name="kvm-b", read_views=read_views,
                      deadline=Deadline.after(5))
    assert decision.exit_code == 0 and asked == []


def test_a_refusal_stays_one_line_whatever_the_guest_is_called(run_hook: RunHook) -> None:
    # Found by tests/fuzz: a name with "\r" or "\n" split the line libvirt appends to its error.
    refused = run_hook("kvm-a", "web1\rcontinues", "prepare", "begin", "-", "<domain")
    assert refused.status == 1
    assert refused.stderr.count("\n") == 1 and "\r" not in refused.stderr
    assert "refusing to start web1\\rcontinues on kvm-a" in refused.stderr
