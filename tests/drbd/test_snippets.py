"""`stonewall drbd config`: real drbdadm accepts the printed lines, in the right section."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from stonewall.handlers.drbd_config_cmd import register
from stonewall.storage.drbd.env import DrbdVersion
from stonewall.storage.drbd.snippets import (
    FENCE_PEER_PROGRAM,
    SPLIT_BRAIN_PROGRAM,
    UNFENCE_PEER_PROGRAM,
    drbd_config_snippet,
    fencing_section,
)
from .drbdconf import run_drbdadm, write_resource


def _dump_section(dump: str, section: str) -> str:
    """The body of `section { ... }` in `drbdadm dump` output (four-space indented)."""
    match = re.search(rf"^    {section} {{\n(.*?)^    }}", dump, re.M | re.S)
    assert match, f"no {section} section in:\n{dump}"
    return match.group(1)


def test_fencing_goes_to_the_disk_section_in_84_and_the_net_section_in_9() -> None:
    assert fencing_section(DrbdVersion.V8_4) == "disk"
    assert fencing_section(DrbdVersion.V9) == "net"


@pytest.mark.parametrize("version", list(DrbdVersion))
def test_drbdadm_accepts_the_snippet_with_policy_and_all_three_handlers(
        version: DrbdVersion, tmp_path: Path) -> None:
    config = write_resource(tmp_path, version, "r0", [0], drbd_config_snippet(version, "r0"))

    dumped = run_drbdadm(version, config, ["dump", "r0"])

    assert dumped.returncode == 0, dumped.stderr
    policy = _dump_section(dumped.stdout, fencing_section(version))
    assert re.search(r"fencing\s+resource-and-stonith;", policy)
    handlers = _dump_section(dumped.stdout, "handlers")
    for handler, program in (("fence-peer", FENCE_PEER_PROGRAM),
                             ("unfence-peer", UNFENCE_PEER_PROGRAM),
                             ("split-brain", SPLIT_BRAIN_PROGRAM)):
        assert re.search(rf"^\s+{handler}\s+\"?{re.escape(program)}\"?;", handlers, re.M)


def test_drbd84_rejects_the_drbd9_placement_so_the_version_matters(tmp_path: Path) -> None:
    config = write_resource(tmp_path, DrbdVersion.V8_4, "r0", [0],
                            drbd_config_snippet(DrbdVersion.V9, "r0"))

    dumped = run_drbdadm(DrbdVersion.V8_4, config, ["dump", "r0"])

    assert dumped.returncode != 0
    assert "fencing" in dumped.stderr


def test_only_current_handler_names_are_emitted() -> None:
    for version in DrbdVersion:
        assert "outdate-peer" not in drbd_config_snippet(version)
        assert "after-resync-target" not in drbd_config_snippet(version)


def test_without_a_resource_the_lines_are_for_the_common_section() -> None:
    assert "common { ... }" in drbd_config_snippet(DrbdVersion.V9)
    assert "resource r7 { ... }" in drbd_config_snippet(DrbdVersion.V9, "r7")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stonewall")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.parametrize("argv, version, resource", [
    (["drbd", "config"], DrbdVersion.V9, None),
    (["drbd", "config", "--drbd", "8.4"], DrbdVersion.V8_4, None),
    (["drbd", "config", "--drbd", "9", "--resource", "r0"], DrbdVersion.V9, "r0"),
])
def test_the_command_prints_the_snippet_and_exits_0(
        argv: list[str], version: DrbdVersion, resource: str | None,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(argv)

    assert args.func(args) == 0
    assert capsys.readouterr().out == drbd_config_snippet(version, resource)


def test_an_unusable_resource_name_exits_2_with_a_message(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["drbd", "config", "--resource", "r 0"])

    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "'r 0'" in captured.err


@pytest.mark.parametrize("argv", [["drbd"], ["drbd", "config", "--drbd", "8.3"]])
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)

    assert exit_info.value.code == 2
