"""A Redfish BMC on 127.0.0.1: OpenStack's sushy-tools emulator (`sushy-emulator`) over HTTPS
with basic authentication, whose "machine" is the domain `test` of libvirt's test driver
(test:///default, private to the emulator's process). `fence_redfish` drives it unmodified.

The emulator is started on a free port with a self-signed certificate made by openssl and a
bcrypt htpasswd file (the only digest it accepts), and stopped by PID."""
from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stonewall.lab.ports import free_port

READY_TIMEOUT = 30.0
SYSTEM = "test"  # the test driver's one domain


class RedfishEmulatorError(RuntimeError):
    """The emulator did not start."""


def emulator_program() -> str | None:
    """sushy-emulator beside this Python (a virtualenv), else on PATH."""
    beside = Path(sys.executable).parent / "sushy-emulator"
    return str(beside) if beside.exists() else shutil.which("sushy-emulator")


class RedfishEmulator:
    def __init__(self, directory: Path, username: str = "admin",
                 password: str = "redfish-lab-password") -> None:
        self.directory = directory
        self.host = "127.0.0.1"
        self.port = free_port(self.host, socket.SOCK_STREAM)
        self.username, self.password = username, password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedfishEmulator":
        import bcrypt  # a dependency of sushy-tools

        program = emulator_program()
        if program is None:
            raise RedfishEmulatorError("sushy-emulator not found: pip install sushy-tools")
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = self.directory / "cert.pem", self.directory / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", f"/CN={self.host}", "-keyout", str(key), "-out",
                        str(cert)], check=True, capture_output=True, timeout=60)
        htpasswd = self.directory / "htpasswd"
        digest = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"{self.username}:{digest}\n")
        config = self.directory / "emulator.conf"
        config.write_text(
            f"SUSHY_EMULATOR_LISTEN_IP = {self.host!r}\n"
            f"SUSHY_EMULATOR_LISTEN_PORT = {self.port}\n"
            "SUSHY_EMULATOR_LIBVIRT_URI = 'test:///default'\n"
            f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
            f"SUSHY_EMULATOR_SSL_CERT = {str(cert)!r}\n"
            f"SUSHY_EMULATOR_SSL_KEY = {str(key)!r}\n")
        with open(self.directory / "emulator.log", "ab") as log:
            self.process = subprocess.Popen([program, "--config", str(config)], stdout=log,
                                            stderr=log, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while self.power_state() is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RedfishEmulatorError(f"sushy-emulator did not answer; see "
                                           f"{self.directory / 'emulator.log'}")
            time.sleep(0.2)
        return self

    def power_state(self) -> str | None:
        """The system's PowerState as the emulator reports it ("On", "Off"), None if mute."""
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        request = urllib.request.Request(
            f"https://{self.host}:{self.port}/redfish/v1/Systems/{SYSTEM}",
            headers={"Authorization": "Basic " + base64.b64encode(
                f"{self.username}:{self.password}".encode()).decode()})
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as answer:
                return json.loads(answer.read())["PowerState"]
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            return None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
