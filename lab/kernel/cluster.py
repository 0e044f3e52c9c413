"""The kernel tier's two-node cluster: tgtd on the host with one LUN on two portals, and two
KernelGuests (node-a, node-b), each reaching the LUN on both portals (two paths, two I_T
nexuses) through a dm-multipath map, with a real i6300esb watchdog.

Each node runs stonewall's own node service (`stonewall watchdog run`) on the `sg`
transport (its in-process SG_IO backend) against the kernel's path devices, and the DRBD
fence-peer handler exactly as drbdadm would run it. The host observes the LUN through a
third initiator (libiscsi): READ KEYS, READ RESERVATION and READ(10) of the stamped blocks.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stonewall.clock import Deadline
from stonewall.lab.drbd_side import drbd9_handler_env
from stonewall.lab.driver_client import DriverClient
from stonewall.lab.kernel.guest import GuestImage, KernelGuest
from stonewall.lab.stamps import BLOCK, Stamp, decode
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.errors import ScsiError
from stonewall.storage.scsi.iscsi import IscsiSession
from stonewall.storage.scsi.status import raise_for_status

ARRAY_IQN = "iqn.2026-12.lab.stonewall:kernel-array"
OBSERVER_IQN = "iqn.2026-12.lab.stonewall:observer"
NODES = {"node-a": 1, "node-b": 2}  # name -> node id (and DRBD node id)
LUN = "arbiter0"
MAP = "/dev/mapper/mpatha"
RING = 64  # blocks per writer
RUNTIME = "/run/stonewall"
CONFIG = "/run/stonewall-config/cluster.yaml"
# Watchdog timing in the guests: the real i6300esb needs whole seconds. A check is
# ~0.1 s of SG_IO under TCG; the numbers keep the production rules (timing.py), and a
# 30 s timeout leaves a fenced guest time to show what its kernel does before the reset,
# even on a loaded machine (measured: the steps after the fence took over 20 s at load 18).
WATCHDOG = {"device": "/dev/watchdog", "interval": 1, "io_deadline": 2, "check_deadline": 5,
            "timeout": 30, "grace": 5, "margin": 2}


def initiator(node: str) -> str:
    return f"iqn.2026-12.lab.stonewall:{node}"


def node_key(node: str) -> int:
    return 0x5354574B00000000 | NODES[node]


@dataclass
class FenceRun:
    fencer: str
    victim: str
    exit_code: int | None
    output: str
    started: float  # host monotonic
    ended: float


@dataclass
class KernelCluster:
    workdir: Path
    image: GuestImage
    tgtd: Tgtd | None = None
    guests: dict[str, KernelGuest] = field(default_factory=dict)
    service_pids: dict[str, int] = field(default_factory=dict)
    backing: Path | None = None

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> "KernelCluster":
        self.tgtd = Tgtd(self.workdir / "tgtd", portal_count=2).start()
        tid = self.tgtd.add_target(ARRAY_IQN)
        self.backing = self.tgtd.add_lun(tid, 1, size_mb=16)
        for name in NODES:
            self.boot(name)
        for guest in self.guests.values():
            guest.wait_ready()
        return self

    def boot(self, name: str) -> KernelGuest:
        """Start node `name`'s guest (a new boot: a fresh kernel, so a fresh boot id)."""
        assert self.tgtd is not None
        boots = sum(1 for path in self.workdir.glob(f"{name}-boot*"))
        guest = KernelGuest(name, self.image, self.workdir / f"{name}-boot{boots + 1}",
                            [f"iscsi://{portal}/{ARRAY_IQN}/1" for portal in self.tgtd.portals],
                            initiator(name))
        self.guests[name] = guest.start()
        return guest

    def stop(self) -> None:
        for guest in self.guests.values():
            guest.stop()
        if self.tgtd is not None:
            self.tgtd.stop()

    def __enter__(self) -> "KernelCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the nodes -----------------------------------------------------------------------
    def agent(self, node: str) -> DriverClient:
        client = self.guests[node].agent
        assert client is not None
        return client

    def run(self, node: str, *argv: str, timeout: float = 60,
            env: dict[str, str] | None = None) -> dict[str, Any]:
        return self.agent(node).call("run", timeout + 10, argv=list(argv), timeout=timeout,
                                     env=env or {})

    def document(self) -> dict[str, Any]:
        """The cluster.yaml both nodes use."""
        return {
            "cluster": "kernel-tier", "transport": "sg", "libvirt_uri": "test:///default",
            "paths": {"state_dir": "/run/stonewall-state", "runtime_dir": RUNTIME,
                      "event_log": "/run/stonewall-state/events.jsonl"},
            "nodes": [{"name": name, "id": ident, "key": f"0x{node_key(name):x}",
                       "addresses": [f"192.0.2.{ident}"]} for name, ident in NODES.items()],
            "luns": [{"name": LUN, "role": "arbiter", "alias": "mpatha", "reservation": "we-ro",
                      "sg_backend": "sgio"}],
            "drbd": [{"name": "r0", "luns": [LUN], "minors": [0],
                      "peers": {ident: name for name, ident in NODES.items()}}],
            "fencing": [{"level": "storage", "timeout": 30}],
            "watchdog": WATCHDOG,
        }

    def start_service(self, node: str, timeout: float = 120.0) -> float:
        """`stonewall watchdog run` in the guest: join, prove, arm /dev/watchdog. Returns
        the seconds until it printed READY."""
        agent = self.agent(node)
        agent.call("write_file", path=CONFIG, text=yaml.safe_dump(self.document()))
        log = f"/run/stonewall-service-{node}.log"
        started = time.monotonic()
        self.service_pids[node] = agent.call(
            "spawn", argv=[f"{self.guests[node].project}/.venv/bin/stonewall", "--config",
                           CONFIG, "watchdog", "run", "--node", node],
            log=log, env={"PYTHONDONTWRITEBYTECODE": "1"})
        while time.monotonic() - started < timeout:
            text = self.service_log(node)
            if "READY" in text.split():
                return time.monotonic() - started
            exited = agent.call("poll", pid=self.service_pids[node])
            if exited is not None:
                raise RuntimeError(f"{node}: watchdog service exited {exited}:\n{text}")
            time.sleep(0.5)
        raise RuntimeError(f"{node}: watchdog service not READY within {timeout:g}s:\n"
                           f"{self.service_log(node)}")

    def service_log(self, node: str) -> str:
        return str(self.agent(node).call("read_file", path=f"/run/stonewall-service-{node}.log"))

    def fence_peer(self, fencer: str, victim: str, timeout: float = 120.0) -> FenceRun:
        """DRBD's fence-peer handler on `fencer` about `victim`, as drbdadm runs it."""
        names = {ident: name for name, ident in NODES.items()}
        env = drbd9_handler_env("r0", "0", NODES[fencer], NODES[victim], names,
                                f"192.0.2.{NODES[fencer]}", f"192.0.2.{NODES[victim]}")
        env.update({"STONEWALL_CONFIG": CONFIG, "STONEWALL_NODE": fencer,
                    "PYTHONDONTWRITEBYTECODE": "1"})
        started = time.monotonic()
        result = self.run(fencer, f"{self.guests[fencer].project}/.venv/bin/"
                          "stonewall-drbd-fence-peer", timeout=timeout, env=env)
        return FenceRun(fencer, victim, result["rc"], result["stdout"] + result["stderr"],
                        started, time.monotonic())

    def guest_clock_offset(self, node: str) -> float:
        """guest wall clock - host wall clock, from one round trip (error: half of it)."""
        before = time.time()
        clock = self.agent(node).call("clock")
        after = time.time()
        return float(clock["wall"]) - (before + after) / 2

    # -- the host's view of the LUN ------------------------------------------------------
    def observer(self, portal_index: int = 0) -> IscsiSession:
        assert self.tgtd is not None
        session = IscsiSession(self.tgtd.portals[portal_index], ARRAY_IQN, 1, OBSERVER_IQN,
                               role="reader")
        session.connect(Deadline.after(10))
        return session

    def keys(self) -> list[int]:
        """READ KEYS from the host (one key per registered I_T nexus)."""
        session = self.observer()
        try:
            return list(CommandPrDevice(session).read_keys(Deadline.after(10)).keys)
        finally:
            session.close()

    def reservation(self) -> tuple[int | None, int | None]:
        session = self.observer()
        try:
            found = CommandPrDevice(session).read_reservation(Deadline.after(10))
            return found.holder, None if found.type is None else int(found.type)
        finally:
            session.close()

    def stamps(self, first_lba: int, ring: int = RING) -> list[Stamp]:
        """The stamped blocks of one writer's ring, READ(10) from the host."""
        session = self.observer()
        try:
            result = session.execute(cdb.read_10(first_lba, ring), Deadline.after(10),
                                     data_in_length=ring * BLOCK)
            raise_for_status(result, "READ(10)")
        finally:
            session.close()
        blocks = (result.data[i * BLOCK:(i + 1) * BLOCK] for i in range(ring))
        return [stamp for stamp in map(decode, blocks) if stamp is not None]


