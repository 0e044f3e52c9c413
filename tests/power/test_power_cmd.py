"""`stonewall power status|on|off NODE`: a real config file, a real lab BMC, exit codes."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from stonewall.handlers.power_cmd import (
    EXIT_BMC_FAILED, EXIT_OK, EXIT_USAGE, register)
from stonewall.lab.bmc_files import BmcBehaviour
from stonewall.lab.bmc_process import BmcProcess
from stonewall.power.protocol import PowerState

from .support import BmcFactory


def write_config(directory: Path, bmc: BmcProcess, password_file: Path | None = None) -> Path:
    """kvm-a's BMC is `bmc`; kvm-b has no ipmi section."""
    path = directory / "cluster.yaml"
    path.write_text(f"""\
cluster: lab
nodes:
  - name: kvm-a
    id: 1
    ipmi: {{address: {bmc.host}, port: {bmc.port}, username: {bmc.user},
           password_file: {password_file or bmc.password_file}, timeout: 5,
           poll_interval: 0.1}}
  - name: kvm-b
    id: 2
luns:
  - name: arbiter0
    role: arbiter
    iscsi: {{target: "iqn.2026-11.org.example:array1", lun: 1, portals: ["127.0.0.1:3260"]}}
fencing:
  - {{level: storage, timeout: 10}}
""")
    return path


def run(config: Path | str, *words: str) -> int:
    parser = argparse.ArgumentParser(prog="stonewall")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--config", str(config), "power", *words])
    return args.func(args)


def test_status_prints_the_state(bmc, tmp_path: Path, capsys) -> None:
    assert run(write_config(tmp_path, bmc), "status", "kvm-a") == EXIT_OK
    assert capsys.readouterr().out.strip() == "kvm-a: power is on"


def test_off_powers_off_and_reports_verification_as_json(bmc, tmp_path: Path, capsys) -> None:
    assert run(write_config(tmp_path, bmc), "off", "kvm-a", "--json") == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document["verified"] is True and document["target"] == "off"
    assert document["attempts"][-1]["state"] == "off"
    assert bmc.state().power is PowerState.OFF


def test_on_powers_on(bmc_factory: BmcFactory, tmp_path: Path, capsys) -> None:
    bmc = bmc_factory(initial_power=PowerState.OFF)
    assert run(write_config(tmp_path, bmc), "on", "kvm-a") == EXIT_OK
    assert "verified on" in capsys.readouterr().out
    assert bmc.state().power is PowerState.ON


def test_refused_credentials_exit_1_with_the_reason(bmc, tmp_path: Path, capsys) -> None:
    wrong = tmp_path / "wrong.pw"
    wrong.touch(mode=0o600)
    wrong.write_text("not-the-password\n")
    assert run(write_config(tmp_path, bmc, wrong), "off", "kvm-a") == EXIT_BMC_FAILED
    assert "refused the credentials" in capsys.readouterr().err
    assert bmc.state().power is PowerState.ON


def test_an_unknown_power_state_exits_1(bmc_factory: BmcFactory, tmp_path: Path,
                                        capsys) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(status_error=0xC0))
    assert run(write_config(tmp_path, bmc), "status", "kvm-a", "--json") == EXIT_BMC_FAILED
    assert json.loads(capsys.readouterr().out)["state"] == "unknown"


def test_a_mute_bmc_exits_1_within_the_timeout_option(bmc_factory: BmcFactory,
                                                     tmp_path: Path) -> None:
    bmc = bmc_factory(behaviour=BmcBehaviour(mute=True))
    began = time.monotonic()
    assert run(write_config(tmp_path, bmc), "off", "kvm-a", "--timeout", "1") \
        == EXIT_BMC_FAILED
    assert time.monotonic() - began <= 1.75


@pytest.mark.parametrize("words, complaint", [
    (("status", "kvm-z"), "no node 'kvm-z'"),
    (("status", "kvm-b"), "no ipmi section"),
    (("off", "kvm-a", "--timeout", "0"), "--timeout must be positive"),
])
def test_usage_errors_exit_2(bmc, tmp_path: Path, capsys, words, complaint) -> None:
    assert run(write_config(tmp_path, bmc), *words) == EXIT_USAGE
    assert complaint in capsys.readouterr().err
    assert bmc.state().off_commands == 0


def test_an_unusable_config_exits_2(tmp_path: Path, capsys) -> None:
    assert run(tmp_path / "missing.yaml", "status", "kvm-a") == EXIT_USAGE
    assert "missing.yaml" in capsys.readouterr().err


def test_an_exposed_password_file_exits_2(bmc, tmp_path: Path, capsys) -> None:
    exposed = tmp_path / "exposed.pw"
    exposed.write_text(bmc.password)
    exposed.chmod(0o644)
    assert run(write_config(tmp_path, bmc, exposed), "off", "kvm-a") == EXIT_USAGE
    assert "exposed.pw" in capsys.readouterr().err
    assert bmc.state().power is PowerState.ON
