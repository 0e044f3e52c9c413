"""fence_scsi (Debian `fence-agents`, unmodified) on the benchmark's LUNs, as a third node.

What it needs here (reference/fence-scsi.md):
- block devices: one fake `/…/dev/sdN` per LUN path (the fakesg shim, kind "block"), all
  mapped in one environment, since fence_scsi's sg_persist children inherit it;
- long-lived nexuses: the nexus stand-in holds one session per fake device, as a kernel does;
- PREEMPT for PREEMPT AND ABORT: tgtd lacks it and fence_scsi has no fallback, so the
  stand-in runs with `preempt_and_abort_as_preempt` (lab/nexus.py);
- its own key in /var/run/cluster.key (no option names it): fence_scsi runs in a private
  mount namespace whose /run is a directory of ours, so the host's /run is never touched;
- explicit keys (`-k`) and devices (`-d`): no corosync, no LVM.
Its key is registered on its nexuses at setup (what `-o on` would do, 16 processes per
device) by sg_persist through the same shim."""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Sequence

from stonewall.benchmarks.measure import BenchFailure, ProcessRun, expect_exit, time_process
from stonewall.clock import Deadline
from stonewall.config.model import Lun
from stonewall.lab.nexus import FakeDevice, NexusStandIn
from stonewall.bounded import map_bounded
from stonewall.storage.scsi.sg import SgPersistDevice, SgRunner

FENCE_SCSI = "/usr/sbin/fence_scsi"
MPATHPERSIST = "/usr/sbin/mpathpersist"
FENCE_SCSI_IQN = "iqn.2026-11.lab.stonewall:fence-scsi"
FENCE_SCSI_KEY = 0x4653435300000001  # "FSCS" + 1: unlike any stonewall node key
# fence_scsi exit statuses (fencing.py): 0 success / "on" for status, 2 "off" for status.
STATUS_ON = 0
SETUP_SECONDS = 120.0
NAMESPACE_READY_SECONDS = 5.0


def key_text(key: int) -> str:
    """A key as fence_scsi compares it: hex without 0x and leading zeros (sg_persist's %llx,
    and fence_scsi strips leading zeros from -k)."""
    return f"{key:x}"


class PrivateRun:
    """A mount namespace held open by a `sleep` of ours, where /run is `directory`."""

    def __init__(self, directory: Path) -> None:
        for tool in ("unshare", "nsenter"):
            if shutil.which(tool) is None:
                raise BenchFailure(f"{tool} not found: install the Debian package util-linux")
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "PrivateRun":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sleep", "infinity"],
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = Deadline.after(NAMESPACE_READY_SECONDS)
        ours = os.readlink("/proc/self/ns/mnt")
        while not self._entered(ours):
            if self.process.poll() is not None or deadline.expired():
                self.stop()
                raise BenchFailure("unshare --mount did not start (needs root)")
            time.sleep(0.01)
        result = subprocess.run([*self.prefix, "mount", "--bind", str(self.directory), "/run"],
                                capture_output=True, text=True, timeout=NAMESPACE_READY_SECONDS)
        if result.returncode != 0:
            self.stop()
            raise BenchFailure(f"bind mount of /run failed: {result.stderr.strip()}")
        return self

    def _entered(self, ours: str) -> bool:
        assert self.process is not None
        try:
            return (Path(f"/proc/{self.process.pid}/comm").read_text().strip() == "sleep"
                    and os.readlink(f"/proc/{self.process.pid}/ns/mnt") != ours)
        except OSError:
            return False

    @property
    def prefix(self) -> list[str]:
        assert self.process is not None, "namespace not started"
        return ["nsenter", "-t", str(self.process.pid), "-m", "--"]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=5)


