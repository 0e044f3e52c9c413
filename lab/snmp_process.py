"""Start a lab SNMP device (lab.snmp_device) on a free 127.0.0.1 UDP port, make it mute,
read its outlets, and stop it by PID."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

from stonewall.lab.ports import free_port

READY_TIMEOUT = 20.0


class SnmpDeviceError(RuntimeError):
    """The device did not start."""


class SnmpDeviceProcess:
    """One device: `model` (apc-rpdu, eaton-managed, ifmib) with `outlets` outlets or ports,
    a v1/v2c `community` and an SNMPv3 user (SHA auth) when `v3_user` is given. `stuck` maps
    an outlet number to the raw value it reports whatever it is told."""

    def __init__(self, directory: Path, model: str, *, outlets: int = 2,
                 community: str | None = "private", v3_user: str | None = None,
                 v3_auth_key: str | None = None, stuck: dict[int, int] | None = None,
                 host: str = "127.0.0.1", netns: str | None = None) -> None:
        self.directory = directory
        self.model = model
        self.host = host
        self.netns = netns  # run inside this network namespace, on its address `host`
        # A new namespace has every port free; the host's free one serves as well.
        self.port = free_port("127.0.0.1", socket.SOCK_DGRAM)
        self.community = community
        self.spec = {"model": model, "port": self.port, "outlets": outlets,
                     "community": community, "v3_user": v3_user, "v3_auth_key": v3_auth_key,
                     "stuck": {str(k): v for k, v in (stuck or {}).items()},
                     "host": host, "state_file": str(directory / "state.json")}
        self.process: subprocess.Popen[bytes] | None = None
        self.muted = False

    def start(self) -> "SnmpDeviceProcess":
        self.directory.mkdir(parents=True, exist_ok=True)
        spec_file = self.directory / "spec.json"
        spec_file.write_text(json.dumps(self.spec))
        spec_file.chmod(0o600)  # it holds the device's community and USM key
        with open(self.directory / "device.log", "ab") as log:
            command = [sys.executable, "-m", "stonewall.lab.snmp_device", str(spec_file)]
            if self.netns:
                # `ip netns exec` execs the command: the PID stays the device's own.
                command = ["ip", "netns", "exec", self.netns, *command]
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
        assert self.process.stdout is not None
        watcher = select.poll()
        watcher.register(self.process.stdout, select.POLLIN)
        if not watcher.poll(int(READY_TIMEOUT * 1000)) or \
                not self.process.stdout.readline().startswith(b"READY"):
            self.stop()
            raise SnmpDeviceError(f"lab SNMP device {self.model} did not start; see "
                                  f"{self.directory / 'device.log'}")
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def mute(self) -> None:
        """Stop answering (the port stays bound, requests go unanswered)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.muted = True

    def unmute(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.muted = False

    def outlets(self) -> dict[str, str]:
        """Outlet number -> "on", "off" or "raw-N", as the device last stored it."""
        return json.loads((self.directory / "state.json").read_text())

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # a stopped process does not act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

