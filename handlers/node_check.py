"""`stonewall config check --on-node`: does this host match its configuration?

The schema check says the file is consistent; this says whether the node it runs on can act
on it: the node is in the file, each sg LUN resolves to a multipath map whose paths are all
up (and as many as the other LUNs have), the watchdog device exists and nobody else holds
it, the state, runtime and event-log directories exist with safe modes, every secret can be
read where the service reads it, the holder socket answers, and every BMC answers a status
read within its deadline. Each finding is one line; a problem's line ends with its fix.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.model import ClusterConfig, IpmiSettings, Node, Transport
from stonewall.config.secrets import (SecretError, exposure, password_file_problems,
                                      read_secret)
from stonewall.holder.api import HolderFailure
from stonewall.holder.client import HolderClient, socket_path
from stonewall.power.fence import PowerClient, power_status
from stonewall.power.protocol import PowerState
from stonewall.storage.multipath.errors import MultipathError
from stonewall.storage.multipath.resolve import resolve_lun_paths
from stonewall.storage.multipath.types import Discovery

ENVIRONMENT_FILE = "/etc/default/stonewall"  # the unit's EnvironmentFile=
HOLDER_TIMEOUT = 3.0  # a holder that takes longer to say its state is not answering


@dataclass(frozen=True)
class Finding:
    """One check's result: where, what was found and, for a problem, what to do."""

    check: str  # "node", "lun d0", "watchdog", "directory runtime_dir", "bmc kvm-b", ...
    text: str
    fix: str = ""  # empty: no problem

    @property
    def ok(self) -> bool:
        return not self.fix

    def __str__(self) -> str:
        return f"{self.check}: {self.text}" + (f"; fix: {self.fix}" if self.fix else "")


def _power_client(settings: IpmiSettings, password: str) -> PowerClient:
    from stonewall.power.ipmi import IpmiClient  # the worker machinery only when asked

    return IpmiClient(settings, password)


@dataclass
class Host:
    """What the checks look at (tests hand in a tree of their own)."""

    environ: Mapping[str, str]
    discover: Callable[[], Discovery]
    proc_root: str = "/proc"
    environment_file: str = ENVIRONMENT_FILE
    clock: Clock = SYSTEM_CLOCK
    power_client: Callable[[IpmiSettings, str], PowerClient] = field(default=_power_client)


def check_node(config: ClusterConfig, node_option: str | None, host: Host) -> list[Finding]:
    """Every finding for this host, in the order the module docstring lists the checks."""
    findings = [_this_node(config, node_option, host)]
    findings += sg_luns(config, host)
    findings += watchdog_device(config.watchdog.device, host.proc_root)
    findings += directories(config)
    findings += secrets(config, host)
    findings.append(holder_socket(config, node_option, host.clock))
    findings += bmcs(config, host)
    return findings


def _this_node(config: ClusterConfig, node_option: str | None, host: Host) -> Finding:
    try:
        me: Node = local_node(config, node_option, host.environ)
    except UnknownLocalNode as err:
        return Finding("node", str(err), "name the node as the host is called (`hostname "
                       "-s`), or pass --node")
    return Finding("node", f"this host is {me.name} (id {me.id})")


