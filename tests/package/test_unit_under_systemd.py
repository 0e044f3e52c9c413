"""The installed unit run by a real systemd: the package installed in a throwaway root, that
root booted with systemd-nspawn (systemd as PID 1, journald, tmpfiles), the service started
there against the lab's tgtd with a watchdog stand-in. It must come up READY under all its
hardening, with the directories the code expects, serve its holder socket, log each line to
the journal once, and stop cleanly. About 30 s."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stonewall.lab.watchdog_supervisor import StandinSupervisor, spawn_supervisor

from ..lab_fixtures import lab  # noqa: F401  (pytest fixture)
from .throwaway_root import SYSTEM_PATH, ThrowawayRoot

pytestmark = [pytest.mark.slow, pytest.mark.package]

UNIT = "stonewall-watchdog.service"
STANDIN_INSIDE = "/run/lab-standin"  # not under /tmp: the unit has PrivateTmp=yes
TIMING = {"interval": 0.2, "io_deadline": 0.3, "check_deadline": 1.0, "timeout": 1.5,
          "grace": 1.0, "margin": 0.5}
BOOT_WITHIN = 60.0


class Container:
    """A booted systemd-nspawn container of the throwaway root."""

    def __init__(self, root: ThrowawayRoot, binds: dict[Path, str], log: Path) -> None:
        arguments = ["systemd-nspawn", "-D", str(root.merged), "--register=no", "--keep-unit",
                     "-q", "--boot", *(f"--bind={host}:{inside}" for host, inside in
                                       binds.items()),
                     "systemd.unit=multi-user.target"]
        # nspawn mounts /dev and /proc itself (the chroot's are taken away), and keeps its
        # state in the host's /run/systemd/nspawn: give it a private one.
        script = (f"umount {root.merged}/dev {root.merged}/proc && "
                  "mount -t tmpfs tmpfs /run/systemd && exec " + " ".join(arguments))
        self._log = log.open("w")
        self.nspawn = subprocess.Popen(root.in_namespace(["sh", "-c", script]),
                                       stdin=subprocess.DEVNULL, stdout=self._log,
                                       stderr=subprocess.STDOUT,
                                       env={"PATH": SYSTEM_PATH})
        self.leader = self._wait_for_leader()

    def _wait_for_leader(self) -> int:
        """The container's PID 1, once its systemd answers."""
        deadline = time.monotonic() + BOOT_WITHIN
        while time.monotonic() < deadline:
            leader = _container_init(self.nspawn.pid)
            if leader and self.run(["systemctl", "is-system-running"], leader).stdout.strip() in (
                    "running", "degraded"):
                return leader
            if self.nspawn.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError("the container did not boot")

    def run(self, argv: list[str], leader: int | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(leader or self.leader), "-m", "-p", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env={"PATH": SYSTEM_PATH, "SYSTEMD_PAGER": "", "LC_ALL": "C"})

    def stop(self) -> None:
        if self.nspawn.poll() is None:
            self.nspawn.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait(timeout=30)
        self._log.close()


def _container_init(nspawn: int) -> int | None:
    """The descendant of `nspawn` that is PID 1 of its own PID namespace."""
    children: dict[int, list[int]] = {}
    namespaced_init = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        children.setdefault(int(fields["PPid"]), []).append(int(entry.name))
        if fields.get("NSpid", "").split()[-1:] == ["1"] and len(fields["NSpid"].split()) > 1:
            namespaced_init.add(int(entry.name))
    queue = [nspawn]
    while queue:
        pid = queue.pop()
        if pid in namespaced_init:
            return pid
        queue.extend(children.get(pid, []))
    return None


