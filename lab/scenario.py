"""The failover lab: a whole cluster on one machine, from real parts, with faults.

- tgtd with an arbiter LUN pair, one LUN per guest and optionally shared LUNs (every node
  registered, control path only: the soak's bulk); four portals, two per node, so a node
  can lose its own paths without the other noticing;
- per node: a process group (the "machine"), a watchdog stand-in that resets that group, a
  BMC on 127.0.0.1 whose power-off kills it, its kernel (lab/kernel_standin.py: one session per
  guest LUN and portal, held for the machine's life, under a multipath map per LUN: the
  data path), the watchdog service (`stonewall watchdog run`, which is also the node's
  holder; its own sessions are the control path) and the node's guests: processes that
  write stamped blocks through the node's data path, each also a domain on the node's
  libvirt test:/// hypervisor;
- DRBD's side: the lab runs `stonewall-drbd-fence-peer` as drbdadm would (argv and
  environment) when a scenario says the replication link broke.

`check_invariants` reads the LUNs back and judges the one rule, counting only the writes
the data path acknowledged. Everything started is
stopped by PID in `stop`, also after a failure or Ctrl-C.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.loader import load_config
from stonewall.config.document import parse_portal
from stonewall.config.model import ClusterConfig
from stonewall.holder.client import HolderClient
from stonewall.lab.bmc_process import BmcProcess
from stonewall.lab.cluster import LabCluster, LabLun, control_path_luns
from stonewall.lab.drbd_side import drbd9_handler_env
from stonewall.lab.guest import RING
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.processes import StonewallProcess
from stonewall.lab.stamps import (Stamp, Violation, check_acknowledged_kept, check_after_fence,
                                  check_single_writer, decode)
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.ownership import read_views
from stonewall.storage.paths import close_paths, connect_paths, plan_paths
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.status import raise_for_status
from stonewall.vm.control import StartOutcome, StopResult, start_guest, stop_guest
from stonewall.vm.hook import HookCall, decide
from stonewall.vm.libvirt_conn import LibvirtConnection
from stonewall.vm.takeover import FenceEvidence, TakeoverReport, take_over
from stonewall.lab.watchdog_supervisor import StandinSupervisor, spawn_supervisor
from stonewall.config.timing import t_safe

FAST_WATCHDOG = {"interval": 0.2, "io_deadline": 0.3, "check_deadline": 1.0, "timeout": 1.5,
                 "grace": 1.0, "margin": 0.5}
DRBD_IDS = {"node-a": 0, "node-b": 1}
DRBD_ADDRESSES = {"node-a": "127.0.1.1", "node-b": "127.0.1.2"}
FENCE_PEER_EXIT = {4: "peer fenced by storage (outdated)", 7: "peer powered off (stonithed)"}
SEQUENCES_PER_START = 1_000_000  # each start of a guest numbers its writes from its own million


def start_of(stamp: Stamp) -> int:
    """Which start of its guest wrote `stamp`."""
    return stamp.sequence // SEQUENCES_PER_START


@dataclass(frozen=True)
class LabGuest:
    name: str
    home: str
    lun: int
    start_policy: str = "safe"  # safe | immediate


DEFAULT_GUESTS = (LabGuest("web1", "node-a", 3, "safe"), LabGuest("api1", "node-a", 4,
                                                                       "immediate"),
                  LabGuest("db1", "node-b", 5, "safe"))


@dataclass
class Event:
    at: float  # seconds since the lab started
    text: str


@dataclass
class FenceRecord:
    """One fence-peer call as DRBD would make it."""

    fencer: str
    victim: str
    exit_code: int
    started: float  # time.time()
    ended: float
    output: str

    @property
    def fenced(self) -> bool:
        return self.exit_code in FENCE_PEER_EXIT


@dataclass
class LabNode:
    name: str
    portals: list[str]
    anchor: subprocess.Popen[bytes] | None = None  # the machine's process group leader
    supervisor: StandinSupervisor | None = None
    bmc: BmcProcess | None = None
    service: StonewallProcess | None = None
    hypervisor: LibvirtConnection | None = None
    guests: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    down: str | None = None  # why the machine is gone (crash, watchdog reset, power off)

    @property
    def pgid(self) -> int:
        assert self.anchor is not None
        return self.anchor.pid


@dataclass
class InvariantReport:
    violations: list[Violation]
    guests_running: dict[str, list[str]]  # guest -> nodes it runs on
    keys_back: list[str]  # fenced nodes whose key came back in their fenced boot
    stamps_read: int

    @property
    def holds(self) -> bool:
        return (not self.violations and not self.keys_back
                and all(len(nodes) <= 1 for nodes in self.guests_running.values()))

    def describe(self) -> str:
        lines = [f"stamped blocks read back: {self.stamps_read}"]
        lines += [f"VIOLATION {v.lun}: {v.stamp} {v.reason}" for v in self.violations]
        lines += [f"KEY BACK: {node}" for node in self.keys_back]
        for guest, nodes in sorted(self.guests_running.items()):
            lines.append(f"{guest}: runs on {', '.join(nodes) or 'no node'}")
        lines.append("one rule holds" if self.holds else "ONE RULE BROKEN")
        return "\n".join(lines)


def read_stamps(lun_paths: list[Any]) -> list[Stamp]:
    """Every stamp of a guest's ring, through the first of the LUN's paths that is up."""
    session = next(p.session for p in lun_paths if p.up and p.session is not None)
    stamps = []
    for lba in range(RING):
        result = session.execute(cdb.read_10(lba, 1), Deadline.after(5), data_in_length=512)
        raise_for_status(result, "READ(10)")
        stamp = decode(result.data)
        if stamp is not None:
            stamps.append(stamp)
    return stamps


class ScenarioLab:
    """Build with `start()`, inject faults, `check_invariants()`, `stop()`."""

    def __init__(self, workdir: Path, *, guests: tuple[LabGuest, ...] = DEFAULT_GUESTS,
                 power: bool = True, watchdog: dict[str, float] | None = None,
                 log: Callable[[str], None] | None = None,
                 power_after_storage: bool = False, shared_luns: int = 0,
                 service_env: dict[str, dict[str, str]] | None = None) -> None:
        self.workdir = Path(workdir)
        self.guests = guests
        self.shared_luns = shared_luns
        self.service_env = service_env or {}  # node -> more environment for its service
        self.guest_starts: Counter[str] = Counter()  # each start numbers its own writes
        self.power = power
        self.power_after_storage = power_after_storage  # DESIGN 4.4: power-off on top
        self.watchdog = dict(FAST_WATCHDOG if watchdog is None else watchdog)
        self.log = log or (lambda _text: None)
        self.started = time.monotonic()
        self.events: list[Event] = []
        self.tgtd = Tgtd(self.workdir / "tgtd", portal_count=4)
        self.nodes: dict[str, LabNode] = {}
        self.fences: list[FenceRecord] = []
        self.cluster: LabCluster | None = None
        self.configs: dict[str, Path] = {}
        self.boots: dict[str, Path] = {}

    # -- timeline ------------------------------------------------------------------------
    def note(self, text: str) -> None:
        event = Event(time.monotonic() - self.started, text)
        self.events.append(event)
        self.log(f"[{event.at:6.2f}s] {text}")

    # -- building --------------------------------------------------------------------------
    def start(self) -> "ScenarioLab":
        self.tgtd.start()
        tid = self.tgtd.add_target(ARRAY_IQN)
        luns = [LabLun("arbiter0", 1, "arbiter", 0), LabLun("arbiter1", 2, "arbiter", 1)]
        luns += [LabLun(f"{g.name}-disk", g.lun, "guest") for g in self.guests]
        first_shared = max([2, *(g.lun for g in self.guests)]) + 1
        luns += [LabLun(f"shared{i:03d}", first_shared + i, "shared")
                 for i in range(self.shared_luns)]
        for lun in luns:
            self.tgtd.add_lun(tid, lun.lun, size_mb=1)
        self.note(f"tgtd pid {self.tgtd.pid}: {len(luns)} LUNs, portals "
                  f"{', '.join(self.tgtd.portals)}")
        names = list(DRBD_IDS)
        self.nodes = {name: LabNode(name, self.tgtd.portals[2 * i:2 * i + 2])
                      for i, name in enumerate(names)}
        self.cluster = LabCluster(self.workdir / "nodes", self.tgtd, nodes=names, luns=luns,
                                  portals_of={n.name: n.portals for n in self.nodes.values()})
        for node in self.nodes.values():
            self._power_on(node)
        for node in self.nodes.values():
            self._write_config(node)
        for node in self.nodes.values():
            self._boot(node, f"{node.name}-boot-1")
        for guest in self.guests:
            self.start_guest(guest.name, guest.home)
        return self

    def _power_on(self, node: LabNode) -> None:
        """The machine: a process group, its watchdog stand-in and its BMC."""
        # A new process group in our session: members must share a session to join it.
        node.anchor = subprocess.Popen(["sleep", "infinity"], process_group=0,
                                       stdin=subprocess.DEVNULL)
        base = self.workdir / "nodes" / node.name
        base.mkdir(parents=True, exist_ok=True)
        node.supervisor = spawn_supervisor(str(base / "watchdog.sock"), node.pgid,
                                           str(base / "watchdog-fired.jsonl"))
        if self.power and node.bmc is None:
            node.bmc = BmcProcess(base / "bmc", kill_pgid=node.pgid).start()
        elif node.bmc is not None:
            node.bmc.kill_pgid = node.pgid
        assert self.cluster is not None
        self.cluster.start_kernel(node.name, Deadline.after(20), process_group=node.pgid)
        node.down = None

    def _write_config(self, node: LabNode) -> None:
        assert self.cluster is not None
        document: dict[str, Any] = self.cluster.document(node.name)
        nodes = []
        for entry in document["nodes"]:  # type: ignore[union-attr]
            peer = self.nodes[entry["name"]]
            entry["addresses"] = [DRBD_ADDRESSES[entry["name"]]]
            if peer.bmc is not None:
                entry["ipmi"] = {"address": peer.bmc.host, "port": peer.bmc.port,
                                 "username": peer.bmc.user,
                                 "password_file": str(peer.bmc.password_file),
                                 "timeout": 5, "poll_interval": 0.2}
            nodes.append(entry)
        document["nodes"] = nodes
        guest_luns = [f"{g.name}-disk" for g in self.guests]
        shared = [f"shared{i:03d}" for i in range(self.shared_luns)]
        document["drbd"] = [{"name": "r0", "luns": ["arbiter0", "arbiter1", *guest_luns,
                                                     *shared],
                             "minors": [0], "peers": {v: k for k, v in DRBD_IDS.items()}}]
        document["guests"] = [{"name": g.name, "luns": [f"{g.name}-disk"], "home": g.home,
                               "order": 10 * (i + 1), "start_policy": g.start_policy}
                              for i, g in enumerate(self.guests)]
        document["fencing"] = [{"level": "storage", "timeout": 10}] + (
            [{"level": "power", "timeout": 20,
              **({"also_after_storage": True} if self.power_after_storage else {})}]
            if self.power else [])
        assert node.supervisor is not None
        document["watchdog"] = {"device": f"standin:{node.supervisor.socket_path}",
                                "allow_standin": True, **self.watchdog}
        path = self.cluster.write_config(node.name)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        self.configs[node.name] = path

    def config(self, node: str) -> ClusterConfig:
        return load_config(str(self.configs[node]))

    def _boot(self, node: LabNode, boot_id: str) -> None:
        """Boot the machine: the watchdog service joins (or refuses in a fenced boot)."""
        assert self.cluster is not None
        self.boots[node.name] = self.cluster.boot(node.name, boot_id)
        node.service = StonewallProcess(
            self.configs[node.name], ["watchdog", "run", "--node", node.name],
            env={**self.cluster.environment(node.name),
                 **self.service_env.get(node.name, {})},
            log=self.workdir / "nodes" / node.name / "service.log",
            process_group=node.pgid).start(ready_timeout=20)
        # The node's hypervisor: a libvirt test driver instance of its own (a test:///FILE
        # URI's state lives in its connection), with every guest defined on every node.
        host_file = self.workdir / "nodes" / node.name / "hypervisor.xml"
        host_file.write_text("<node>" + "".join(self._domain_xml(g) for g in self.guests)
                             + "<memory>8192000</memory></node>")
        node.hypervisor = LibvirtConnection.open(f"test://{host_file}", Deadline.after(10))
        for guest in self.guests:  # the test driver boots a node file's domains running
            node.hypervisor.destroy(guest.name, Deadline.after(5))
        self.note(f"{node.name} ({boot_id}): watchdog service up, joined, watchdog armed")

    @staticmethod
    def _domain_xml(guest: LabGuest) -> str:
        """The guest's disk is its LUN's multipath map, as on a real host."""
        return (f"<domain type='test'><name>{guest.name}</name><memory>65536</memory>"
                "<on_poweroff>destroy</on_poweroff>"
                "<os><type>hvm</type></os><devices><disk type='block' device='disk'>"
                f"<source dev='/dev/mapper/{guest.name}-disk'/><target dev='vda' bus='virtio'/>"
                "</disk></devices></domain>")

    def holder(self, node: str) -> HolderClient:
        return HolderClient(self.config(node), node)

    # -- guests ----------------------------------------------------------------------------
    def start_guest(self, guest_name: str, node_name: str) -> None:
        """`vm start` on the node (reservations through its holder), then its writer."""
        node = self.nodes[node_name]
        assert node.hypervisor is not None
        config = self.config(node_name)
        report = start_guest(guest_name, config.node(node_name), config,
                             self.holder(node_name), node.hypervisor, Deadline.after(15))
        if report.outcome is not StartOutcome.STARTED:
            raise RuntimeError(f"{guest_name} did not start on {node_name}: "
                               f"{report.outcome.value}; {'; '.join(report.reasons)}")
        self._start_writer(guest_name, node)
        self.note(f"{guest_name} started on {node_name}")

    def migrate(self, guest_name: str, source: str, destination: str) -> None:
        """A plain live migration of a running guest, with the hooks libvirt runs on both
        nodes (vm/hook.py; the test driver cannot migrate, so the domain moves by a destroy
        and a start): the destination's `migrate begin` registers it beside the live source,
        `prepare begin` follows; at the switchover the source's writer stops (its QEMU is
        gone) before the destination's starts; the source's `release end` unregisters it."""
        guest = next(g for g in self.guests if g.name == guest_name)
        self._hook(destination, guest, "migrate", "begin")
        self._hook(destination, guest, "prepare", "begin")
        from_node, to_node = self.nodes[source], self.nodes[destination]
        assert from_node.hypervisor is not None and to_node.hypervisor is not None
        writer = from_node.guests[guest_name]
        writer.kill()
        writer.wait()
        from_node.hypervisor.destroy(guest_name, Deadline.after(5))
        to_node.hypervisor.start(guest_name)
        self._start_writer(guest_name, to_node)
        self._hook(source, guest, "release", "end")
        self.note(f"{guest_name} migrated {source} \N{RIGHTWARDS ARROW} {destination} (plain "
                  "migration, through the hooks)")

    def _hook(self, node: str, guest: LabGuest, operation: str, sub: str) -> None:
        """`node`'s libvirt hook for `guest`, as libvirt runs it, with the node's holder."""
        config = self.config(node)
        holder = self.holder(node)
        decision = decide(HookCall(guest.name, operation, sub, "-"), self._domain_xml(guest),
                          load_config=lambda: config, node_name=node,
                          read_views=lambda luns, deadline: holder.views(luns, deadline),
                          deadline=Deadline.after(10), holder=lambda _config: holder)
        if decision.exit_code != 0 or (sub == "end" and decision.message):
            raise RuntimeError(f"{node}'s hook, {guest.name} {operation} {sub}: "
                               f"{decision.message}")
    def stop_guest(self, guest_name: str, node_name: str) -> None:
        """The guest's process ends (as QEMU does when its domain stops), then `vm stop`
        on the node: the domain off, its registrations given back through the holder."""
        node = self.nodes[node_name]
        assert node.hypervisor is not None
        writer = node.guests.pop(guest_name, None)
        if writer is not None:
            writer.kill()
            writer.wait()
            if writer.stdout:
                writer.stdout.close()
        config = self.config(node_name)
        report = stop_guest(guest_name, config.node(node_name), config,
                            self.holder(node_name), node.hypervisor, Deadline.after(15))
        if report.result is not StopResult.STOPPED or report.release_failures:
            kept = [f"{r.lun}: {r.detail}" for r in report.release_failures]
            raise RuntimeError(f"{guest_name} did not stop on {node_name}: "
                               f"{report.result.value}; {'; '.join([*report.details, *kept])}")
        self.note(f"{guest_name} stopped on {node_name}")

    def _start_writer(self, guest_name: str, node: LabNode) -> None:
        log = self.workdir / "guests" / f"{guest_name}.jsonl"
        log.parent.mkdir(parents=True, exist_ok=True)
        first = SEQUENCES_PER_START * self.guest_starts[guest_name]
        self.guest_starts[guest_name] += 1
        assert self.cluster is not None
        writer = subprocess.Popen(
            [sys.executable, "-m", "stonewall.lab.guest", "--maps",
             str(self.cluster.kernels[node.name].maps_file), "--node", node.name,
             "--guest", guest_name,
             "--lun", f"{guest_name}-disk", "--log", str(log), "--first-sequence",
             str(first)],
            process_group=node.pgid, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(self.workdir / "guests" / f"{guest_name}.err", "ab"))
        assert writer.stdout is not None
        writer.stdout.readline()  # READY
        node.guests[guest_name] = writer

    def _acknowledged(self, guest_name: str) -> list[dict[str, Any]]:
        log = self.workdir / "guests" / f"{guest_name}.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def running_guests(self) -> dict[str, list[str]]:
        """guest -> nodes on which it runs: a live writer, or an active domain on a live
        hypervisor."""
        found: dict[str, list[str]] = {g.name: [] for g in self.guests}
        for node in self.nodes.values():
            for guest in self.guests:
                writer = node.guests.get(guest.name)
                alive = writer is not None and writer.poll() is None
                active = (node.down is None and node.hypervisor is not None
                          and node.hypervisor.is_active(guest.name))
                if alive or active:
                    found[guest.name].append(node.name)
        return found

    # -- faults ----------------------------------------------------------------------------
    def crash(self, node_name: str) -> None:
        """SIGKILL the whole machine: service, holder sessions, guests."""
        node = self.nodes[node_name]
        os.killpg(node.pgid, signal.SIGKILL)
        self._machine_gone(node, "crashed (SIGKILL)")

    def lose_paths(self, node_name: str, portals: list[str]) -> None:
        """The node loses these paths of its own (each node has portals of its own, so the
        other node keeps all of its paths): the portal stops listening, and the established
        connections to it are torn down (`ss -K`; iproute2, needs CAP_NET_ADMIN)."""
        for portal in portals:
            self.tgtd.remove_portal(portal)
            host, port = portal.rsplit(":", 1)
            subprocess.run(["ss", "-K", "-t", "dst", host, "dport", "=", f":{port}"],
                           check=True, capture_output=True, timeout=10)
        self.note(f"{node_name} lost path(s) {', '.join(portals)}")

    def restore_paths(self, node_name: str, portals: list[str]) -> None:
        """The portals listen again. The lab's kernel does not log in again by itself (an
        iscsid would), so the node's lost sessions stay down for this boot."""
        for portal in portals:
            self.tgtd.add_portal(portal)
        self.note(f"{node_name}: path(s) {', '.join(portals)} listening again")

    def freeze(self, node_name: str) -> None:
        """SIGSTOP the whole machine (a hung host: nothing runs, nothing is lost). Its
        watchdog stand-in runs outside the machine and keeps counting."""
        os.killpg(self.nodes[node_name].pgid, signal.SIGSTOP)
        self.note(f"{node_name} frozen (SIGSTOP)")

    def thaw(self, node_name: str) -> None:
        os.killpg(self.nodes[node_name].pgid, signal.SIGCONT)
        self.note(f"{node_name} thawed (SIGCONT)")

    def _machine_gone(self, node: LabNode, why: str) -> None:
        if node.down is None:
            node.down = why
            if node.hypervisor is not None:
                node.hypervisor.close()  # its hypervisor, and every domain on it, is gone
                node.hypervisor = None
            self.note(f"{node.name} {why}")

    def poll_machines(self) -> None:
        """Notice machines the watchdog reset or the BMC powered off."""
        for node in self.nodes.values():
            if node.down is not None or node.anchor is None:
                continue
            if node.anchor.poll() is not None:
                # The stand-in records its firing just after its SIGKILL: give it a moment.
                fired = (node.supervisor.wait_fired(Deadline.after(0.5))
                         if node.supervisor else None)
                self._machine_gone(node, "reset by its watchdog" if fired else "powered off")

    def wait_down(self, node_name: str, within: float) -> bool:
        deadline = Deadline.after(within)
        while not deadline.expired():
            self.poll_machines()
            if self.nodes[node_name].down is not None:
                return True
            time.sleep(0.05)
        return False

    def reboot(self, node_name: str, boot_id: str) -> None:
        """Power the machine on again (a new process group) and boot it with `boot_id`; the
        watchdog service's start is the documented unfence path."""
        node = self.nodes[node_name]
        if node.down is None:
            self.crash(node_name)
        if node.supervisor is not None:
            node.supervisor.stop()
        node.guests.clear()
        self._power_on(node)
        self._write_config(node)
        self._boot(node, boot_id)

    # -- DRBD's side -----------------------------------------------------------------------
    def drbd_fence_peer(self, fencer: str, victim: str,
                        kill_after: float | None = None) -> FenceRecord:
        """Run the fence-peer handler on `fencer` exactly as drbdadm runs it (`kill_after`:
        SIGKILL it after that many seconds, a handler killed mid-fence)."""
        env = drbd9_handler_env("r0", "0", DRBD_IDS[fencer], DRBD_IDS[victim],
                                {drbd_id: name for name, drbd_id in DRBD_IDS.items()},
                                DRBD_ADDRESSES[fencer], DRBD_ADDRESSES[victim])
        env.update({"PATH": f"{Path(sys.executable).parent}:{env['PATH']}",
                    "STONEWALL_CONFIG": str(self.configs[fencer]), "STONEWALL_NODE": fencer})
        program = str(Path(sys.executable).parent / "stonewall-drbd-fence-peer")
        self.note(f"DRBD on {fencer}: replication link to {victim} lost, fence-peer handler "
                  "called")
        started = time.time()
        try:  # on the machine: a crash of the fencer ends its handler too
            handler = subprocess.Popen(["/bin/sh", "-c", f"exec {program}"], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, process_group=self.nodes[fencer].pgid)
        except OSError as gone:  # the machine died a moment ago: its group is gone
            record = FenceRecord(fencer, victim, -signal.SIGKILL, started, time.time(),
                                 f"not run: {fencer} is down ({gone.strerror})")
            self.fences.append(record)
            return record
        try:
            output, _ = handler.communicate(timeout=kill_after if kill_after else 90)
        except subprocess.TimeoutExpired:
            handler.kill()
            output, _ = handler.communicate()
        record = FenceRecord(fencer, victim, handler.returncode, started, time.time(),
                             output or "")
        self.fences.append(record)
        for line in record.output.strip().splitlines():
            self.note(f"  {fencer}: {line}")
        for line in self._fence_details(fencer):
            self.note(f"    {line}")
        self.note(f"fence-peer on {fencer} exited {record.exit_code}: "
                  f"{FENCE_PEER_EXIT.get(record.exit_code, 'NOT fenced, I/O stays frozen')}"
                  f" ({record.ended - record.started:.2f}s)")
        return record

    def _fence_details(self, fencer: str) -> list[str]:
        """Per LUN and path, what the last fence recorded in `fencer`'s event log."""
        log = Path(self.config(fencer).paths.event_log)
        if not log.exists():
            return []
        record = json.loads(log.read_text().splitlines()[-1])
        lines = []
        for level in record.get("details", {}).get("levels", []):
            for lun in (level.get("preempt") or {}).get("luns", []):
                lines.append(f"{level['level']}: {lun['lun']}: {lun['action']} via "
                             f"{lun['path']}{' ' + lun['detail'] if lun.get('detail') else ''}")
            for check in (level.get("verification") or {}).get("checks", []):
                down = f", down: {', '.join(check['paths_down'])}" if check["paths_down"] else ""
                lines.append(f"verify {check['lun']}: key absent on {check['paths_up']} "
                             f"path(s){down}: {'proven' if check['verdict'] else 'NOT proven'}")
            if level.get("level") == "power":
                lines.append(f"power: {level.get('reason')}")
        return lines

    def take_over(self, survivor: str, victim: str, record: FenceRecord) -> TakeoverReport:
        """The survivor starts the victim's guests per their start policy (DESIGN 6)."""
        node = self.nodes[survivor]
        assert node.hypervisor is not None
        config = self.config(survivor)
        power_verified = record.exit_code == 7
        verified_at = time.monotonic() - (time.time() - record.ended)
        evidence = FenceEvidence(power_verified, verified_at if record.fenced else None)
        report = take_over(config.node(victim), config, self.holder(survivor),
                           node.hypervisor, SYSTEM_CLOCK, evidence, t_safe(config.watchdog),
                           node=config.node(survivor), deadline=Deadline.after(60))
        self.note(f"takeover on {survivor}: {report.basis}")
        for guest in report.guests:
            if guest.running:
                self._start_writer(guest.guest, node)
            self.note(f"takeover on {survivor}: {guest.describe()} "
                      f"({guest.at - verified_at:.2f}s after the fence was verified)")
        return report

    # -- the one rule ----------------------------------------------------------------------
    def check_invariants(self) -> InvariantReport:
        """Read every guest LUN back and judge: nothing of a fenced node accepted after its
        fence point; no two nodes' writes acknowledged in overlapping windows; no
        acknowledged write lost; every guest on at most one node; no fenced key back in its
        boot."""
        self.poll_machines()
        config = self.config(next(iter(self.nodes)))
        paths = self._observer_paths(config)
        violations: list[Violation] = []
        stamps_read = 0
        try:
            connect_paths(paths, Deadline.after(10))
            for guest in self.guests:
                lun = f"{guest.name}-disk"
                read_from = time.time()  # later acknowledgements may land after their block
                stamps = read_stamps(paths[lun])
                stamps_read += len(stamps)
                written = [r for r in self._acknowledged(guest.name) if r.get("written")]
                acknowledged = [Stamp(r["time"], r["node"], r["guest"], r["sequence"])
                                for r in written]
                before_read = [stamp for stamp, r in zip(acknowledged, written)
                               if r["ack"] < read_from]
                violations += check_single_writer(lun, acknowledged, start_of)
                violations += check_acknowledged_kept(lun, stamps, before_read, RING)
                for victim, fence_point in self._first_fence_points().items():
                    violations += check_after_fence(lun, stamps, victim, fence_point,
                                                    acknowledged)
            views = read_views(paths, Deadline.after(10), SYSTEM_CLOCK)
        finally:
            close_paths(paths)
        keys_back = []
        for fence in self.fences:
            same_boot = self.boots[fence.victim].read_text().strip().endswith("boot-1")
            key = config.node(fence.victim).key
            # only a storage fence removed the key; a powered-off node keeps it registered
            if fence.exit_code == 4 and same_boot and any(
                    key in (p.keys or ()) for v in views.values() for p in v.paths):
                keys_back.append(fence.victim)
        return InvariantReport(violations, self.running_guests(), keys_back, stamps_read)

    def _first_fence_points(self) -> dict[str, float]:
        """victim -> when its first proven fence ended: what any later fence of it forbids
        (nothing of the victim after its fence point), the first forbids already."""
        points: dict[str, float] = {}
        for fence in self.fences:
            if fence.fenced:
                points[fence.victim] = min(fence.ended, points.get(fence.victim, fence.ended))
        return points

    def _observer_paths(self, config: ClusterConfig) -> dict[str, list[Any]]:
        """An independent initiator's paths to every LUN, through every node's portals (a
        node that lost its paths took only its own)."""
        names = [lun.name for lun in config.luns]
        every_portal = tuple(parse_portal(portal) for portal in self.tgtd.portals)
        luns = control_path_luns([config.lun(name) for name in names], every_portal)
        return plan_paths(luns, "iqn.2026-11.lab.stonewall:checker", "reader")

    def registered_nodes(self) -> dict[str, set[str] | None]:
        """LUN -> the nodes whose key an independent observer reads there (any path; None
        when no path of the LUN answered)."""
        config = self.config(next(iter(self.nodes)))
        names = {node.key: node.name for node in config.nodes}
        paths = self._observer_paths(config)
        try:
            connect_paths(paths, Deadline.after(10))
            views = read_views(paths, Deadline.after(10), SYSTEM_CLOCK)
        finally:
            close_paths(paths)
        return {lun: {names.get(key, f"0x{key:016x}") for p in view.up_paths
                      for key in (p.keys or ())} if view.reachable else None
                for lun, view in views.items()}

    # -- teardown --------------------------------------------------------------------------
    def stop(self) -> None:
        for node in self.nodes.values():
            for writer in node.guests.values():
                if writer.poll() is None:
                    writer.kill()
                writer.wait()
                if writer.stdout:
                    writer.stdout.close()
            if node.service is not None:
                node.service.stop()
            if node.anchor is not None:
                try:
                    os.killpg(node.pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                node.anchor.wait()
            if node.supervisor is not None:
                node.supervisor.stop()
            if node.bmc is not None:
                node.bmc.stop()
            if node.hypervisor is not None:
                node.hypervisor.close()
        if self.cluster is not None:
            for name in list(self.cluster.kernels):
                self.cluster.stop_kernel(name)
        self.tgtd.stop()

    def __enter__(self) -> "ScenarioLab":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