def sg_luns(config: ClusterConfig, host: Host) -> list[Finding]:
    """Each sg LUN: a multipath map, every path up, no fewer paths than the other LUNs."""
    luns = [lun for lun in config.luns if lun.transport is Transport.SG]
    if not luns:
        return []
    try:
        discovery = host.discover()
    except (MultipathError, OSError) as err:
        return [Finding("luns", f"multipath discovery failed: {err}",
                        "check that multipathd runs (multipathd show maps)")]
    findings, counts = [], {}
    for lun in luns:
        check = f"lun {lun.name}"
        try:
            found = resolve_lun_paths(lun, discovery)
        except MultipathError as err:
            findings.append(Finding(check, str(err), "map the LUN to this host's initiator "
                                    "and check `multipath -ll` shows it"))
            continue
        counts[lun.name] = len(found.paths)
        down = [f"{p.path.name} ({p.state.value})" for p in found.paths if p not in found.up_paths]
        if found.map is None:
            findings.append(Finding(check, f"{len(found.paths)} plain disk(s), no multipath map",
                                    f"add WWID {found.wwid} to multipath (multipath -a)"))
        elif down:
            findings.append(Finding(check, f"{len(down)} of {len(found.paths)} paths not up: "
                                    f"{', '.join(down)}", "repair or reinstate the path "
                                    "(multipathd show paths)"))
        elif len(found.paths) < 2:
            findings.append(Finding(check, f"map {found.map_device} has one path: no "
                                    "redundancy", "add a second path (portal or HBA)"))
        else:
            findings.append(Finding(check, f"map {found.map_device}, {len(found.paths)} paths up"))
    most = max(counts.values(), default=0)
    findings += [Finding(f"lun {name}", f"{count} paths where other LUNs have {most}",
                         "map the LUN on every path the others use")
                 for name, count in counts.items() if count < most]
    return findings


def watchdog_device(device: str, proc_root: str = "/proc") -> list[Finding]:
    """The device exists, is a character device, and no other process holds it open."""
    if device.startswith("standin:"):
        return [Finding("watchdog", f"{device} is the lab's stand-in, not checked")]
    try:
        mode = os.stat(device).st_mode
    except OSError as err:
        return [Finding("watchdog", f"{device}: {err.strerror}",
                        "load the watchdog driver (e.g. modprobe softdog or the board's "
                        "iTCO_wdt/ipmi_watchdog) or set watchdog.device")]
    findings = []
    if not stat.S_ISCHR(mode):
        findings.append(Finding("watchdog", f"{device} is not a character device",
                                "set watchdog.device to the kernel's watchdog device"))
    holders = [(pid, name) for pid, name in _holders(device, proc_root)
               if pid != os.getpid()]
    others = [(pid, name) for pid, name in holders if not _is_our_service(pid, proc_root)]
    if others:
        named = ", ".join(f"{name} (pid {pid})" for pid, name in others)
        findings.append(Finding("watchdog", f"{device} is held by {named}",
                                "stop and disable it (sbd, watchdog, wd_keepalive): one "
                                "watchdog user per node"))
    elif not findings:
        findings.append(Finding("watchdog", f"{device} present" + (
            ", held by the stonewall watchdog service" if holders else ", not held")))
    return findings


def _holders(device: str, proc_root: str) -> list[tuple[int, str]]:
    """(pid, command name) of every process with `device` open."""
    target = os.path.realpath(device)
    found = []
    for entry in os.scandir(proc_root):
        if not entry.name.isdigit():
            continue
        try:
            descriptors = os.scandir(os.path.join(entry.path, "fd"))
            if any(os.readlink(fd.path) == target for fd in descriptors):
                found.append((int(entry.name), _read(os.path.join(entry.path, "comm"))))
        except OSError:
            continue  # gone, or not ours to look at
    return found


def _is_our_service(pid: int, proc_root: str) -> bool:
    words = _read(os.path.join(proc_root, str(pid), "cmdline")).split("\0")
    return any(word.endswith("stonewall") for word in words) and "watchdog" in words


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return "?"


