"""The stand-in supervisor keeps the kernel watchdog's promises, as a separate process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from stonewall.clock import Deadline
from stonewall.watchdog.errors import (
    WatchdogBusy,
    WatchdogNotArmed,
    WatchdogUnavailable,
    WatchdogUnsuitable,
)
from stonewall.watchdog.standin import StandinWatchdog
from stonewall.lab.watchdog_supervisor import StandinSupervisor

SLACK = 0.25  # process wake-up and scheduling on a busy test machine


def test_an_unpetted_standin_resets_the_node_within_its_timeout(standin, node):
    device = StandinWatchdog(standin.socket_path)
    assert device.arm(1.0) == 1.0
    armed_at = time.monotonic()

    fired = standin.wait_fired(Deadline.after(1.0 + 3))

    assert fired is not None and fired.killed and fired.pgid == node.pgid
    assert 1.0 - 0.05 <= fired.monotonic - armed_at <= 1.0 + SLACK
    assert node.was_reset(within=2)


def test_keepalives_hold_off_the_reset_until_they_stop(standin, node):
    device = StandinWatchdog(standin.socket_path)
    device.arm(1.0)
    until = time.monotonic() + 2.5
    while time.monotonic() < until:  # 2.5 timeouts of petting
        device.keepalive()
        time.sleep(0.2)
    assert standin.fired() is None and node.alive()
    assert device.get_timeout() == 1.0
    assert 0.5 < device.get_timeleft() <= 1.0

    device.keepalive()
    last_pet = time.monotonic()
    fired = standin.wait_fired(Deadline.after(3))

    assert fired is not None
    assert 1.0 - 0.05 <= fired.monotonic - last_pet <= 1.0 + SLACK
    assert node.was_reset(within=2)


def test_magic_close_disarms(standin, node):
    device = StandinWatchdog(standin.socket_path)
    device.arm(1.0)
    device.keepalive()
    device.disarm()

    assert standin.wait_fired(Deadline.after(2.0)) is None
    assert node.alive()
    assert [e["event"] for e in standin.events()] == ["armed", "disarmed"]
    with pytest.raises(WatchdogNotArmed):
        device.keepalive()


def test_a_close_without_magic_character_leaves_it_armed(standin, node):
    device = StandinWatchdog(standin.socket_path)
    device.arm(1.0)
    device.close()
    closed_at = time.monotonic()

    fired = standin.wait_fired(Deadline.after(3))

    assert fired is not None
    # The kernel pings once on an unclean release, so the timer restarts at the close.
    assert 1.0 - 0.05 <= fired.monotonic - closed_at <= 1.0 + SLACK
    assert [e["event"] for e in standin.events()] == ["armed", "unclean-close", "fired"]


def test_a_write_after_the_magic_character_cancels_it(standin, node):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(2)
        raw.connect(standin.socket_path)
        for line in (b"ARM 1.0\n", b"V\n", b"PING\n"):
            raw.sendall(line)
            assert raw.recv(64).startswith(b"OK")

    assert standin.wait_fired(Deadline.after(3)) is not None
    assert node.was_reset(within=2)


NODE_SCRIPT = """
import os, subprocess, sys, time
from stonewall.watchdog.standin import StandinWatchdog
guest = subprocess.Popen(["sleep", "300"])  # stays in this process group, like a guest
print(guest.pid, flush=True)
device = StandinWatchdog(sys.stdin.readline().strip())
device.arm(1.0)
for _ in range(3):
    time.sleep(0.2)
    device.keepalive()
print(time.monotonic(), flush=True)
os._exit(0)  # dies: no magic close, no clean-up of any kind
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # killed, not yet reaped
    except FileNotFoundError:
        return True


def test_a_node_process_that_dies_without_magic_close_still_gets_reset(standin_for):
    service = subprocess.Popen([sys.executable, "-c", NODE_SCRIPT], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        guest_pid = int(service.stdout.readline())
        supervisor: StandinSupervisor = standin_for(service.pid)  # its group is the node
        service.stdin.write(supervisor.socket_path + "\n")
        service.stdin.flush()
        died_at = float(service.stdout.readline())
        assert service.wait(timeout=10) == 0

        fired = supervisor.wait_fired(Deadline.after(3))

        assert fired is not None and fired.killed
        assert fired.monotonic - died_at <= 1.0 + SLACK
        deadline = Deadline.after(2)
        while not _gone(guest_pid) and not deadline.expired():
            time.sleep(0.05)
        assert _gone(guest_pid), "the node's guest survived the reset"
    finally:
        if service.poll() is None:
            service.kill()
        service.wait(timeout=5)
        try:
            os.killpg(service.pid, signal.SIGKILL)  # whatever the test left of the group
        except ProcessLookupError:
            pass


def test_the_device_is_single_open(standin):
    first = StandinWatchdog(standin.socket_path)
    first.arm(5.0)
    with pytest.raises(WatchdogBusy):
        StandinWatchdog(standin.socket_path).arm(5.0)
    first.disarm()


def test_a_second_open_after_magic_close_is_allowed(standin, node):
    first = StandinWatchdog(standin.socket_path)
    first.arm(5.0)
    first.disarm()
    second = StandinWatchdog(standin.socket_path)
    assert second.arm(1.5) == 1.5
    second.disarm()
    assert [e["event"] for e in standin.events()] == ["armed", "disarmed", "armed", "disarmed"]


def test_timeouts_outside_the_kernel_range_are_refused(standin):
    with pytest.raises(WatchdogUnsuitable):
        StandinWatchdog(standin.socket_path).arm(0)
    with pytest.raises(WatchdogUnsuitable):
        StandinWatchdog(standin.socket_path).arm(70000)


def test_no_supervisor_is_a_clear_error(short_dir):
    with pytest.raises(WatchdogUnavailable, match="no stand-in supervisor"):
        StandinWatchdog(f"{short_dir}/absent.sock").arm(1.0)


@pytest.mark.parametrize("pgid", ["1", "0", "-5"])
def test_the_supervisor_refuses_to_kill_init_or_everything(pgid, short_dir):
    result = subprocess.run(
        [sys.executable, "-m", "stonewall.lab.watchdog_supervisor", "--socket", f"{short_dir}/x",
         "--kill-pgid", pgid, "--record", f"{short_dir}/r"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--kill-pgid" in result.stderr