class KeyWatch:
    """Polls READ KEYS from the host (its own nexus, one session) until `key` is gone: the
    host time of the first answer without it bounds the preempt from above."""

    def __init__(self, cluster: KernelCluster, key: int, period: float = 0.02) -> None:
        self.session = cluster.observer()
        self.key = key
        self.period = period
        self.last_present: float | None = None  # host wall clock
        self.first_absent: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "KeyWatch":
        self._thread.start()
        return self

    def _run(self) -> None:
        device = CommandPrDevice(self.session)
        while not self._stop.is_set() and self.first_absent is None:
            asked = time.time()
            try:
                keys = device.read_keys(Deadline.after(5)).keys
            except ScsiError:
                continue  # a UNIT ATTENTION after the preempt: ask again
            if self.key in keys:
                self.last_present = asked
            else:
                self.first_absent = time.time()
            self._stop.wait(self.period)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.session.close()


def map_paths(cluster: KernelCluster, node: str) -> list[dict[str, str]]:
    """multipathd's view of the map's paths: device, dm state, checker state, device state."""
    result = cluster.run(node, "multipathd", "show", "paths", "raw", "format", "%d %t %T %o")
    rows = [line.split() for line in result["stdout"].splitlines() if line.strip()]
    return [dict(zip(("dev", "dm_st", "chk_st", "dev_st"), row)) for row in rows if len(row) == 4]