def directories(config: ClusterConfig) -> list[Finding]:
    """state_dir and runtime_dir private to root; the event log's directory not writable by
    others (the modes the unit and tmpfiles.d give them)."""
    paths = config.paths
    wanted = ((f"paths.state_dir {paths.state_dir}", paths.state_dir, 0o077, "0700"),
              (f"paths.runtime_dir {paths.runtime_dir}", paths.runtime_dir, 0o077, "0700"),
              (f"event log directory {os.path.dirname(paths.event_log)}",
               os.path.dirname(paths.event_log), 0o022, "0750"))
    findings = []
    for check, path, forbidden, mode in wanted:
        try:
            status = os.stat(path)
        except OSError as err:
            findings.append(Finding(check, err.strerror or str(err),
                                    f"systemd-tmpfiles --create stonewall.conf, or "
                                    f"install -d -m {mode} {path}"))
            continue
        loose = stat.S_IMODE(status.st_mode) & forbidden
        if not stat.S_ISDIR(status.st_mode):
            findings.append(Finding(check, "is not a directory", f"install -d -m {mode} {path}"))
        elif status.st_uid not in (0, os.geteuid()):
            findings.append(Finding(check, f"owned by uid {status.st_uid}", f"chown root {path}"))
        elif loose:
            findings.append(Finding(check, f"mode {stat.S_IMODE(status.st_mode):04o}",
                                    f"chmod {mode} {path}"))
        else:
            findings.append(Finding(check, f"mode {stat.S_IMODE(status.st_mode):04o}"))
    return findings


def secrets(config: ClusterConfig, host: Host) -> list[Finding]:
    """Password files readable and private; password_env set where the service runs."""
    findings = [Finding(problem.key, problem.message,
                        "write the BMC password into the file, owned by root, mode 0600")
                for problem in password_file_problems(config)]
    defined = _environment_file(host.environment_file)
    for i, node in enumerate(config.nodes):
        if node.ipmi is None or not node.ipmi.password.env:
            continue
        name, check = node.ipmi.password.env, f"nodes[{i}].ipmi.password_env"
        if host.environ.get(name) or defined.get(name):
            findings.append(Finding(check, f"{name} is set for the service"))
        else:
            findings.append(Finding(check, f"{name} is not set here nor in "
                                    f"{host.environment_file}",
                                    f"add {name}=... to {host.environment_file} (mode 0600)"))
    if defined:
        try:
            reason = exposure(os.stat(host.environment_file))
        except OSError:
            reason = None
        if reason:
            findings.append(Finding(host.environment_file, f"holds secrets and is {reason}",
                                    f"chown root {host.environment_file} and chmod 0600 it"))
    return findings


def _environment_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments skipped)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return {}
    pairs = (line.strip().partition("=") for line in text.splitlines())
    return {key.strip(): value.strip().strip("\"'") for key, sep, value in pairs
            if sep and key.strip() and not key.strip().startswith("#")}


def holder_socket(config: ClusterConfig, node: str | None, clock: Clock) -> Finding:
    """The holder answers on its socket; no socket at all is the state before the service
    first starts, not a problem."""
    path = socket_path(config.paths.runtime_dir)
    if not os.path.exists(path):
        return Finding("holder", f"{path}: not running (normal before the service started)")
    try:
        HolderClient(config, node).state(Deadline.after(HOLDER_TIMEOUT, clock))
    except HolderFailure as err:
        return Finding("holder", f"{path} does not answer: {err}",
                       "systemctl restart stonewall-watchdog (remove the socket if no "
                       "holder runs)")
    return Finding("holder", f"{path} answers")


def bmcs(config: ClusterConfig, host: Host) -> list[Finding]:
    """One status read per BMC, within its node's ipmi.timeout."""
    findings = []
    for node in config.nodes:
        if node.ipmi is None:
            continue
        check, settings = f"bmc {node.name}", node.ipmi
        try:
            client = host.power_client(settings, read_secret(settings.password, host.environ))
        except (SecretError, ValueError):
            continue  # the secret's own line (above) says what to fix; one line per problem
        attempt = power_status(client, Deadline.after(settings.timeout, host.clock), host.clock)
        where = f"{settings.address}:{settings.port}"
        if attempt.state in (PowerState.ON, PowerState.OFF):
            findings.append(Finding(check, f"{where} answered in {attempt.duration:.2f} s: "
                                    f"power {attempt.state.value}"))
        else:
            findings.append(Finding(check, f"{where} gave no status within {settings.timeout:g} "
                                    f"s: {attempt.detail or attempt.describe()}",
                                    "check ipmi address, port, username and password, and "
                                    "that this host reaches the BMC (UDP)"))
    return findings