class FenceScsiNode:
    """fence_scsi's view of `luns`: one fake block device per LUN path, registered, and one
    fake map device per LUN (`maps`).

    A multipath user gives fence_scsi the map (`-d /dev/mapper/...`, one device per LUN):
    `-o on` registers every path device of the map (register_dev expands its slaves), while
    `-o off` and `-o status` send each PR command once through the map, which the kernel's
    dm-multipath passes to one of its paths. No dm map exists here, so a map is a fake block
    device whose SG_IO goes to the nexus of the LUN's first path (a map with that path
    active); the setup registers the key on every path, as `-o on` through the map would."""

    def __init__(self, workdir: Path, luns: Sequence[Lun]) -> None:
        if not Path(FENCE_SCSI).exists():
            raise BenchFailure(f"{FENCE_SCSI} not found: install the Debian package "
                               "fence-agents")
        self.workdir = workdir
        self.devices = []
        aliases = []
        for lun in (lun for lun in luns if lun.iscsi):
            aliases.append((str(workdir / "dev" / f"dm-{len(aliases)}"), len(self.devices)))
            self.devices += [FakeDevice(str(workdir / "dev" / f"sd{len(self.devices) + n}"),
                                        str(portal), lun.iscsi.target, lun.iscsi.lun,
                                        FENCE_SCSI_IQN, kind="block")
                             for n, portal in enumerate(lun.iscsi.portals)]
        self.maps = [path for path, _index in aliases]
        self.nexus = NexusStandIn(workdir / "nexus", self.devices,
                                  preempt_and_abort_as_preempt=True, aliases=aliases)
        self.namespace = PrivateRun(workdir / "run")
        self.registered = False

    def start(self) -> "FenceScsiNode":
        try:
            self.nexus.start(Deadline.after(SETUP_SECONDS))
            self._register(FENCE_SCSI_KEY)
            self.registered = True
            self.namespace.start()
            (self.namespace.directory / "cluster.key").write_text(
                key_text(FENCE_SCSI_KEY) + "\n")
        except BaseException:
            self.stop()
            raise
        return self

    def _register(self, new_key: int) -> None:
        """REGISTER AND IGNORE EXISTING KEY with `new_key` on every device (0 unregisters)."""
        runner = SgRunner(self.nexus.environment)
        deadline = Deadline.after(SETUP_SECONDS)

        def register(device: FakeDevice) -> None:
            SgPersistDevice(device.path, runner).register(0, new_key, deadline,
                                                          ignore_existing=True)

        failed = [r for r in map_bounded(register, self.devices, deadline)
                  if isinstance(r, BaseException)]
        if failed:
            raise BenchFailure(f"REGISTER of 0x{new_key:x} failed on {len(failed)} devices: "
                               f"{failed[0]}")

    def stop(self) -> None:
        """Unregister fence_scsi's key (stonewall status would count it as foreign), then
        stop the namespace and the stand-in."""
        self.namespace.stop()
        try:
            if self.registered:
                self.registered = False
                self._register(0)
        finally:
            self.nexus.stop()

    def run(self, action: str, key: int, timeout: float, *,
            per_path: bool = False) -> ProcessRun:
        """`fence_scsi -o ACTION -k KEY -d DEV,...` on every map (with `per_path`: on every
        path device), timed from the start of the process (nsenter, which execs fence_scsi)
        to its exit."""
        devices = [d.path for d in self.devices] if per_path else self.maps
        command = [*self.namespace.prefix, FENCE_SCSI, "-o", action, "-k", key_text(key),
                   "-d", ",".join(devices)]
        return time_process(command, timeout, env=self.nexus.environment)

    def mpathpersist_refusal(self) -> str | None:
        """Why `mpathpersist -i -k` cannot read the first map here (its last line of
        output), or None when it can."""
        if not Path(MPATHPERSIST).exists():
            return f"{MPATHPERSIST} not found (Debian package multipath-tools)"
        run = time_process([MPATHPERSIST, "-i", "-k", "-d", self.maps[0]], SETUP_SECONDS,
                           env=self.nexus.environment)
        if run.returncode == 0:
            return None
        said = [line.split("| ", 1)[-1].strip()
                for line in (run.stderr + run.stdout).splitlines() if line.strip()]
        return f"mpathpersist exit {run.returncode}: {'; '.join(said[-3:]) or 'no output'}"

    def floors(self, runs: int, timeout: float) -> dict[str, float]:
        """Medians (ms) of what the lab adds: `nsenter ... true` (once per fence_scsi run),
        one `sg_turs` through the shim and stand-in with this map, and of that the shim's
        parsing of the map alone (fence_scsi spawns 14 processes per device for `off`, 3 for
        `status`, each loading the shim)."""
        enter = [time_process([*self.namespace.prefix, "true"], timeout).seconds
                 for _ in range(runs)]
        turs = []
        for _ in range(runs):
            run = time_process(["sg_turs", self.devices[0].path], timeout,
                               env=self.nexus.environment)
            turs.append(expect_exit(run, 0, "sg_turs through the shim"))
        # The shim parses the whole map in every process it is loaded into; a path outside
        # the map shows that cost alone (sg_turs exits 15 at once, shim or not).
        missing = str(self.workdir / "not-a-device")
        with_map = [time_process(["sg_turs", missing], timeout,
                                 env=self.nexus.environment).seconds for _ in range(runs)]
        without = [time_process(["sg_turs", missing], timeout).seconds for _ in range(runs)]
        return {"nsenter_ms": round(statistics.median(enter) * 1000, 2),
                "sg_turs_via_shim_ms": round(statistics.median(turs) * 1000, 2),
                "shim_map_ms": round((statistics.median(with_map)
                                      - statistics.median(without)) * 1000, 2)}
