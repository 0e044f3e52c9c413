"""The kernel watchdog adapter: what can be proven on a machine without /dev/watchdog.

This machine's kernel has CONFIG_MODULES and CONFIG_SOFT_WATCHDOG unset, so `modprobe
softdog` cannot give a device here. On a host that has one, set
STONEWALL_TEST_REAL_WATCHDOG=/dev/watchdog to run the opt-in test at the end (it always
magic-closes, and only on a driver that supports magic close).
"""
from __future__ import annotations

import os
import struct

import pytest

from stonewall.watchdog.device import (
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMELEFT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETTIMEOUT,
    LinuxWatchdog,
    WatchdogInfo,
    holders_of,
)
from stonewall.watchdog.errors import WatchdogNotArmed, WatchdogUnavailable, WatchdogUnsuitable


def test_ioctl_numbers_match_the_values_measured_against_linux_watchdog_h():
    # reference/watchdog.md 4.1, compiled from /usr/include/linux/watchdog.h on x86_64
    assert WDIOC_GETSUPPORT == 0x80285700
    assert WDIOC_KEEPALIVE == 0x80045705
    assert WDIOC_SETTIMEOUT == 0xC0045706
    assert WDIOC_GETTIMEOUT == 0x80045707
    assert WDIOC_GETTIMELEFT == 0x8004570A


def test_watchdog_info_is_decoded_from_the_kernel_struct():
    raw = struct.pack("=II32s", 0x8180, 0, b"Software Watchdog")
    info = WatchdogInfo.unpack(raw)
    assert info == WatchdogInfo(0x8180, 0, "Software Watchdog")


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_missing_device_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(WatchdogUnavailable, match=r"no watchdog device at .*/watchdog.*softdog"):
        LinuxWatchdog(str(tmp_path / "watchdog")).arm(10)


def test_a_regular_file_or_fifo_is_not_a_watchdog(tmp_path):
    regular = tmp_path / "plain"
    regular.write_text("")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (regular, fifo):
        with pytest.raises(WatchdogUnavailable, match="not a character device"):
            LinuxWatchdog(str(path)).arm(10)


def test_a_character_device_that_is_no_watchdog_is_refused_and_released():
    before = _open_fds()
    # /dev/null opens fine; the real WDIOC_GETSUPPORT ioctl then answers ENOTTY.
    with pytest.raises(WatchdogUnavailable, match="not a watchdog"):
        LinuxWatchdog("/dev/null").arm(10)
    assert _open_fds() == before


def test_a_fractional_timeout_is_refused_before_anything_is_opened(tmp_path):
    with pytest.raises(WatchdogUnsuitable, match="whole number of seconds"):
        LinuxWatchdog("/dev/null").arm(1.5)


def test_operations_before_arm_are_refused():
    device = LinuxWatchdog("/dev/null")
    for operation in (device.keepalive, device.get_timeout, device.get_timeleft,
                      device.disarm, device.close):
        with pytest.raises(WatchdogNotArmed):
            operation()


def test_holders_are_found_by_scanning_proc(tmp_path):
    held = tmp_path / "held"
    held.write_text("")
    free = tmp_path / "free"
    free.write_text("")
    fd = os.open(held, os.O_RDONLY)
    try:
        assert os.getpid() in holders_of(str(held))
        assert os.getpid() not in holders_of(str(free))
    finally:
        os.close(fd)


REAL_DEVICE = os.environ.get("STONEWALL_TEST_REAL_WATCHDOG")


@pytest.mark.skipif(not REAL_DEVICE, reason="opt-in: set STONEWALL_TEST_REAL_WATCHDOG to a "
                    "watchdog device (none exists here; softdog cannot be loaded)")
def test_a_real_kernel_watchdog_arms_reports_and_disarms():
    device = LinuxWatchdog(REAL_DEVICE)
    assert device.arm(30) == 30  # refuses a driver without magic close
    try:
        device.keepalive()
        assert device.get_timeout() == 30
        left = device.get_timeleft()
        assert left is None or 0 < left <= 30
    finally:
        device.disarm()
