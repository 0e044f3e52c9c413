"""One kernel-tier guest: a QEMU TCG machine that is one cluster node.

- Each path to a LUN is a QEMU `-drive` with QEMU's own iSCSI driver (libiscsi) under a
  `scsi-block` device on one virtio-scsi HBA: SCSI commands, PR IN/OUT included, pass through
  to the target, and each path is its own I_T nexus at the target for the guest's lifetime,
  as a kernel initiator's would be.
- `-device i6300esb` gives the guest a real watchdog behind /dev/watchdog; QEMU's
  `-action watchdog=reset` plus `reboot=shutdown` makes its firing end the QEMU process, and
  the QMP event stream reports it (WATCHDOG, then SHUTDOWN guest-reset), timed on the host.
- The host's /usr and the project tree are read-only 9p shares: the guest runs the project's
  .venv (its Python and stonewall) from there, no Python in the image.
- The guest agent (agent.py) answers on a virtio-serial port, a unix socket here.
Never KVM: /dev/kvm answers here but guests hang in boot under it (reference/kernel-tier.md).
Stopped by PID; the console is kept with host-side timestamps.
"""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stonewall.lab.driver_client import DriverClient

PROJECT = Path(__file__).resolve().parents[2]
IMAGE_VARIABLE = "STONEWALL_KERNEL_GUEST"  # where scripts/build-kernel-guest put the image
DEFAULT_IMAGE = PROJECT / ".kernel-guest"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1bc")


class GuestError(RuntimeError):
    """The guest could not be started, or did not answer in time."""


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initramfs: Path

    @classmethod
    def find(cls, environ: dict[str, str] | None = None) -> "GuestImage":
        """The image scripts/build-kernel-guest built ($STONEWALL_KERNEL_GUEST, else
        .kernel-guest in the project); GuestError naming the fix when it is missing."""
        root = Path((environ or dict(os.environ)).get(IMAGE_VARIABLE) or DEFAULT_IMAGE)
        image = cls(root / "vmlinux", root / "base.cpio")
        missing = [str(p) for p in (image.kernel, image.initramfs) if not p.is_file()]
        if missing:
            raise GuestError(f"no kernel-tier guest image ({', '.join(missing)}): run "
                             "scripts/build-kernel-guest (scripts/setup runs it)")
        return image


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


@dataclass
class ConsoleLine:
    at: float  # host monotonic
    text: str


@dataclass
class QmpEvent:
    at: float  # host monotonic
    name: str
    data: dict[str, Any]


