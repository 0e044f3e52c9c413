"""Fuzzing the libvirt qemu hook: its argv and the domain XML on its stdin. Any call is let
through (exit 0: not judged, or allowed), refused (1) or a usage error (2), with at most one
line on stderr; `reconnect` and every other operation it does not judge are never refused,
and a start is never allowed on a node that cannot be shown to own the guest's LUNs."""
from __future__ import annotations

import io
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given
from hypothesis import strategies as st

from stonewall.config.loader import load_config
from stonewall.vm.disks import DomainXmlError, parse_domain_disks
from stonewall.vm.hook import (
    EXIT_ALLOWED, EXIT_REFUSED, EXIT_USAGE, HookUsageError, parse_hook_argv)
from stonewall.handlers.qemu_hook import hook_main
from stonewall.vm.mapping import UnknownGuest, guest_luns

from . import budget
from .support import assert_one_line, python_module, run

EXAMPLE_PATH = Path(__file__).resolve().parents[2] / "examples" / "multipath-cluster.yaml"
CONFIG = load_config(str(EXAMPLE_PATH))
TARGET = "iqn.2026-11.org.example:array1"

numbers = st.one_of(st.integers(0, 70000).map(str), st.integers(1, 6000).map(lambda n: "1" * n),
                    st.sampled_from(["", "-1", "٣", "²", "3 ", "0x3", "3.0"]))
paths = st.one_of(
    st.sampled_from(["/dev/mapper/web1-disk", "/dev/mapper/mpatha-part1", "/dev/drbd0",
                     "/dev/drbd/by-res/r0/0", "/dev/drbd/by-res/r0", "/dev/sdb", "/dev/vg0/lv",
                     "/dev/disk/by-id/dm-uuid-mpath-36001405aaaa",
                     "/dev/disk/by-id/dm-uuid-part1-mpath-36001405aaaa",
                     "/dev/disk/by-id/wwn-0x6001405aaaa", "/dev/disk/by-id/scsi-36001405bb",
                     "/dev/disk/by-id/dm-name-web1-disk", "/dev/disk/by-uuid/1234", ""]),
    numbers.map(lambda n: f"/dev/drbd{n}"),
    numbers.map(lambda n: f"/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-{TARGET}-lun-{n}"),
    numbers.map(lambda n: f"/dev/disk/by-path/ip-[::1]:{n}-iscsi-{TARGET}-lun-3-part2"),
    st.text(max_size=30))
texts = st.one_of(st.sampled_from(["web1", "db1", "nobody", "", TARGET, f"{TARGET}/3"]),
                  st.text(max_size=20))


@st.composite
def disk_xml(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["block", "network", "file", "volume", "dir", "nvme", None]))
    device = draw(st.sampled_from(["disk", "lun", "cdrom", "floppy", None, "x"]))
    attributes = "".join(f" {name}={quoteattr(value)}" for name, value in
                         (("type", kind), ("device", device)) if value is not None)
    if kind == "network":
        name = draw(st.one_of(numbers.map(lambda n: f"{TARGET}/{n}"), texts))
        hosts = "".join(f"<host name={quoteattr(draw(texts))} port={quoteattr(draw(numbers))}/>"
                        for _ in range(draw(st.integers(0, 2))))
        protocol = draw(st.sampled_from(["iscsi", "rbd", "nbd", ""]))
        source = f"<source protocol={quoteattr(protocol)} name={quoteattr(name)}>{hosts}" + (
            "<reservations managed='yes'/>" if draw(st.booleans()) else "") + "</source>"
    elif kind == "block":
        source = f"<source dev={quoteattr(draw(paths))}/>"
    else:
        source = draw(st.sampled_from(["", "<source/>", "<source file='/var/lib/x.qcow2'/>",
                                       "<source pool='p' volume='v'/>"]))
    extras = draw(st.sampled_from(["", "<readonly/>", "<shareable/>",
                                   f"<target dev={quoteattr(draw(texts))}/>"]))
    return f"<disk{attributes}>{source}{extras}</disk>"


