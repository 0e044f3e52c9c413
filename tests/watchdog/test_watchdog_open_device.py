"""The configured device is used as named, or refused: never a silent fallback."""
from __future__ import annotations

import pytest

from stonewall.config.model import WatchdogSettings
from stonewall.watchdog.device import LinuxWatchdog
from stonewall.watchdog.errors import StandinNotAllowed, WatchdogUnavailable
from stonewall.watchdog.open_device import open_watchdog
from stonewall.watchdog.standin import StandinWatchdog


def test_the_standin_is_refused_unless_allowed():
    with pytest.raises(StandinNotAllowed, match="allow_standin is false"):
        open_watchdog(WatchdogSettings(device="standin:/run/sw.sock"))


def test_an_allowed_standin_is_opened_on_its_socket(standin, node):
    device = open_watchdog(WatchdogSettings(device=standin.device_name, allow_standin=True))
    assert isinstance(device, StandinWatchdog)
    assert device.name == standin.device_name
    device.arm(2.0)
    device.disarm()
    assert [e["event"] for e in standin.events()] == ["armed", "disarmed"]


def test_a_standin_needs_an_absolute_socket_path():
    with pytest.raises(WatchdogUnavailable, match="absolute"):
        open_watchdog(WatchdogSettings(device="standin:relative.sock", allow_standin=True))


def test_a_missing_real_device_is_an_error_even_where_the_standin_is_allowed(tmp_path):
    settings = WatchdogSettings(device=str(tmp_path / "watchdog"), allow_standin=True)
    with pytest.raises(WatchdogUnavailable, match="no watchdog device"):
        open_watchdog(settings)


def test_a_device_path_gives_the_kernel_adapter_without_opening_it():
    device = open_watchdog(WatchdogSettings(device="/dev/null"))
    assert isinstance(device, LinuxWatchdog) and device.name == "/dev/null"


@pytest.mark.parametrize("value", ["watchdog", "", "softdog:/dev/x"])
def test_anything_else_is_refused(value):
    with pytest.raises(WatchdogUnavailable):
        open_watchdog(WatchdogSettings(device=value))
