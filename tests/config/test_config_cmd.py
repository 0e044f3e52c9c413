"""`stonewall config check` run as a separate process, as cli.py will wire it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import WriteConfig

# cli.py provides the global --config and the subcommand table; this is the same wiring.
_RUN = """\
import argparse, sys
from stonewall.handlers.config_cmd import register
parser = argparse.ArgumentParser(prog="stonewall")
parser.add_argument("--config")
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def run(*argv: str, env: dict[str, str] | None = None, user: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, *argv], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, user=user)


def test_the_example_is_valid_and_its_summary_shows_keys_luns_and_t_safe(example_path: str) -> None:
    result = run("--config", example_path, "config", "check", "--skip-secrets")
    assert (result.returncode, result.stderr) == (0, "")
    out = result.stdout
    assert out.startswith(f"{example_path}: valid\n")
    assert "kvm-a  id 1  key 0x5357750f7eda0001 (derived)" in out
    assert "1. arbiter0  arbiter  order 0  iscsi  reservation we-ro" in out
    assert "paths 192.0.2.101:3260, 192.0.2.102:3260" in out
    assert ("4. web1-disk  guest  order 100  sg  reservation we-ar  wwid "
            "3600a098038304437415d4b6a59684a51 alias web1-disk  paths /dev/mapper/web1-disk  "
            "control path 192.0.2.101:3260") in out
    assert "T_safe = check_deadline + timeout + margin = 5s + 10s + 2s = 17s" in out
    assert out.index("web1  home kvm-a") < out.index("db1  home kvm-b")


def test_json_output_is_the_normalised_configuration(example_path: str) -> None:
    result = run("--config", example_path, "config", "check", "--json", "--skip-secrets")
    assert result.returncode == 0
    summary = json.loads(result.stdout)
    assert summary["valid"] is True and summary["cluster"] == "prod1"
    assert [(n["name"], n["key"], n["key_source"]) for n in summary["nodes"]] == [
        ("kvm-a", "0x5357750f7eda0001", "derived"), ("kvm-b", "0x5357750f7eda0002", "derived")]
    assert summary["nodes"][1]["ipmi"]["password"] == "file /etc/stonewall/kvm-b.pw"
    assert [lun["name"] for lun in summary["luns"]] == ["arbiter0", "arbiter1", "db1-disk", "web1-disk"]
    assert summary["luns"][0]["paths"] == ["192.0.2.101:3260", "192.0.2.102:3260"]
    assert summary["luns"][3]["control_paths"] == ["192.0.2.101:3260"]
    assert summary["drbd"] == [{"name": "r0", "luns": ["arbiter0", "arbiter1"], "minors": [0],
                                "peers": {"0": "kvm-a", "1": "kvm-b"}}]
    assert summary["fencing"] == [{"level": "storage", "timeout": 10.0}, {"level": "power", "timeout": 30.0}]
    assert summary["watchdog"]["t_safe"] == 17.0


def test_the_config_file_comes_from_the_environment_when_no_option_is_given(
        write_config: WriteConfig, minimal: str) -> None:
    path = write_config(minimal)
    result = run("config", "check", env={"STONEWALL_CONFIG": path})
    assert result.returncode == 0 and result.stdout.startswith(f"{path}: valid")


def test_an_invalid_file_exits_2_with_one_problem_per_line_on_stderr(write_config: WriteConfig) -> None:
    path = write_config("""\
        cluster: lab
        nodes: [{name: kvm-a, id: 0}]
        luns: [{name: d0, role: shared, transport: sg}]
        fencing: [{level: storage, timeout: 10}]
        """)
    result = run("--config", path, "config", "check")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"{path}:2: nodes[0].id: 0 is out of range; expected an integer 1..65535",
        f"{path}:3: luns[0]: LUN d0 uses the sg transport but has neither wwid: nor alias:; "
        "expected at least one of them",
    ]
    as_json = run("--config", path, "config", "check", "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {"valid": False, "problems": [
        {"file": path, "line": 2, "key": "nodes[0].id",
         "message": "0 is out of range; expected an integer 1..65535"},
        {"file": path, "line": 3, "key": "luns[0]",
         "message": "LUN d0 uses the sg transport but has neither wwid: nor alias:; expected at "
                    "least one of them"}]}


