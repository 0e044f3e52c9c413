"""`stonewall watchdog timing` on a real configuration file."""
from __future__ import annotations

import argparse
import json

import pytest

from stonewall.handlers import watchdog_cmd

CONFIG = """\
cluster: lab
nodes:
  - {name: kvm-a, id: 1}
  - {name: kvm-b, id: 2}
luns:
  - name: arbiter0
    role: arbiter
    iscsi: {target: "iqn.2026-11.org.example:array1", lun: 1, portals: ["127.0.0.1:3260"]}
fencing:
  - {level: storage, timeout: 30}
watchdog: {interval: 2, io_deadline: 5, check_deadline: %s, timeout: 60, grace: 30, margin: 10}
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stonewall")
    parser.add_argument("--config")  # cli.py provides it for every subcommand
    watchdog_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_the_timing_of_a_configured_san_with_t_safe(tmp_path, capsys):
    config = tmp_path / "cluster.yaml"
    config.write_text(CONFIG % 30)

    assert run("--config", str(config), "watchdog", "timing", "--json") == 0

    report = json.loads(capsys.readouterr().out)
    assert report["t_safe"] == 100
    bounds = {(row["start"], row["end"]): row["bound"] for row in report["rows"]}
    assert bounds[("last good check", "node reset")] == 90
    assert bounds[("preemption (storage reachable)", "node reset")] == 70


def test_the_defaults_as_a_table(capsys):
    assert run("watchdog", "timing", "--defaults") == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("preemption") and "T_safe" in line and " 17s " in line
               for line in lines)


def test_broken_timing_is_reported_with_its_numbers(tmp_path, capsys):
    config = tmp_path / "cluster.yaml"
    config.write_text(CONFIG % 70)

    assert run("--config", str(config), "watchdog", "timing") == 2
    assert "check_deadline (70s) must be less than timeout (60s)" in capsys.readouterr().err


def test_an_unreadable_configuration(tmp_path, capsys):
    assert run("--config", str(tmp_path / "absent.yaml"), "watchdog", "timing") == 1
    assert "absent.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["watchdog"], ["watchdog", "nonsense"]])
def test_an_action_is_required(argv):
    with pytest.raises(SystemExit):
        run(*argv)
