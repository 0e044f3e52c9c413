"""`stonewall watchdog run` as a real process on the two-node lab: tgtd LUNs on two portals,
node-b's holder as the peer, node-a's service in a process group that a real stand-in
supervisor resets, and node-a's guests on a libvirt test-driver host that only the service's
own connection sees (test:///FILE state lives in the connection).

Bounds are measured on CLOCK_MONOTONIC, which the stand-in's fire record shares with this
process, and compared with the documented timing table for the same settings.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.model import WatchdogSettings
from stonewall.lab.processes import ProcessStartError, StonewallProcess
from stonewall.storage.ownership import LunCheck, VerifyReport, read_views
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.types import ReservationType
from stonewall.watchdog.loop import CheckOutcome
from stonewall.watchdog.service import ServiceExit, check_result
from stonewall.watchdog.snapshot import read_snapshot, status_path
from stonewall.lab.watchdog_supervisor import StandinSupervisor
from stonewall.config.timing import pet_period, settings_problems, timing_table

from .conftest import Node

TIMING = {"interval": 0.2, "io_deadline": 0.3, "check_deadline": 1.0, "timeout": 1.5,
          "grace": 1.0, "margin": 0.5}
SETTINGS = WatchdogSettings(device="standin:/unused", allow_standin=True, **TIMING)
ROWS = {(row.start, row.end): row.bound for row in timing_table(SETTINGS)}
# preemption with the storage reachable -> petting stops and the guests are being stopped
DETECT = ROWS[("preemption (storage reachable)", "petting stops, guest stop begins")]
# preemption with the storage reachable -> reset
PREEMPT_TO_RESET = ROWS[("preemption (storage reachable)", "node reset")]
# preemption or last good check, whatever failed -> reset
ANY_FAILURE_TO_RESET = ROWS[("preemption (any failure)", "node reset")]
SLACK = 0.35  # process and thread wake-ups on a busy machine; below margin + a little
GUEST = {"name": "web1", "luns": ["web1-disk"], "home": "node-a"}


def soon() -> Deadline:
    return Deadline.after(10)


def test_the_test_timings_keep_the_timing_rules() -> None:
    assert settings_problems(SETTINGS) == []
    assert (DETECT, PREEMPT_TO_RESET, ANY_FAILURE_TO_RESET) == (0.6, 2.1, 2.5)


@dataclass
class Machine:
    """node-a as a machine: a process group (what the stand-in resets) that the watchdog
    service joins, the stand-in watching it, and the service itself (not started yet)."""

    group: Node
    standin: StandinSupervisor
    service: StonewallProcess

    def log(self) -> str:
        return self.service.log.read_text(errors="replace")


def host_file(path: Path, running: list[str]) -> str:
    """A libvirt test-driver host with these guests running; its test:/// URI."""
    domains = "".join(f"<domain type='test'><name>{name}</name><memory>65536</memory>"
                      "<os><type>hvm</type></os><devices/></domain>" for name in running)
    path.write_text(f"<node>{domains}<memory>8192000</memory></node>")
    return f"test://{path}"


@pytest.fixture
def machines(lab, standin_for: Callable[[int], StandinSupervisor],
             tmp_path: Path) -> Iterator[Callable[..., Machine]]:
    """machines(running=[...]) -> a fresh node-a machine in the lab's current boot."""
    groups: list[Node] = []

    def boot(running: list[str]) -> Machine:
        # A new group in OUR session: setpgid() cannot move the service into a group of
        # another session (EPERM), so the leader must not be a session leader.
        group = Node(subprocess.Popen(["sleep", "300"], process_group=0))
        groups.append(group)
        standin = standin_for(group.pgid)
        uri = host_file(tmp_path / f"host-a-{len(groups)}.xml", running)
        lab.configure("node-a", libvirt_uri=uri, guests=[GUEST],
                      watchdog={"device": standin.device_name, "allow_standin": True, **TIMING})
        service = lab.process("node-a", ["watchdog", "run", "--node", "node-a"],
                              process_group=group.pgid)
        return Machine(group, standin, service)

    yield boot
    for group in groups:  # the whole "machine": its sleep leader and its service
        try:
            os.killpg(group.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        group.process.wait(timeout=5)


def watchdog_status(lab) -> tuple[int, dict]:
    """`stonewall watchdog status --json` for node-a: exit status and the parsed output."""
    command = lab.process("node-a", ["watchdog", "status", "--json"])
    done = subprocess.run(command.command, env=command.env, capture_output=True, timeout=30)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}


