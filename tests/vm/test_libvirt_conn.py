"""The libvirt adapter against libvirt's own test driver. Two opens of one node file are two
independent hosts: the double start the rest of the toolkit must prevent is possible here."""
from __future__ import annotations

import threading
import time

import pytest

from stonewall.clock import Deadline
from stonewall.bounded import DeadlineExceeded, call_before
from stonewall.vm.libvirt_conn import (
    DomainAlreadyRunning, DomainNotFound, DomainState, LibvirtConnection, LibvirtUnavailable,
    StopOutcome, domain_state)

from .conftest import SHUT_OFF_RUNSTATE, NodeFile, OpenHost, block_disk, domain_xml

WEB1_UUID = "6c3f2a5e-0d7b-4c1e-9a51-0f5e3b2a7d01"


def web1_xml(runstate: int | None = SHUT_OFF_RUNSTATE) -> str:
    return domain_xml("web1", [block_disk("/dev/mapper/web1", "vda")], uuid=WEB1_UUID, runstate=runstate)


def test_domains_are_listed_with_their_state(node_file: NodeFile, open_host: OpenHost) -> None:
    uri = node_file("kvm-a", [web1_xml(), domain_xml("db1", [], runstate=1)])
    domains = {d.name: d for d in open_host(uri).list_domains()}
    assert domains["web1"].state is DomainState.SHUT_OFF and domains["web1"].uuid == WEB1_UUID
    assert domains["db1"].state is DomainState.RUNNING and domains["db1"].persistent


def test_define_start_and_destroy(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    assert conn.define(web1_xml(runstate=None)) == "web1"
    assert conn.state("web1") is DomainState.SHUT_OFF and not conn.is_active("web1")
    conn.start("web1")
    assert conn.state("web1") is DomainState.RUNNING and conn.is_active("web1")
    assert conn.destroy("web1", Deadline.after(5)) is StopOutcome.DESTROYED
    assert conn.state("web1") is DomainState.SHUT_OFF


def test_starting_a_running_guest_is_its_own_error(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    conn.define(web1_xml(runstate=None))
    conn.start("web1")
    with pytest.raises(DomainAlreadyRunning):
        conn.start("web1")


def test_destroying_a_stopped_or_missing_guest_counts_as_stopped(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    conn.define(web1_xml(runstate=None))
    assert conn.destroy("web1", Deadline.after(5)) is StopOutcome.WAS_NOT_RUNNING
    assert conn.destroy("nobody", Deadline.after(5)) is StopOutcome.WAS_NOT_RUNNING


def test_shutdown_is_a_request(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    conn.define(web1_xml(runstate=None))
    assert conn.shutdown("web1") is StopOutcome.WAS_NOT_RUNNING
    conn.start("web1")
    assert conn.shutdown("web1") is StopOutcome.SHUTDOWN_REQUESTED
    assert conn.state("web1") is DomainState.SHUT_OFF  # the test driver obeys at once


def test_a_missing_domain_is_a_typed_error(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    with pytest.raises(DomainNotFound):
        conn.state("nobody")
    with pytest.raises(DomainNotFound):
        conn.xml("nobody")
    with pytest.raises(DomainNotFound):
        conn.start("nobody")
    assert conn.is_active("nobody") is False


def test_two_hosts_can_both_run_one_guest_without_a_guard(node_file: NodeFile, open_host: OpenHost) -> None:
    uri = node_file("shared", [web1_xml()])
    host_a, host_b = open_host(uri), open_host(uri)
    host_a.start("web1")
    assert host_b.state("web1") is DomainState.SHUT_OFF  # independent hosts
    host_b.start("web1")
    assert host_a.state("web1") is DomainState.RUNNING and host_b.state("web1") is DomainState.RUNNING


def test_the_live_and_persistent_xml_are_available(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    conn.define(web1_xml(runstate=None))
    assert "/dev/mapper/web1" in conn.xml("web1") and "/dev/mapper/web1" in conn.xml("web1", inactive=True)


def test_a_paused_guest_is_paused_not_stopped(node_file: NodeFile, open_host: OpenHost) -> None:
    conn = open_host(node_file("kvm-a", [domain_xml("web1", [], runstate=3)]))
    assert conn.state("web1") is DomainState.PAUSED and DomainState.PAUSED.active


def test_states_libvirt_cannot_name_are_unknown_never_shut_off() -> None:
    import libvirt
    assert domain_state(libvirt.VIR_DOMAIN_NOSTATE) is DomainState.UNKNOWN
    assert domain_state(99) is DomainState.UNKNOWN
    assert DomainState.UNKNOWN.active is None
    assert domain_state(libvirt.VIR_DOMAIN_CRASHED).active  # on_crash=preserve keeps QEMU
    assert domain_state(libvirt.VIR_DOMAIN_SHUTDOWN) is DomainState.RUNNING  # still shutting down


def test_an_unusable_uri_is_unavailable(tmp_path) -> None:
    with pytest.raises(LibvirtUnavailable):
        LibvirtConnection.open(f"test://{tmp_path}/missing.xml", Deadline.after(5))


def test_a_closed_connection_refuses_further_calls(fresh_host: LibvirtConnection) -> None:
    conn = fresh_host
    conn.close()
    with pytest.raises(LibvirtUnavailable):
        conn.list_domains()


def test_read_only_connections_cannot_define(node_file: NodeFile) -> None:
    conn = LibvirtConnection.open(node_file("empty", []), Deadline.after(5), read_only=True)
    try:
        with pytest.raises(Exception) as raised:
            conn.define(web1_xml(runstate=None))
        assert not isinstance(raised.value, LibvirtUnavailable)
    finally:
        conn.close()


def test_a_call_that_does_not_return_gives_up_at_its_deadline() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        call_before(Deadline.after(0.2), release.wait, "a call stuck in the kernel")
    assert 0.2 <= time.monotonic() - started < 1.0
    release.set()


def test_a_bounded_call_passes_its_result_and_its_exception() -> None:
    assert call_before(Deadline.after(1), lambda: 42, "answer") == 42
    with pytest.raises(ZeroDivisionError):
        call_before(Deadline.after(1), lambda: 1 / 0, "broken")