@st.composite
def domain_xml(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["domain", "domain", "domain", "junk", "bomb", "other-root"]))
    if shape == "junk":
        return draw(st.text(max_size=200))
    if shape == "bomb":  # 'billion laughs': entities that expand 10**9 times
        entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
        return (f'<!DOCTYPE domain [<!ENTITY e0 "lol">{entities}]>'
                f"<domain><name>&e9;</name></domain>")
    root = "domain" if shape == "domain" else draw(st.sampled_from(["network", "pool", "x"]))
    name = draw(st.one_of(st.just("web1"), texts))
    disks = "".join(draw(st.lists(disk_xml(), max_size=4)))
    return f"<{root} type='kvm'><name>{escape(name)}</name><devices>{disks}</devices></{root}>"


@budget.pure(400)
@given(xml=domain_xml())
def test_any_domain_xml_is_disks_or_one_refusal(xml: str) -> None:
    try:
        domain = parse_domain_disks(xml)
    except DomainXmlError as refusal:
        assert_one_line(str(refusal))
        return
    try:
        storage = guest_luns(CONFIG, domain.name, xml)
    except (DomainXmlError, UnknownGuest) as refusal:
        assert_one_line(str(refusal))
        return
    assert set(storage.luns) <= {lun.name for lun in CONFIG.luns}


operations = st.one_of(
    st.sampled_from(["prepare", "start", "started", "stopped", "release", "migrate", "restore",
                     "reconnect", "attach", "PREPARE"]), st.text(max_size=8))
sub_operations = st.one_of(st.sampled_from(["begin", "end", "-", "BEGIN"]), st.text(max_size=6))
hook_argvs = st.one_of(
    st.tuples(st.one_of(st.just("web1"), texts), operations, sub_operations,
              st.one_of(st.just("-"), texts)).map(list),
    st.lists(st.text(max_size=10), max_size=5))


class NoViews(RuntimeError):
    """What a node without its holder can tell about LUN ownership: nothing."""


def no_views(luns, deadline):
    raise NoViews("the holder is not running")


@budget.pure(400)
@given(argv=hook_argvs, xml=domain_xml())
def test_a_hook_call_is_let_through_refused_or_a_usage_error_in_one_line(argv, xml) -> None:
    stderr = io.StringIO()
    code = hook_main(["qemu", *argv], io.StringIO(xml), stderr, load_config=lambda: CONFIG,
                     node_name="kvm-b", read_views=no_views, timeout=2)
    assert code in (EXIT_ALLOWED, EXIT_REFUSED, EXIT_USAGE)
    assert_one_line(stderr.getvalue().removesuffix("\n"))
    try:
        call = parse_hook_argv(["qemu", *argv])
    except HookUsageError:
        assert code == EXIT_USAGE
        return
    if call.judged is None:
        assert code == EXIT_ALLOWED  # reconnect must never fail: libvirt would kill QEMU
    elif code == EXIT_ALLOWED:
        # Without ownership evidence only a guest stonewall does not manage may start.
        assert not guest_luns(CONFIG, call.guest, xml).managed


@budget.process(6)
@given(argv=hook_argvs.filter(lambda args: all("\0" not in arg for arg in args)),
       xml=domain_xml())
def test_the_hook_as_libvirt_runs_it_answers_in_one_line(tmp_path: Path, argv, xml) -> None:
    # The example's portals, moved where nothing listens: ownership cannot be read.
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE_PATH.read_text().replace("127.0.0.1:3260", "127.0.0.1:9")
                      .replace("127.0.0.2:3260", "127.0.0.1:10"))
    config.chmod(0o600)
    result = run(python_module("stonewall", "--config", str(config), "vm", "hook", "run",
                               "--node", "kvm-b", "--timeout", "3", "--", *argv),
                 stdin=xml.encode("utf-8", "surrogatepass"))
    result.assert_no_traceback()
    assert result.exit_code in (EXIT_ALLOWED, EXIT_REFUSED, EXIT_USAGE), result.stderr
    assert len(result.stderr.splitlines()) <= 1, result.stderr
    assert result.stdout == ""  # for migrate and restore stdout would replace the XML
    try:
        call = parse_hook_argv(["qemu", *argv])
    except HookUsageError:
        return
    if call.judged is None:
        assert result.exit_code == EXIT_ALLOWED