def keys_seen(observer_paths) -> list[tuple[int, ...]]:
    return [path.keys or () for view in read_views(observer_paths, soon(), SYSTEM_CLOCK).values()
            for path in view.paths]


def wait_until(predicate: Callable[[], bool], deadline: Deadline) -> bool:
    while not predicate():
        if deadline.expired():
            return False
        time.sleep(0.05)
    return True


def refused_start(machine: Machine) -> int:
    """Start the service, expecting it to exit instead of reporting READY; its status."""
    with pytest.raises(ProcessStartError):
        machine.service.start()
    process = machine.service.process
    assert process is not None
    code = process.returncode
    machine.service.stop()
    return code


# --- the service against tgtd ------------------------------------------------------------------

def test_a_preempted_node_destroys_its_guests_and_is_reset_within_the_bound(
        lab, machines, record_property):
    lab.start_holder("node-b")
    machine = machines(running=["web1"])
    lab.start("node-a", machine.service)
    code, status = watchdog_status(lab)
    assert code == 0, status
    assert status["watchdog"]["state"] == "petting"
    assert status["reading"]["health"] == "ok"
    assert status["holder"]["joined_in_this_boot"] is True

    before = time.monotonic()
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    preempted, preempted_wall = time.monotonic(), time.time()

    fire = machine.standin.wait_fired(Deadline.after(ANY_FAILURE_TO_RESET + 5))
    assert fire is not None and fire.killed
    # It was petting until the preemption, so the device could not run out sooner.
    assert fire.monotonic - before >= TIMING["timeout"] - pet_period(SETTINGS)
    assert fire.monotonic - preempted <= PREEMPT_TO_RESET + SLACK
    assert machine.service.process is not None
    assert machine.service.process.wait(timeout=5) == -signal.SIGKILL

    snapshot = read_snapshot(status_path(lab.config("node-a").paths.runtime_dir))
    assert snapshot["watchdog"]["state"] == "self-fencing"
    assert snapshot["watchdog"]["self_fencing_reason"].startswith("key gone")
    guest_stop = snapshot["service"]["guest_stop"]
    assert guest_stop["destroyed"] == ["web1"] and guest_stop["ok"] is True
    assert guest_stop["finished_wall"] - preempted_wall <= DETECT + SLACK
    record_property("preempt_to_reset", round(fire.monotonic - preempted, 3))
    record_property("preempt_to_guest_destroyed",
                    round(guest_stop["finished_wall"] - preempted_wall, 3))
    assert snapshot["holder"]["fenced_in_this_boot"] is True
    assert "guest web1 destroyed" in machine.log()

    code, after = watchdog_status(lab)
    assert code == 1
    assert after["reading"]["service_running"] is False


