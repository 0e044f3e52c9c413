"""Live migration with two real libvirtd daemons, QEMU TCG, tgtd and the nodes' holders
(tests/vm/migration_lab.py). Each test ends with the one rule: the guest runs on one node
at most, one node is registered on its LUN, and (where writers run) the invariant checker
finds no write accepted from the source after the handoff nor from the destination before it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import libvirt
import pytest

from stonewall.clock import Deadline
from stonewall.lab.kernel.guest import GuestError, GuestImage
from stonewall.lab.tgtd import Tgtd
from stonewall.vm.libvirt_conn import (
    DomainState, LibvirtConnection, LibvirtError, StartRefusedByHook)

from .libvirtd import libvirtd_unavailable
from .migration_lab import (
    GUEST, LUN, MIGRATE_URI, MigrationLab, Writers, guest_xml, migration_lab)

pytestmark = pytest.mark.slow


@pytest.fixture
def mlab(tgtd: Tgtd, tmp_path: Path) -> Iterator[MigrationLab]:
    reason = libvirtd_unavailable()
    if reason:
        pytest.skip(reason)
    with migration_lab(tgtd, tmp_path) as started:
        started.conns["node-a"].define(guest_xml())
        done = started.stonewall("node-a", "vm", "start", GUEST, "--uri",
                                 started.daemons["node-a"].uri)
        assert done.returncode == 0, done.stderr
        yield started


def report_of(done) -> dict:
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def wall(report: dict, step: str) -> float:
    return report["began_wall"] + next(s["at"] for s in report["steps"] if s["step"] == step)


def one_owner(mlab: MigrationLab, node: str) -> None:
    assert mlab.running_on() == [node]
    assert mlab.registered() == {LUN: (node,)}


HOPS = (("node-a", "node-b", "source-gone"), ("node-b", "node-a", "source-gone"),
        ("node-a", "node-b", "finish"), ("node-b", "node-a", "finish"))


@pytest.fixture
def new_writers(mlab: MigrationLab, tmp_path: Path) -> Iterator[Callable[[str], Writers]]:
    """new_writers(phase) -> Writers of their own log; every writer is stopped at teardown,
    also when the test failed."""
    made: list[Writers] = []

    def make(phase: str) -> Writers:
        (tmp_path / phase).mkdir()
        made.append(Writers(mlab, tmp_path / phase))
        return made[-1]

    yield make
    for writers in made:
        writers.stop()


def test_vm_migrate_moves_the_guest_and_its_registration_both_ways(
        mlab: MigrationLab, new_writers: Callable[[str], Writers]) -> None:
    for source, destination, handoff_at in HOPS:
        writers = new_writers(f"{source}-to-{destination}-{handoff_at}")
        writers.start(source)
        time.sleep(0.3)
        done = mlab.migrate(source, destination, "--handoff-at", handoff_at)
        report = report_of(done)
        assert done.returncode == 0 and report["outcome"] == "migrated", done.stdout + done.stderr
        steps = [s["step"] for s in report["steps"]]
        first = "source QEMU gone" if handoff_at == "source-gone" else "destination finished"
        assert steps.index(first) < steps.index("destination registered") \
            < steps.index("source unregistered") < steps.index("read back") \
            < steps.index("resumed")
        assert "source QEMU gone" in steps
        one_owner(mlab, destination)
        assert mlab.state(source) is None  # persistent: defined on the destination only now
        writers.start(destination)
        time.sleep(0.5)
        writers.stop()
        violations = writers.check(source, destination, wall(report, "source unregistered"))
        assert violations == [], violations
        acknowledged = writers.acknowledged()
        assert {s.node for s in acknowledged} == {source, destination}
        print(f"{source} -> {destination} ({handoff_at}): libvirt downtime {report['libvirt_downtime_ms']} ms, "
              f"handoff {report['handoff_ms']:.1f} ms, steps {report['steps']}")


def test_virsh_start_on_the_source_after_the_migration_is_refused_naming_the_new_owner(
        mlab: MigrationLab) -> None:
    assert mlab.migrate("node-a", "node-b").returncode == 0
    mlab.conns["node-a"].define(guest_xml())  # an operator keeps a definition on both hosts
    with pytest.raises(StartRefusedByHook) as refused:
        mlab.conns["node-a"].start(GUEST)
    assert f"LUN {LUN} is registered by node-b" in str(refused.value)
    one_owner(mlab, "node-b")


def slow_linux_guest(mlab: MigrationLab) -> None:
    """Replace the guest on node-a by one that boots Linux: its memory is worth copying, so
    at 1 MiB/s a migration of it is still copying many seconds later."""
    try:
        image = GuestImage.find()
    except GuestError as error:
        pytest.skip(str(error))
    source = mlab.conns["node-a"]
    source.destroy(GUEST, Deadline.after(30))
    source.define(guest_xml(192, image))
    assert mlab.stonewall("node-a", "vm", "start", GUEST, "--uri",
                          mlab.daemons["node-a"].uri).returncode == 0
    time.sleep(2)  # the kernel unpacks its initramfs into memory
    source._lookup(GUEST).migrateSetMaxSpeed(1, 0)


def destination_qemu_pid(mlab: MigrationLab, node: str = "node-b") -> int:
    """The PID of the incoming QEMU on `node`, once libvirt started it."""
    pid_file = mlab.daemons[node].run_dir / "qemu" / f"{GUEST}.pid"
    ends = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < ends, "the destination QEMU never started"
        time.sleep(0.05)
    return int(pid_file.read_text())


def test_a_migration_whose_destination_qemu_dies_leaves_the_source_the_only_owner(
        mlab: MigrationLab) -> None:
    slow_linux_guest(mlab)
    results = {}
    migration = threading.Thread(target=lambda: results.update(
        done=mlab.migrate("node-a", "node-b")))
    migration.start()
    pid = destination_qemu_pid(mlab)
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    migration.join(60)
    report = report_of(results["done"])
    assert report["outcome"] == "migration_failed", report
    assert mlab.state("node-a") is DomainState.RUNNING
    one_owner(mlab, "node-a")


def migration_stream(pid: int) -> tuple[int, int]:
    """(local port, remote port) of the one established TCP connection of the incoming QEMU
    `pid`, once the source connected: its migration stream (its monitor and the rest are UNIX
    sockets)."""
    ends = time.monotonic() + 30
    while True:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except FileNotFoundError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
        # tcp6 too: libvirt's incoming QEMU may listen on [::], and accept 127.0.0.1 there.
        rows = [line.split() for table in ("tcp", "tcp6")
                for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]]
        streams = [(int(row[1].rsplit(":", 1)[1], 16), int(row[2].rsplit(":", 1)[1], 16))
                   for row in rows if row[3] == "01" and row[9] in inodes]  # TCP_ESTABLISHED
        if streams:
            assert len(streams) == 1, streams
            return streams[0]
        assert time.monotonic() < ends, "the source never connected to the destination QEMU"
        time.sleep(0.05)


def cut(stream: tuple[int, int]) -> None:
    """Tear down the TCP connection `stream` on 127.0.0.1 (`ss -K`: the kernel aborts the
    socket and resets the connection), and only that one: other tests' migrations may be
    copying on this machine too."""
    local, remote = stream
    killed = subprocess.run(
        ["ss", "-K", "-t", "-n", "-H", "(", "sport", "=", f":{local}", "and", "dport", "=",
         f":{remote}", ")", "or", "(", "sport", "=", f":{remote}", "and", "dport", "=",
         f":{local}", ")"], check=True, capture_output=True, text=True, timeout=10)
    # Measured: ss aborts the source's end (tcp, listed first) and its reset closes the
    # destination's (tcp6) before ss reaches it: one line came back in our runs.
    assert killed.stdout.strip(), "ss -K found no such connection"


@pytest.mark.parametrize("path", ["vm migrate", "plain migrate"], ids=["stonewall", "plain"])
def test_a_network_cut_during_the_copy_leaves_the_source_the_only_owner(
        mlab: MigrationLab, path: str) -> None:
    slow_linux_guest(mlab)
    failed = {}

    def migration() -> None:
        if path == "vm migrate":
            failed["report"] = report_of(mlab.migrate("node-a", "node-b"))
            return
        try:
            mlab.conns["node-a"]._lookup(GUEST).migrate(
                mlab.conns["node-b"]._conn, libvirt.VIR_MIGRATE_LIVE, None, MIGRATE_URI, 1)
        except libvirt.libvirtError as error:
            failed["error"] = error
    migrating = threading.Thread(target=migration)
    migrating.start()
    stream = migration_stream(destination_qemu_pid(mlab))
    # The permit path registers the destination only after the source is gone; the plain
    # path at the hook's `migrate begin`, before any memory is copied.
    copying = ("node-a",) if path == "vm migrate" else ("node-a", "node-b")
    assert mlab.registered() == {LUN: copying}
    time.sleep(1.0)
    cut(stream)
    cut_at = time.monotonic()
    migrating.join(60)
    assert not migrating.is_alive()
    failed_after = time.monotonic() - cut_at
    if path == "vm migrate":
        assert failed["report"]["outcome"] == "migration_failed", failed["report"]
    else:
        assert "error" in failed
    assert mlab.state("node-a") is DomainState.RUNNING
    ends = time.monotonic() + 20  # the destination's `release end` unregisters it
    while mlab.registered() != {LUN: ("node-a",)} or mlab.running_on() != ["node-a"]:
        assert time.monotonic() < ends, (mlab.registered(), mlab.running_on())
        time.sleep(0.2)
    one_owner(mlab, "node-a")
    one_owner_after = time.monotonic() - cut_at
    # Nothing of the cut migration is left in flight: the next one goes through.
    mlab.conns["node-a"]._lookup(GUEST).migrateSetMaxSpeed(8192, 0)
    done = mlab.migrate("node-a", "node-b")
    assert done.returncode == 0, done.stdout + done.stderr
    one_owner(mlab, "node-b")
    print(f"{path} (stream {stream}): failed {failed_after:.2f} s after the cut, one owner "
          f"{one_owner_after:.2f} s after it: "
          f"{failed.get('error') or failed['report'].get('reasons')}")


def test_a_migration_refused_after_the_permit_was_used_leaves_the_source_the_only_owner(
        mlab: MigrationLab) -> None:
    # The operator's hook on the destination refuses `started begin`, after stonewall's hook
    # consumed the permit at `migrate begin` and `prepare begin`.
    (mlab.daemons["node-b"].scratch / "refuse").write_text("started begin")
    done = mlab.migrate("node-a", "node-b")
    assert report_of(done)["outcome"] == "migration_failed", done.stdout
    assert "refused by the operator hook" in done.stderr
    assert mlab.state("node-a") is DomainState.RUNNING
    one_owner(mlab, "node-a")
    # Nothing of the failed migration is left in flight: the next one goes through.
    (mlab.daemons["node-b"].scratch / "refuse").unlink()
    assert mlab.migrate("node-a", "node-b").returncode == 0
    one_owner(mlab, "node-b")


def test_two_migrations_of_one_guest_at_once_one_wins_the_other_is_refused(
        mlab: MigrationLab) -> None:
    slow_linux_guest(mlab)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=mlab.migrate("node-a",
                                                                              "node-b")))
    first.start()
    destination_qemu_pid(mlab)  # the first is copying now
    second = mlab.migrate("node-a", "node-b")
    assert second.returncode == 1
    assert report_of(second)["outcome"] == "refused"
    assert any("already migrating (node-a \N{RIGHTWARDS ARROW} node-b)" in reason
               for reason in report_of(second)["reasons"])
    # While the first is in flight, status and vm list say so.
    status = mlab.stonewall("node-a", "status")
    assert "migrations: web1 migrating (node-a \N{RIGHTWARDS ARROW} node-b)" in status.stdout
    listing = mlab.stonewall("node-a", "vm", "list", "--uri",
                             f"node-a={mlab.daemons['node-a'].uri}", "--uri",
                             f"node-b={mlab.daemons['node-b'].uri}")
    assert "migrating (node-a \N{RIGHTWARDS ARROW} node-b)" in listing.stdout, listing
    assert listing.returncode == 0
    mlab.conns["node-a"]._lookup(GUEST).migrateSetMaxSpeed(8192, 0)
    first.join(120)
    assert report_of(results["first"])["outcome"] == "migrated"
    one_owner(mlab, "node-b")


def test_plain_virsh_migrate_moves_the_registration_through_the_hook_both_ways(
        mlab: MigrationLab) -> None:
    for source, destination in (("node-a", "node-b"), ("node-b", "node-a")):
        mlab.conns[source]._lookup(GUEST).migrate(
            mlab.conns[destination]._conn, libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE, None,
            "tcp://127.0.0.1", 0)
        assert mlab.running_on() == [destination]
        assert mlab.state(destination) is DomainState.RUNNING
        # The source unregisters at its `release end`, which may come after migrate() returned.
        ends = time.monotonic() + 15
        while mlab.registered() != {LUN: (destination,)}:
            assert time.monotonic() < ends, mlab.registered()
            time.sleep(0.2)
        one_owner(mlab, destination)


def test_a_plain_migration_to_a_node_whose_holder_is_down_is_refused_at_migrate_begin(
        mlab: MigrationLab) -> None:
    mlab.lab.holders["node-b"].stop()
    began = time.monotonic()
    with pytest.raises(libvirt.libvirtError) as refused:
        mlab.conns["node-a"]._lookup(GUEST).migrate(
            mlab.conns["node-b"]._conn, libvirt.VIR_MIGRATE_LIVE, None, "tcp://127.0.0.1", 0)
    assert refused.value.get_error_code() == libvirt.VIR_ERR_HOOK_SCRIPT_FAILED
    assert "holder did not answer" in str(refused.value)
    print(f"refused after {time.monotonic() - began:.2f} s")
    assert mlab.state("node-a") is DomainState.RUNNING
    assert mlab.running_on() == ["node-a"]
    assert mlab.registered() == {LUN: ("node-a",)}
    with pytest.raises(LibvirtError):
        mlab.conns["node-b"].state(GUEST)  # no domain was left on the destination


def test_a_registration_left_by_a_crashed_destination_is_removed_when_its_libvirtd_starts(
        mlab: MigrationLab) -> None:
    slow_linux_guest(mlab)
    source = mlab.conns["node-a"]
    failed = {}

    def plain_migration() -> None:
        try:
            source._lookup(GUEST).migrate(mlab.conns["node-b"]._conn, libvirt.VIR_MIGRATE_LIVE,
                                          None, "tcp://127.0.0.1", 0)
        except libvirt.libvirtError as error:
            failed["error"] = error
    migration = threading.Thread(target=plain_migration)
    migration.start()
    pid = destination_qemu_pid(mlab)
    assert mlab.registered() == {LUN: ("node-a", "node-b")}  # the hook's `migrate begin`
    # node-b crashes: its libvirtd and the incoming QEMU die, no hook runs there any more.
    os.kill(mlab.daemons["node-b"].pid, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    migration.join(60)
    assert "error" in failed
    assert mlab.state("node-a") is DomainState.RUNNING
    assert mlab.registered() == {LUN: ("node-a", "node-b")}  # stale: node-b runs nothing
    # node-b's libvirtd comes back, finds the incoming QEMU dead and runs `release end` for
    # it: the hook unregisters node-b.
    mlab.conns["node-b"].close()
    mlab.daemons["node-b"].stop()
    mlab.daemons["node-b"].start()
    mlab.conns["node-b"] = LibvirtConnection.open(mlab.daemons["node-b"].uri, Deadline.after(30))
    ends = time.monotonic() + 20
    while mlab.registered() != {LUN: ("node-a",)}:
        assert time.monotonic() < ends, mlab.registered()
        time.sleep(0.2)
    one_owner(mlab, "node-a")
    listing = mlab.stonewall("node-a", "vm", "list", "--json", "--uri",
                             f"node-a={mlab.daemons['node-a'].uri}", "--uri",
                             f"node-b={mlab.daemons['node-b'].uri}")
    assert json.loads(listing.stdout)["guests"][0]["verdict"] == "ok", listing.stdout


def test_a_source_that_dies_after_the_switchover_is_fenced_then_the_destination_resumes(
        mlab: MigrationLab) -> None:
    command = subprocess.Popen(
        [sys.executable, "-m", "stonewall", "--config", str(mlab.lab.configs["node-a"]), "vm",
         "migrate", GUEST, "--to", "node-b", "--uri", mlab.daemons["node-a"].uri, "--to-uri",
         mlab.daemons["node-b"].uri, "--migrate-uri", "tcp://127.0.0.1", "--peer-config",
         str(mlab.lab.configs["node-b"])],
        env={**os.environ, "STONEWALL_NODE": "node-a"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    # The destination finished receiving (paused); libvirt is still tearing the source QEMU
    # down (seconds, measured) and the handoff has not begun: node-a dies now.
    try:
        ends = time.monotonic() + 60
        while not mlab.conns["node-b"].incoming_finished_paused(GUEST):
            assert time.monotonic() < ends and command.poll() is None, "no switchover"
            time.sleep(0.005)
        qemu = int((mlab.daemons["node-a"].run_dir / "qemu" / f"{GUEST}.pid").read_text())
    finally:
        command.kill()
    os.kill(mlab.daemons["node-a"].pid, signal.SIGKILL)
    os.kill(qemu, signal.SIGKILL)
    mlab.lab.holders["node-a"].kill()
    command.wait()
    assert mlab.registered() == {LUN: ("node-a",)}  # the handoff never ran
    assert mlab.state("node-b") is DomainState.PAUSED

    refused = mlab.stonewall("node-b", "vm", "complete-migration", GUEST, "--uri",
                             mlab.daemons["node-b"].uri)
    assert refused.returncode == 1 and "node-a is not proven fenced" in refused.stderr
    assert mlab.state("node-b") is DomainState.PAUSED  # nothing runs while node-a may

    fence = mlab.lab.client("node-b").preempt("node-a", None, Deadline.after(15))
    assert fence.fenced
    done = mlab.stonewall("node-b", "vm", "complete-migration", GUEST, "--uri",
                          mlab.daemons["node-b"].uri)
    assert done.returncode == 0, done.stderr
    assert mlab.state("node-b") is DomainState.RUNNING
    assert mlab.registered() == {LUN: ("node-b",)}


def test_a_destination_that_dies_after_the_resume_is_fenced_and_its_guest_taken_over(
        mlab: MigrationLab, new_writers: Callable[[str], Writers]) -> None:
    assert mlab.migrate("node-a", "node-b").returncode == 0
    one_owner(mlab, "node-b")
    # The guest's writes on node-b keep going after node-b "dies" (the worst case: its copy
    # lives on in memory): after the fence the SAN alone keeps them off the LUN.
    writers = new_writers("takeover")
    writers.start("node-b")
    time.sleep(0.3)
    qemu = int((mlab.daemons["node-b"].run_dir / "qemu" / f"{GUEST}.pid").read_text())
    os.kill(mlab.daemons["node-b"].pid, signal.SIGKILL)
    os.kill(qemu, signal.SIGKILL)
    mlab.lab.holders["node-b"].kill()
    mlab.conns["node-a"].define(guest_xml())  # persistent: libvirt undefined it on node-a
    takeover = ("vm", "takeover", "node-b", "--uri", mlab.daemons["node-a"].uri)
    refused = mlab.stonewall("node-a", *takeover)
    assert refused.returncode == 3 and "node-b is not proven fenced" in refused.stderr, refused
    assert mlab.state("node-a") is DomainState.SHUT_OFF
    assert mlab.registered() == {LUN: ("node-b",)}

    assert mlab.lab.client("node-a").preempt("node-b", None, Deadline.after(15)).fenced
    fenced_at = time.time()  # the key was read gone by now
    done = mlab.stonewall("node-a", *takeover, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # web1's home is node-a: the fence record, not `home`, makes it node-b's guest.
    assert f"takeover of node-b: node-b's key was on arbiter0, arbiter1, data0, {LUN} when " \
           "this node preempted it" in done.stdout, done.stdout
    assert f"{GUEST} (node-b was registered on {LUN} at the fence): started after waiting" \
        in done.stdout, done.stdout  # `safe`: T_safe after the verified fence
    one_owner(mlab, "node-a")
    writers.start("node-a")
    time.sleep(0.5)
    writers.stop()
    violations = writers.check("node-b", "node-a", fenced_at)
    assert violations == [], violations
    assert {s.node for s in writers.acknowledged()} == {"node-a", "node-b"}
    # node-b's writer was still writing after the fence, and the SAN refused it.
    assert any(s.node == "node-b" and s.time > fenced_at for s in writers.conflicts())
    print(done.stdout)


VIRTUAL_DOMAIN = Path("/usr/lib/ocf/resource.d/heartbeat/VirtualDomain")


def test_pacemakers_virtualdomain_agent_migrates_through_the_hook(
        mlab: MigrationLab, tmp_path: Path) -> None:
    """The agent's migrate_to / migrate_from, run as Pacemaker runs them (OCF environment),
    without a cluster: its `virsh migrate --live` takes the plain path through the hook."""
    if not VIRTUAL_DOMAIN.exists() or shutil.which("virsh") is None:
        pytest.skip("needs resource-agents and libvirt-clients (virsh)")
    config = tmp_path / "web1.xml"  # as libvirt formats it: the agent greps <name> by line
    config.write_text(mlab.conns["node-a"].xml(GUEST, inactive=True))

    def agent(action: str, node: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VIRTUAL_DOMAIN), action], capture_output=True, text=True, timeout=120,
            check=False, env={**os.environ, "OCF_ROOT": "/usr/lib/ocf",
                              "OCF_RESOURCE_INSTANCE": "web1-vm",
                              "OCF_RESKEY_config": str(config),
                              "OCF_RESKEY_hypervisor": mlab.daemons[node].uri,
                              "OCF_RESKEY_remoteuri": mlab.daemons["node-b"].uri,
                              "OCF_RESKEY_migrateuri": "tcp://127.0.0.1",
                              "OCF_RESKEY_CRM_meta_migrate_target": "node-b",
                              "OCF_RESKEY_CRM_meta_timeout": "120000"})

    migrated = agent("migrate_to", "node-a")
    assert migrated.returncode == 0, migrated.stderr
    arrived = agent("migrate_from", "node-b")
    assert arrived.returncode == 0, arrived.stderr
    assert mlab.state("node-b") is DomainState.RUNNING
    ends = time.monotonic() + 15  # the source unregisters at its `release end`
    while mlab.registered() != {LUN: ("node-b",)}:
        assert time.monotonic() < ends, mlab.registered()
        time.sleep(0.2)
    one_owner(mlab, "node-b")