def test_a_missing_file_exits_1(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    result = run("--config", path, "config", "check")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"{path}: cannot read: No such file or directory\n"


def test_a_file_the_caller_may_not_read_exits_1(minimal: str) -> None:
    # As root, drop to nobody: root reads any file, so the refusal must come from another user.
    user = 65534 if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        path = Path(directory) / "cluster.yaml"
        path.write_text(minimal)
        path.chmod(0o000)
        result = run("--config", str(path), "config", "check", user=user)
    assert (result.returncode, result.stderr) == (1, f"{path}: cannot read: Permission denied\n")


def test_unusable_password_files_make_the_check_fail_unless_skipped(write_config: WriteConfig,
                                                                    tmp_path: Path) -> None:
    secret = tmp_path / "kvm-a.pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    path = write_config(f"""\
        cluster: lab
        nodes:
          - {{name: kvm-a, id: 1, ipmi: {{address: 127.0.0.1, username: admin, password_file: {secret}}}}}
        luns: [{{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}}]
        fencing: [{{level: storage, timeout: 10}}, {{level: power, timeout: 30}}]
        """)
    refused = run("--config", path, "config", "check")
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"{path}:3: nodes[0].ipmi.password_file: {secret}: mode 0644 gives others access")
    assert "s3cret" not in refused.stderr + refused.stdout
    assert run("--config", path, "config", "check", "--skip-secrets").returncode == 0
    secret.chmod(0o600)
    accepted = run("--config", path, "config", "check")
    assert accepted.returncode == 0 and "password from file" in accepted.stdout
    assert "s3cret" not in accepted.stdout


@pytest.mark.parametrize("argv", [["config"], ["config", "check", "--bogus"]])
def test_usage_errors_are_argparse_errors(argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 2 and "usage: stonewall" in result.stderr


def test_single_holder_types_on_several_paths_and_guest_luns_without_a_data_path_are_refused(
        write_config: WriteConfig) -> None:
    path = write_config("""\
        cluster: lab
        nodes: [{name: kvm-a, id: 1, initiator: "iqn.2026-11.org.example:kvm-a"}]
        luns:
          - {name: g0, role: guest, transport: iscsi,
             iscsi: {target: "iqn.2026-11.org.example:array1", lun: 1, portals: ["192.0.2.1"]}}
          - {name: g1, role: guest, transport: sg, wwid: "3600a098038304437415d4b6a59684a51",
             reservation: we}
          - {name: s0, role: shared, reservation: ea,
             iscsi: {target: "iqn.2026-11.org.example:array1", lun: 3,
                     portals: ["192.0.2.1", "192.0.2.2"]}}
          - {name: s1, role: shared, reservation: we,
             iscsi: {target: "iqn.2026-11.org.example:array1", lun: 4, portals: ["192.0.2.1"]}}
        fencing: [{level: storage, timeout: 10}]
        """)
    result = run("--config", path, "config", "check")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path}:4: luns[0].transport: guest LUN g0 has no data path")
    assert "use transport: sg with the map's wwid:" in lines[0]
    assert lines[1].startswith(f"{path}:7: luns[1].reservation: LUN g1: we (Write Exclusive) "
                               "lets only the one I_T nexus that reserved write")
    assert lines[2].startswith(f"{path}:8: luns[2].reservation: LUN s0: ea (Exclusive Access)")
    assert "use we-ar (guest LUNs) or we-ro" in lines[2]


def test_both_examples_pass_the_check(example_path: str) -> None:
    for name in ("multipath-cluster.yaml", "drbd-over-san.yaml"):
        result = run("--config", str(Path(example_path).with_name(name)), "config", "check",
                     "--skip-secrets")
        assert (result.returncode, result.stderr) == (0, ""), name