def test_a_node_whose_data_path_registration_was_removed_is_reset_within_the_bound(
        lab, machines, sessions, record_property):
    # Only the guest LUN loses node-a's key: the arbiters still list it, so READ KEYS there
    # proves nothing; the probe of each data-path nexus does. The SAN-side fault is made
    # from a nexus of node-b's key (stonewall's fencer preempts arbiters first).
    machine = machines(running=["web1"])
    lab.start("node-a", machine.service)
    assert lab.client("node-a").claim("web1-disk", soon()).ok is True
    time.sleep(3 * TIMING["interval"])
    key_b = lab.config("node-a").node("node-b").key
    fencer = CommandPrDevice(sessions("iqn.2026-11.lab.stonewall:node-b-fencer", lun=4))
    fencer.register(0, key_b, soon(), ignore_existing=True)
    # service action key 0 on an all-registrants LUN: every other registration goes
    fencer.preempt(key_b, 0, ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS, soon())
    preempted = time.monotonic()
    fire = machine.standin.wait_fired(Deadline.after(ANY_FAILURE_TO_RESET + 5))
    assert fire is not None and fire.killed
    assert fire.monotonic - preempted <= PREEMPT_TO_RESET + SLACK
    record_property("data_path_preempt_to_reset", round(fire.monotonic - preempted, 3))
    snapshot = read_snapshot(status_path(lab.config("node-a").paths.runtime_dir))
    assert snapshot["watchdog"]["self_fencing_reason"] == "key gone (own key missing on web1-disk)"
    assert snapshot["service"]["guest_stop"]["destroyed"] == ["web1"]
    assert snapshot["holder"]["fenced_in_this_boot"] is True


def test_frozen_storage_resets_the_node_within_the_bound(lab, machines, tgtd, record_property):
    machine = machines(running=[])
    lab.start("node-a", machine.service)
    time.sleep(3 * TIMING["interval"])
    frozen = time.monotonic()
    tgtd.freeze()
    try:
        fire = machine.standin.wait_fired(Deadline.after(ANY_FAILURE_TO_RESET + 5))
    finally:
        tgtd.thaw()
    assert fire is not None and fire.killed
    assert fire.monotonic - frozen >= TIMING["timeout"] - pet_period(SETTINGS)
    assert fire.monotonic - frozen <= ANY_FAILURE_TO_RESET + SLACK
    record_property("freeze_to_reset", round(fire.monotonic - frozen, 3))
    assert "SELF-FENCING" in machine.log()
    snapshot = read_snapshot(status_path(lab.config("node-a").paths.runtime_dir))
    assert snapshot["watchdog"]["state"] == "self-fencing"
    # Unreachable is not "fenced": a reboot is not needed for this node to join again.
    assert snapshot["holder"]["fenced_in_this_boot"] is False


def test_restart_in_the_fenced_boot_refuses_without_registering(lab, machines, observer):
    lab.start_holder("node-b")
    first = machines(running=[])
    lab.start("node-a", first.service)
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True
    assert first.standin.wait_fired(Deadline.after(ANY_FAILURE_TO_RESET + 5)) is not None

    # Same boot id (the lab did not "reboot" node-a), and a guest runs that nothing protects.
    second = machines(running=["web1"])
    assert refused_start(second) == ServiceExit.FENCED
    assert "not joining" in second.log()
    assert "guest web1 destroyed (destroyed): start refused (fenced)" in second.log()
    assert not any(event["event"] == "armed" for event in second.standin.events())
    key_a = lab.config("node-a").node("node-a").key
    assert all(key_a not in keys for keys in keys_seen(observer()))
    assert second.group.alive()


def test_restart_after_a_crash_does_not_bring_back_a_key_preempted_meanwhile(
        lab, machines, observer):
    lab.start_holder("node-b")
    first = machines(running=[])
    lab.start("node-a", first.service)
    first.service.kill()  # crashed before it could see the preemption below
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced is True

    second = machines(running=[])
    assert refused_start(second) == ServiceExit.FENCED
    assert "preempted on arbiter0" in second.log()
    key_a = lab.config("node-a").node("node-a").key
    assert all(key_a not in keys for keys in keys_seen(observer()))
    assert not any(event["event"] == "armed" for event in second.standin.events())


