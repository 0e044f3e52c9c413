"""The self-fencing guest stop against libvirt's test driver: which domains depend on the
LUNs, destroying them (never a graceful shutdown), and "cannot tell" counting as running.

Each open of a test:///FILE URI is a fresh host, so a LocalGuests keeps ONE connection and
these tests look through it, as the service does."""
from __future__ import annotations

from pathlib import Path

import pytest

from stonewall.clock import Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import ClusterConfig
from stonewall.vm.libvirt_conn import DomainState, LibvirtConnection, LibvirtUnavailable
from stonewall.watchdog.guests import LocalGuests

ARRAY = "iqn.2026-11.lab.stonewall:array1"
CLUSTER_YAML = f"""\
cluster: guestlab
nodes:
  - {{name: node-a, id: 1, initiator: "iqn.2026-11.lab.stonewall:node-a"}}
  - {{name: node-b, id: 2, initiator: "iqn.2026-11.lab.stonewall:node-b"}}
luns:
  - name: arbiter0
    role: arbiter
    order: 0
    iscsi: {{target: "{ARRAY}", lun: 1, portals: ["127.0.0.1:3260"]}}
  - name: web1-disk
    role: guest
    transport: sg
    wwid: "3600a098038304437415d4b6a59684a51"
    iscsi: {{target: "{ARRAY}", lun: 2, portals: ["127.0.0.1:3260"]}}
  - name: db1-disk
    role: guest
    transport: sg
    wwid: "3600a098038304437415d4b6a59684a52"
    iscsi: {{target: "{ARRAY}", lun: 3, portals: ["127.0.0.1:3260"]}}
guests:
  - {{name: web1, luns: [web1-disk], home: node-a}}
fencing:
  - {{level: storage, timeout: 10}}
"""


def domain(name: str, disks: str = "", shut_off: bool = False) -> str:
    runstate = ("<test:runstate>5</test:runstate>" if shut_off else "")
    return (f"<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
            f"<name>{name}</name><memory>65536</memory><os><type>hvm</type></os>"
            f"<devices>{disks}</devices>{runstate}</domain>")


def iscsi_disk(lun: int) -> str:
    return (f"<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
            f"<source protocol='iscsi' name='{ARRAY}/{lun}'>"
            f"<host name='127.0.0.1' port='3260'/></source>"
            f"<target dev='vda' bus='virtio'/></disk>")


def file_disk() -> str:
    return ("<disk type='file' device='disk'><source file='/var/lib/images/x.qcow2'/>"
            "<target dev='vda' bus='virtio'/></disk>")


@pytest.fixture
def config(tmp_path: Path) -> ClusterConfig:
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER_YAML)
    path.chmod(0o600)
    return load_config(str(path))


def host(tmp_path: Path, *domains: str) -> str:
    path = tmp_path / "host.xml"
    path.write_text(f"<node>{''.join(domains)}<memory>8192000</memory></node>")
    return f"test://{path}"


def guests_on(config: ClusterConfig, uri: str) -> LocalGuests:
    return LocalGuests(config, lambda deadline: LibvirtConnection.open(uri, deadline),
                       call_seconds=5)


def states(guests: LocalGuests) -> dict[str, DomainState]:
    conn = guests._connection(Deadline.after(5))  # the one connection the service uses
    return {info.name: info.state for info in conn.list_domains()}


def test_configured_and_lun_backed_guests_are_destroyed_others_left_alone(config, tmp_path):
    guests = guests_on(config, host(
        tmp_path,
        domain("web1"),                          # configured under guests:
        domain("db1", iscsi_disk(3)),            # not configured, but its disk is db1-disk
        domain("scratch", file_disk()),          # a file disk: not ours to guard
        domain("old", iscsi_disk(2), shut_off=True)))
    try:
        assert sorted(guests.dependent_active(Deadline.after(5))) == ["db1", "web1"]
        assert guests.any_running() is True
        report = guests.destroy_all("key gone", Deadline.after(5))
        assert sorted(report.destroyed) == ["db1", "web1"] and report.ok
        assert states(guests) == {"web1": DomainState.SHUT_OFF, "db1": DomainState.SHUT_OFF,
                                  "scratch": DomainState.RUNNING, "old": DomainState.SHUT_OFF}
        assert guests.any_running() is False
        assert guests.last_stop is report
    finally:
        guests.close()


def test_a_host_without_dependent_guests_lets_the_stop_through(config, tmp_path):
    guests = guests_on(config, host(tmp_path, domain("scratch", file_disk())))
    try:
        assert guests.any_running() is False
        assert guests.destroy_all("key gone", Deadline.after(5)).destroyed == []
    finally:
        guests.close()


def test_a_libvirt_that_cannot_be_reached_is_an_error_never_no_guests(config, tmp_path):
    guests = guests_on(config, f"test://{tmp_path}/missing.xml")
    with pytest.raises(LibvirtUnavailable):
        guests.any_running()
    report = guests.destroy_all("key gone", Deadline.after(5))
    assert not report.ok and "*" in report.failed
