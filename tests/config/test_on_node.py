"""`config check --on-node` against a deliberately broken node: a sysfs tree with a degraded
multipath map, a "watchdog" that is a plain file another process holds open, directories
with loose modes or missing, an exposed password file, an unset password variable, a holder
socket that does not answer, a mute BMC next to one that answers. Each problem is one line
with its fix; a node in order passes."""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stonewall.config.loader import load_config
from stonewall.handlers.node_check import Host, check_node
from stonewall.lab.bmc_files import BmcBehaviour
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.paths import KernelRoots
from tests.multipath.mpath_host_tree import FC_WWID_HEX, ISCSI_WWID_HEX, build_reference_host
from tests.power.conftest import bmc_factory  # noqa: F401  (pytest fixture)

from ..lab_fixtures import lab  # noqa: F401  (pytest fixture)


@pytest.fixture
def held_file(tmp_path: Path) -> Iterator[Path]:
    """A plain file standing where the watchdog device should be, held open by a process
    that is not stonewall (as sbd or watchdog(8) would hold /dev/watchdog)."""
    device = tmp_path / "watchdog0"
    device.write_text("")
    holder = subprocess.Popen(["sh", "-c", f"exec 3<'{device}'; exec sleep 120"])
    try:
        for _ in range(100):  # until the shell has opened it and become sleep
            if Path(f"/proc/{holder.pid}/comm").read_text().strip() == "sleep":
                break
            subprocess.run(["sleep", "0.02"], check=True)
        yield device
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.fixture
def silent_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix socket file nobody accepts on: a holder that died without cleaning up."""
    path = tmp_path / "run" / "holder.sock"
    path.parent.mkdir(mode=0o755)  # loose on purpose
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    yield path
    dead.close()


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return path


def test_each_broken_setting_of_a_node_is_one_line_with_its_fix(
        tmp_path: Path, held_file: Path, silent_socket: Path, bmc_factory) -> None:
    tree = build_reference_host(tmp_path / "host")
    answering, mute = bmc_factory(), bmc_factory(behaviour=BmcBehaviour(mute=True))
    exposed = _write(tmp_path / "kvm-a.pw", "pw\n", mode=0o644)
    good = _write(tmp_path / "bmc.pw", answering.password + "\n")
    (tmp_path / "log").mkdir(mode=0o777)
    (tmp_path / "log").chmod(0o777)
    ipmi = "address: 127.0.0.1, username: admin, timeout: 1.5, poll_interval: 0.2"
    config = _write(tmp_path / "cluster.yaml", f"""\
        cluster: lab
        paths:
          state_dir: {tmp_path}/state
          runtime_dir: {silent_socket.parent}
          event_log: {tmp_path}/log/events.jsonl
        nodes:
          - {{name: kvm-a, id: 1, ipmi: {{{ipmi}, port: {mute.port}, password_file: {exposed}}}}}
          - {{name: kvm-b, id: 2, ipmi: {{{ipmi}, port: {answering.port}, password_file: {good}}}}}
          - {{name: kvm-c, id: 3, ipmi: {{{ipmi}, port: {mute.port}, password_env: KVM_C_PW}}}}
          - {{name: kvm-d, id: 4, ipmi: {{{ipmi}, port: {mute.port}, password_file: {good}}}}}
        luns:
          - {{name: fc0, role: arbiter, transport: sg, wwid: "3{FC_WWID_HEX}"}}
          - {{name: iscsi0, role: shared, transport: sg, wwid: "naa.{ISCSI_WWID_HEX}"}}
          - {{name: gone0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000ff"}}
        fencing: [{{level: storage, timeout: 10}}, {{level: power, timeout: 30}}]
        watchdog: {{device: {held_file}}}
        """)
    host = Host(environ={}, discover=lambda: discover_sysfs(tree.sys),
                environment_file=str(tmp_path / "no-such-default"))

    findings = check_node(load_config(str(config)), "kvm-a", host)

    problems = {finding.check: str(finding) for finding in findings if not finding.ok}
    assert sorted(problems) == sorted([
        "lun fc0", "lun iscsi0", "lun gone0", "watchdog", f"paths.state_dir {tmp_path}/state",
        f"paths.runtime_dir {silent_socket.parent}", f"event log directory {tmp_path}/log",
        "nodes[0].ipmi.password_file", "nodes[2].ipmi.password_env", "holder", "bmc kvm-d"])
    assert all("\n" not in line and "; fix: " in line for line in problems.values())
    assert "1 of 4 paths not up: sdi (down)" in problems["lun fc0"]
    assert "2 paths where other LUNs have 4" in problems["lun iscsi0"]
    assert "repair or reinstate the path" in problems["lun fc0"]
    watchdog = [str(f) for f in findings if f.check == "watchdog"]
    assert any("is not a character device" in line for line in watchdog)
    assert any(f"is held by sleep (pid " in line and "one watchdog user per node" in line
               for line in watchdog)
    assert problems[f"paths.runtime_dir {silent_socket.parent}"].endswith(
        f"mode 0755; fix: chmod 0700 {silent_socket.parent}")
    assert problems[f"event log directory {tmp_path}/log"].endswith(
        f"mode 0777; fix: chmod 0750 {tmp_path}/log")
    assert "install -d -m 0700" in problems[f"paths.state_dir {tmp_path}/state"]
    assert "mode 0644 gives others access" in problems["nodes[0].ipmi.password_file"]
    assert "add KVM_C_PW=... to" in problems["nodes[2].ipmi.password_env"]
    assert "does not answer" in problems["holder"]
    assert "gave no status within 1.5 s" in problems["bmc kvm-d"]
    answered = [str(f) for f in findings if f.check == "bmc kvm-b"]
    assert len(answered) == 1 and "answered in" in answered[0] and "power on" in answered[0]


def test_a_node_in_order_passes_and_its_holder_answers(lab, tmp_path: Path) -> None:
    lab.start_holder("node-a")
    device = tmp_path / "watchdog0"  # a character device no process holds (/dev/null's numbers)
    os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    config = replace(lab.config("node-a"),
                     watchdog=replace(lab.config("node-a").watchdog, device=str(device)))
    host = Host(environ={}, discover=KernelRoots.of(config.paths).discover,
                environment_file=str(tmp_path / "none"))
    for directory in (config.paths.state_dir, config.paths.runtime_dir):
        Path(directory).mkdir(parents=True, exist_ok=True)
        Path(directory).chmod(0o700)
    Path(config.paths.event_log).parent.mkdir(parents=True, exist_ok=True)
    Path(config.paths.event_log).parent.chmod(0o750)

    findings = check_node(config, "node-a", host)

    assert [str(f) for f in findings if not f.ok] == []
    assert any(f.check == "holder" and f.text.endswith("answers") for f in findings)


def test_the_command_exits_1_with_each_problem_on_stderr(tmp_path: Path) -> None:
    config = _write(tmp_path / "cluster.yaml", f"""\
        cluster: lab
        paths: {{state_dir: {tmp_path}/state, runtime_dir: {tmp_path}/run,
                event_log: {tmp_path}/log/events.jsonl}}
        nodes: [{{name: kvm-a, id: 1}}]
        luns:
          - {{name: a0, role: arbiter, iscsi: {{target: "iqn.2026-11.org.example:a", lun: 1,
                                              portals: ["127.0.0.1:3260"]}}}}
        fencing: [{{level: storage, timeout: 10}}]
        watchdog: {{device: {tmp_path}/no-watchdog}}
        """)
    result = subprocess.run([sys.executable, "-m", "stonewall", "--config", str(config),
                             "config", "check", "--on-node", "--node", "kvm-a"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("PROBLEM: ") and "; fix: " in line
                                   for line in lines)
    assert "ok: node: this host is kvm-a (id 1)" in result.stdout
    wrong_node = subprocess.run([sys.executable, "-m", "stonewall", "--config", str(config),
                                 "config", "check", "--on-node", "--node", "kvm-z"],
                                capture_output=True, text=True, timeout=60, check=False)
    assert wrong_node.returncode == 1
    assert "PROBLEM: node: node 'kvm-z' is not in" in wrong_node.stderr