@pytest.fixture
def container(lab, deb: Path, tmp_path: Path) -> Iterator[tuple[Container, StandinSupervisor]]:
    if shutil.which("systemd-nspawn", path=SYSTEM_PATH) is None:
        pytest.skip("needs systemd-nspawn (Debian package systemd-container)")
    victims = subprocess.Popen(["sleep", "600"], start_new_session=True)  # what a reset kills
    standin_dir = tmp_path / "standin"
    standin_dir.mkdir()
    standin = spawn_supervisor(f"{standin_dir}/wd.sock", victims.pid, f"{standin_dir}/wd.jsonl")
    root = ThrowawayRoot(tmp_path / "throwaway")
    root.start()
    container = None
    try:
        root.copy_in(deb, "/tmp/stonewall.deb")
        installed = root.run(["dpkg", "-i", "/tmp/stonewall.deb"])
        assert installed.returncode == 0, installed.stdout + installed.stderr
        document = lab.cluster.document("node-a")
        for key in ("paths", "guests"):
            document.pop(key, None)  # the package's directories, /run/stonewall and friends
        # The container has no kernel path devices of the lab's: its LUNs on the control path
        document["luns"] = [lun for lun in document["luns"] if lun.get("transport") != "sg"]
        document["watchdog"] = {"device": f"standin:{STANDIN_INSIDE}/wd.sock",
                                "allow_standin": True, **TIMING}
        config = tmp_path / "cluster.yaml"
        config.write_text(yaml.safe_dump(document, sort_keys=False))
        root.copy_in(config, "/etc/stonewall/cluster.yaml")
        (root.upper / "etc/stonewall/cluster.yaml").chmod(0o600)
        # The unit's EnvironmentFile= says which node this is (nspawn names the host itself).
        default = tmp_path / "default"
        default.write_text("STONEWALL_NODE=node-a\n")
        root.copy_in(default, "/etc/default/stonewall")
        container = Container(root, {standin_dir: STANDIN_INSIDE}, tmp_path / "nspawn.log")
        yield container, standin
    finally:
        if container is not None:
            container.stop()
        root.stop()
        standin.stop()
        victims.kill()
        victims.wait(timeout=10)


def test_the_service_comes_up_ready_under_its_hardening_and_logs_each_line_once(
        container: tuple[Container, StandinSupervisor]) -> None:
    box, standin = container
    assert box.run(["systemctl", "is-enabled", UNIT]).stdout.strip() == "disabled"
    assert box.run(["systemctl", "is-active", UNIT]).stdout.strip() == "inactive"

    started = box.run(["systemctl", "start", UNIT], timeout=90)  # returns at READY=1

    status = box.run(["systemctl", "status", "--no-pager", UNIT]).stdout
    journal = box.run(["journalctl", "-u", UNIT, "-o", "json", "--no-pager"]).stdout
    assert started.returncode == 0, started.stderr + status + journal
    shown = dict(line.split("=", 1) for line in box.run(
        ["systemctl", "show", UNIT, "-p", "ActiveState,SubState,LimitNOFILE,Type"]
    ).stdout.split())
    assert shown == {"ActiveState": "active", "SubState": "running", "LimitNOFILE": "8192",
                     "Type": "notify"}
    modes = box.run(["stat", "-c", "%n %a", "/run/stonewall", "/var/lib/stonewall",
                     "/var/log/stonewall", "/run/stonewall/holder.sock"]).stdout.splitlines()
    assert modes == ["/run/stonewall 700", "/var/lib/stonewall 700", "/var/log/stonewall 750",
                     "/run/stonewall/holder.sock 600"]
    assert any(event["event"] == "armed" for event in standin.events())
    # The service's stderr is the journal ($JOURNAL_STREAM): every line once, natively.
    entries = [json.loads(line) for line in journal.splitlines() if line.strip()]
    ours = [entry for entry in entries if entry.get("SYSLOG_IDENTIFIER") == "stonewall-watchdog"]
    assert ours, journal
    messages = [entry["MESSAGE"] for entry in ours]
    assert len(messages) == len(set(messages)), messages
    assert all(entry.get("_TRANSPORT") == "journal" for entry in ours)

    stopped = box.run(["systemctl", "stop", UNIT], timeout=90)

    assert stopped.returncode == 0, stopped.stderr
    assert box.run(["systemctl", "is-active", UNIT]).stdout.strip() == "inactive"
    assert [event["event"] for event in standin.events()][-1] == "disarmed"
    assert standin.fired() is None