def test_clean_stop_without_guests_disarms_and_the_standin_never_fires(lab, machines):
    machine = machines(running=[])
    lab.start("node-a", machine.service)
    assert machine.service.stop(timeout=10) == ServiceExit.CLEAN_STOP
    assert [e["event"] for e in machine.standin.events()][-1] == "disarmed"
    assert machine.standin.wait_fired(Deadline.after(TIMING["timeout"] + 1)) is None
    assert machine.group.alive()
    code, status = watchdog_status(lab)
    assert code == 1 and status["watchdog"]["state"] == "stopped"


def test_stop_is_refused_while_a_guest_runs_and_petting_goes_on(lab, machines):
    machine = machines(running=["web1"])
    lab.start("node-a", machine.service)
    assert machine.service.process is not None
    machine.service.process.send_signal(signal.SIGTERM)
    assert machine.standin.wait_fired(Deadline.after(TIMING["timeout"] + 1)) is None
    assert machine.service.process.poll() is None
    code, status = watchdog_status(lab)
    assert code == 0, status
    assert status["service"]["stop_requested"] is True
    assert status["service"]["stop_refused"].startswith("GuestsStillRunning")
    assert status["watchdog"]["state"] == "petting"
    command = lab.process("node-a", ["watchdog", "status"])
    text = subprocess.run(command.command, env=command.env, capture_output=True, timeout=30,
                          text=True)
    assert text.returncode == 0
    assert "verdict:" in text.stdout and "ok: petting" in text.stdout
    assert "stop requested:" in text.stdout and "True" in text.stdout


def test_the_holder_socket_serves_the_peer_fence_from_the_service(lab, machines, observer):
    machine = machines(running=[])
    lab.start("node-a", machine.service)
    lab.start_holder("node-b")
    # node-a fences node-b through the service's own registered sessions (DESIGN 8).
    assert lab.client("node-a").preempt("node-b", None, soon()).fenced is True
    key_b = lab.config("node-a").node("node-b").key
    assert all(key_b not in keys for keys in keys_seen(observer()))
    assert machine.standin.fired() is None and machine.service.process.poll() is None


# --- refusals and the status command without a running service ---------------------------------

def test_a_standin_without_allow_standin_is_refused_before_anything_happens(lab, observer):
    key_a = lab.config("node-a").node("node-a").key
    lab.configure("node-a", watchdog={"device": "standin:/tmp/nowhere.sock", **TIMING})
    command = lab.process("node-a", ["watchdog", "run", "--node", "node-a"])
    done = subprocess.run(command.command, env=command.env, capture_output=True, timeout=30)
    assert done.returncode == ServiceExit.REFUSED
    assert b"allow_standin" in done.stderr
    lab.configure("node-a")  # valid again, for the observer's sessions
    assert all(key_a not in keys for keys in keys_seen(observer()))


def test_status_without_a_status_file_cannot_tell(lab):
    code, output = watchdog_status(lab)
    assert code == 2 and output == {}


# --- the check adapter's verdicts ---------------------------------------------------------------

@pytest.mark.parametrize("verdicts, outcome", [
    ([True, True], CheckOutcome.OWNED),
    ([True, False], CheckOutcome.FENCED),  # READ KEYS on one path answers for the whole LU
    ([None, False], CheckOutcome.FENCED),
    ([True, None], CheckOutcome.UNREACHABLE),
    ([], CheckOutcome.UNREACHABLE),
])
def test_a_verification_maps_to_one_check_outcome(verdicts, outcome):
    checks = tuple(LunCheck(f"lun{i}", verdict, 1 if verdict is not None else 0,
                            () if verdict is not None else ("p0",))
                   for i, verdict in enumerate(verdicts))
    report = VerifyReport(tuple(check.lun for check in checks), checks)
    assert check_result(report).outcome is outcome


def test_an_owned_answer_names_the_paths_that_are_down():
    report = VerifyReport(("arbiter0",), (LunCheck("arbiter0", True, 1, ("127.0.0.1:3261",)),))
    result = check_result(report)
    assert result.outcome is CheckOutcome.OWNED
    assert "arbiter0 via 127.0.0.1:3261" in result.detail
