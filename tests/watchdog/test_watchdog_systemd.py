"""sd_notify, written out: checked against a real datagram socket in place of systemd."""
from __future__ import annotations

import os
import socket

import pytest

from stonewall.watchdog.systemd import NotifyFailed, SystemdNotifier


def _receive(sock: socket.socket) -> str:
    sock.settimeout(2)
    return sock.recv(4096).decode()


def test_messages_reach_the_notify_socket(short_dir):
    path = f"{short_dir}/notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
        notifier.ready()
        notifier.watchdog()
        notifier.status("petting /dev/watchdog,\nlast check 0.2s ago")
        assert [_receive(systemd) for _ in range(3)] == [
            "READY=1", "WATCHDOG=1", "STATUS=petting /dev/watchdog, last check 0.2s ago"]


def test_an_abstract_socket_is_named_with_a_leading_at():
    name = f"stonewall-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind("\0" + name)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1", "STATUS=up")
        assert _receive(systemd) == "READY=1\nSTATUS=up"


def test_without_systemd_nothing_is_sent():
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_a_named_socket_that_is_gone_is_an_error(short_dir):
    with pytest.raises(NotifyFailed):
        SystemdNotifier({"NOTIFY_SOCKET": f"{short_dir}/nobody"}).watchdog()


def test_an_unsupported_address_is_an_error():
    with pytest.raises(NotifyFailed, match="unsupported"):
        SystemdNotifier({"NOTIFY_SOCKET": "vsock:2:1234"})