@dataclass
class KernelGuest:
    name: str
    image: GuestImage
    workdir: Path
    paths: list[str]  # iscsi:// URLs, one per path
    initiator: str
    memory_mb: int = 256
    project: Path = PROJECT
    console: list[ConsoleLine] = field(default_factory=list)
    events: list[QmpEvent] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    agent: DriverClient | None = None
    started_at: float = 0.0
    block_io_errors: int = 0
    _path_devices: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _plugs: int = field(default=0, init=False, repr=False)

    @property
    def agent_socket(self) -> Path:
        return self.workdir / "agent.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.workdir / "qmp.sock"

    def command(self) -> list[str]:
        binary = qemu_binary()
        if binary is None:
            raise GuestError("qemu-system-x86_64 not found: install the Debian package "
                             "qemu-system-x86")
        append = (f"console=ttyS0 quiet panic=-1 node={self.name} ndisks={len(self.paths)} "
                  f"project={self.project}")
        command = [
            binary, "-M", "pc", "-accel", "tcg", "-cpu", "max", "-m", str(self.memory_mb),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-monitor", "none", "-name", self.name,
            "-kernel", str(self.image.kernel), "-initrd", str(self.image.initramfs),
            "-append", append, "-iscsi", f"initiator-name={self.initiator}",
            "-device", "i6300esb", "-action", "watchdog=reset,reboot=shutdown",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_socket},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=agent",
            "-device", "virtio-scsi-pci,id=scsi0",
        ]
        for tag, directory in (("usr", "/usr"), ("project", str(self.project))):
            command += ["-virtfs", f"local,path={directory},mount_tag={tag},"
                                   "security_model=none,readonly=on,multidevs=remap"]
        for index, url in enumerate(self.paths):
            command += ["-drive", f"file={url},if=none,id=path{index},format=raw,cache=none",
                        "-device", f"scsi-block,drive=path{index},bus=scsi0.0,channel=0,"
                                   f"scsi-id={index},lun=0,id=dev{index}"]
        return command

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> "KernelGuest":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._path_devices = {index: f"dev{index}" for index in range(len(self.paths))}
        for stale in (self.agent_socket, self.qmp_socket):
            stale.unlink(missing_ok=True)
        log = open(self.workdir / "console.log", "w")  # noqa: SIM115 - the reader closes it
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read_console, args=(log,), daemon=True).start()
        self._connect_qmp()
        self._connect_agent()
        return self

    def _wait_socket(self, path: Path, deadline: float) -> socket.socket:
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise GuestError(f"{self.name}: QEMU exited ({self.process.returncode}): "
                                 f"{self.console_text()[-2000:]}")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise GuestError(f"{self.name}: no {path.name} within 20 s") from None
                time.sleep(0.02)

    def _connect_qmp(self) -> None:
        sock = self._wait_socket(self.qmp_socket, time.monotonic() + 20)
        stream = sock.makefile("rw")
        stream.readline()  # greeting
        self._qmp_stream = stream
        self._qmp_lock = threading.Lock()
        self._qmp_returns: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read_qmp, args=(sock, stream), daemon=True).start()
        self.qmp("qmp_capabilities")

    def _read_qmp(self, sock: socket.socket, stream: Any) -> None:
        with sock:
            for line in stream:
                message = json.loads(line)
                if message.get("event") == "BLOCK_IO_ERROR":
                    # One per failed guest write (werror=report): counted, not kept.
                    self.block_io_errors += 1
                elif "event" in message:
                    self.events.append(QmpEvent(time.monotonic(), message["event"],
                                                message.get("data", {})))
                else:
                    self._qmp_returns.put(message)

    def qmp(self, command: str, timeout: float = 10.0, **arguments: Any) -> Any:
        """One QMP command's return value; GuestError for its error or no answer."""
        with self._qmp_lock:
            request: dict[str, Any] = {"execute": command}
            if arguments:
                request["arguments"] = arguments
            self._qmp_stream.write(json.dumps(request) + "\n")
            self._qmp_stream.flush()
            try:
                answer = self._qmp_returns.get(timeout=timeout)
            except queue.Empty:
                raise GuestError(f"{self.name}: QMP {command}: no answer") from None
        if "error" in answer:
            raise GuestError(f"{self.name}: QMP {command}: {answer['error']}")
        return answer.get("return")

    def hmp(self, command_line: str) -> str:
        """A monitor command (drive_add has no QMP form for legacy drives)."""
        return str(self.qmp("human-monitor-command", **{"command-line": command_line}))

    def unplug_path(self, index: int, timeout: float = 30.0) -> None:
        """Hot-unplug path `index`'s scsi-block device (its drive goes with it, and with the
        drive QEMU's iSCSI session: the nexus ends)."""
        device = self._path_devices[index]
        self.qmp("device_del", id=device)
        deadline = time.monotonic() + timeout
        while not any(e.name == "DEVICE_DELETED" and e.data.get("device") == device
                      for e in self.events):
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: {device} not deleted within {timeout:g}s")
            time.sleep(0.05)

    def plug_path(self, index: int) -> None:
        """Plug path `index` back: a new drive, so a new iSCSI session (a NEW I_T nexus at
        the target, which tgtd does not count as registered)."""
        self._plugs += 1
        drive, device = f"path{index}p{self._plugs}", f"dev{index}p{self._plugs}"
        answer = self.hmp(f"drive_add 0 file={self.paths[index]},if=none,id={drive},"
                          "format=raw,cache=none")
        if "OK" not in answer:
            raise GuestError(f"{self.name}: drive_add: {answer.strip()}")
        self.qmp("device_add", driver="scsi-block", drive=drive, bus="scsi0.0", channel=0,
                 **{"scsi-id": index, "lun": 0, "id": device})
        self._path_devices[index] = device

    def _connect_agent(self) -> None:
        sock = self._wait_socket(self.agent_socket, time.monotonic() + 20)
        self._agent_sock = sock
        self.agent = DriverClient(sock.makefile("r", encoding="utf-8"),
                                  lambda text: sock.sendall(text.encode()))

    def _read_console(self, log: Any) -> None:
        assert self.process is not None and self.process.stdout is not None
        with log:
            for raw in self.process.stdout:
                text = _ESCAPES.sub("", raw.decode(errors="replace").rstrip("\r\n"))
                line = ConsoleLine(time.monotonic(), text)
                self.console.append(line)
                log.write(f"[{line.at - self.started_at:7.2f}] {text}\n")
                log.flush()

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait for the agent's ready line; seconds since start."""
        assert self.agent is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.agent.events.get(timeout=0.2)
                return time.monotonic() - self.started_at
            except queue.Empty:
                if not self.running():
                    raise GuestError(f"{self.name}: QEMU exited before its agent was ready:\n"
                                     f"{self.console_text()[-3000:]}") from None
                if time.monotonic() > deadline:
                    raise GuestError(f"{self.name}: agent not ready within {timeout:g}s:\n"
                                     f"{self.console_text()[-3000:]}") from None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit status, or None if it still runs after `timeout`."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """End QEMU by its PID (SIGTERM: QEMU exits at once; SIGKILL if it does not)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if self.wait_exit(10) is None:
                self.process.kill()
                self.process.wait()
        sock = getattr(self, "_agent_sock", None)
        if sock is not None:
            sock.close()

    def console_text(self) -> str:
        return "\n".join(line.text for line in self.console)

    def event(self, name: str) -> QmpEvent | None:
        return next((e for e in self.events if e.name == name), None)

    def marker(self, name: str) -> float | None:
        """Host seconds since start at which the console printed GUEST-<name>."""
        line = next((line for line in self.console if line.text.startswith(f"GUEST-{name}")),
                    None)
        return None if line is None else line.at - self.started_at

    def __enter__(self) -> "KernelGuest":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
