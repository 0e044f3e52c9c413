"""Shared pieces of the vm tests: one cluster file read by the real loader, domain XML
builders, libvirt test-driver node files (each open of one is an independent host), and
LUN views as the SAN would report them."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from stonewall.clock import Deadline
from stonewall.config.loader import load_config
from stonewall.config.model import ClusterConfig, LunRole
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.scsi.types import ReservationType
from stonewall.storage.view import LunView, PathView
from stonewall.vm.libvirt_conn import LibvirtConnection

ARRAY = "iqn.2026-11.lab.stonewall:array1"
DB1_WWID = "360014050123456789abcdef012345678"  # NAA 6: '3' + 32 hex digits
WEB1_WWID = "36001405aaaabbbbccccddddeeeeffff0"
DATA0_WWID = "36001405fedcba9876543210fedcba987"
PORTALS = ("127.0.0.1:3260", "127.0.0.2:3260")

CLUSTER_YAML = f"""\
cluster: vmlab
libvirt_uri: test:///default
nodes:
  - {{name: kvm-a, id: 1}}
  - {{name: kvm-b, id: 2}}
luns:
  - name: arbiter0
    role: arbiter
    order: 0
    iscsi: {{target: "{ARRAY}", lun: 1, portals: ["{PORTALS[0]}", "{PORTALS[1]}"]}}
  - name: web1-disk
    role: guest
    transport: sg
    wwid: "{WEB1_WWID}"
    iscsi: {{target: "{ARRAY}", lun: 2, portals: ["{PORTALS[0]}", "{PORTALS[1]}"]}}
  - name: db1-disk
    role: guest
    transport: sg
    wwid: "{DB1_WWID}"
    alias: db1
  - name: data0
    role: shared
    transport: sg
    wwid: "{DATA0_WWID}"
drbd:
  - name: r0
    luns: [data0]
    minors: [0]
    peers: {{0: kvm-a, 1: kvm-b}}
guests:
  - {{name: web1, luns: [web1-disk], home: kvm-a, order: 10}}
  - {{name: db1, luns: [db1-disk], home: kvm-b, order: 20}}
  - {{name: app1, home: kvm-a, order: 30}}
fencing:
  - {{level: storage, timeout: 10}}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(CLUSTER_YAML)
    path.chmod(0o600)
    return path


@pytest.fixture
def config(config_path: Path) -> ClusterConfig:
    return load_config(str(config_path))


# ---- domain XML -----------------------------------------------------------------------------

def block_disk(path: str, target: str, *, device: str = "disk", reservations: bool = False,
               shareable: bool = False) -> str:
    bus = "scsi" if device == "lun" else "virtio"
    inner = "<reservations managed='yes'/>" if reservations else ""
    return (f"<disk type='block' device='{device}'><driver name='qemu' type='raw' cache='none'/>"
            f"<source dev='{path}'>{inner}</source><target dev='{target}' bus='{bus}'/>"
            f"{'<shareable/>' if shareable else ''}</disk>")


def iscsi_disk(name: str, target: str, hosts: Sequence[str] = ("127.0.0.1:3260",), *,
               device: str = "disk") -> str:
    host_xml = "".join(f"<host name='{h.rsplit(':', 1)[0]}' port='{h.rsplit(':', 1)[1]}'/>" for h in hosts)
    bus = "scsi" if device == "lun" else "virtio"
    return (f"<disk type='network' device='{device}'><driver name='qemu' type='raw'/>"
            f"<source protocol='iscsi' name='{name}'>{host_xml}</source>"
            f"<target dev='{target}' bus='{bus}'/></disk>")


def file_disk(path: str, target: str) -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
            f"<source file='{path}'/><target dev='{target}' bus='virtio'/></disk>")


def domain_xml(name: str, disks: Sequence[str], *, uuid: str | None = None,
               runstate: int | None = None) -> str:
    """A test-driver domain; `runstate` 5 loads it shut off from a node file."""
    ns = " xmlns:test='http://libvirt.org/schemas/domain/test/1.0'" if runstate is not None else ""
    return "".join([
        f"<domain type='test'{ns}><name>{name}</name>",
        f"<uuid>{uuid}</uuid>" if uuid else "",
        "<memory>65536</memory><os><type>hvm</type></os><devices>",
        "".join(disks),
        "</devices>",
        f"<test:runstate>{runstate}</test:runstate>" if runstate is not None else "",
        "</domain>",
    ])


# ---- libvirt test driver ---------------------------------------------------------------------

SHUT_OFF_RUNSTATE = 5  # VIR_DOMAIN_SHUTOFF

NodeFile = Callable[[str, Sequence[str]], str]


@pytest.fixture
def node_file(tmp_path: Path) -> NodeFile:
    """node_file(host_name, domain_xmls) -> a test:///... URI; every open() of it is a fresh,
    independent host holding those domains."""

    def write(host: str, domains: Sequence[str]) -> str:
        path = tmp_path / f"{host}.xml"
        path.write_text(f"<node>{''.join(domains)}<memory>8192000</memory></node>")
        return f"test://{path}"

    return write


OpenHost = Callable[[str], LibvirtConnection]


@pytest.fixture
def open_host() -> Iterator[OpenHost]:
    """open_host(uri) -> LibvirtConnection, closed at teardown."""
    opened: list[LibvirtConnection] = []

    def open_(uri: str) -> LibvirtConnection:
        conn = LibvirtConnection.open(uri, Deadline.after(5))
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()


@pytest.fixture
def fresh_host(node_file: NodeFile, open_host: OpenHost) -> LibvirtConnection:
    """A host with no domains. (Connections to test:///default share one state while any of
    them lives, and a kept exception can keep one alive; a node file starts fresh each time.)"""
    return open_host(node_file("empty", []))


# ---- LUN views --------------------------------------------------------------------------------

def lun_view(lun: str, keys: Sequence[int], *, holder: int | None = None,
             rtype: ReservationType | None = None, paths: Sequence[str] = ("p0", "p1"),
             down: Sequence[str] = ()) -> LunView:
    """The same keys and reservation on every path; paths in `down` did not answer."""
    reservation = Reservation(1, holder, rtype if holder is not None else None)
    return LunView(lun, tuple(
        PathView(p, None, None, "connection refused") if p in down
        else PathView(p, tuple(keys), reservation) for p in paths))


def owned_by(config: ClusterConfig, node: str, *others: str) -> dict[str, LunView]:
    """Views of every LUN as the SAN shows them while `node` runs the guests: guest LUNs carry
    `node`'s key alone under their all-registrants reservation (key 0); the other LUNs carry
    `node`'s and `others`' keys and `node` holds their reservation."""
    holder = config.node(node).key
    keys = [holder] + [config.node(o).key for o in others]
    return {lun.name: lun_view(lun.name, [holder], holder=0, rtype=lun.reservation)
            if lun.role is LunRole.GUEST else
            lun_view(lun.name, keys, holder=holder, rtype=lun.reservation)
            for lun in config.luns}
