"""Putting fence_stonewall where pacemaker-fenced looks: /usr/sbin (a temporary one here)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from stonewall.handlers.pacemaker_cmd import register
from stonewall.handlers.fence_agent_install import (
    AgentInstallError, AgentNotFound, InstallAction, find_agent_executable, install_agent)


@pytest.fixture
def agent(tmp_path: Path) -> Path:
    """An executable named fence_stonewall, as pip installs the console script."""
    path = tmp_path / "venv-bin" / "fence_stonewall"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_install_links_the_agent_and_is_idempotent(tmp_path: Path, agent: Path) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    first = install_agent(sbin, agent)
    assert first.action is InstallAction.CREATED
    assert os.readlink(sbin / "fence_stonewall") == str(agent)
    assert install_agent(sbin, agent).action is InstallAction.UNCHANGED
    moved = tmp_path / "other-venv" / "fence_stonewall"
    moved.parent.mkdir()
    agent.rename(moved)
    assert install_agent(sbin, moved).action is InstallAction.UPDATED
    assert os.readlink(sbin / "fence_stonewall") == str(moved)
    assert sorted(p.name for p in sbin.iterdir()) == ["fence_stonewall"]  # no temporary left


def test_install_never_replaces_a_file_that_is_not_its_link(tmp_path: Path, agent: Path) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "fence_stonewall").write_text("someone else's agent\n")
    with pytest.raises(AgentInstallError, match="not replacing"):
        install_agent(sbin, agent)
    assert (sbin / "fence_stonewall").read_text() == "someone else's agent\n"


def test_a_missing_or_unusable_source_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(AgentNotFound, match="no executable fence_stonewall in"):
        find_agent_executable([tmp_path])
    plain = tmp_path / "fence_stonewall"
    plain.write_text("not executable")
    with pytest.raises(AgentNotFound, match="not an executable"):
        install_agent(tmp_path / "sbin", plain)
    with pytest.raises(AgentInstallError, match="not an absolute path"):
        install_agent(tmp_path, Path("fence_stonewall"))


def test_find_takes_the_first_directory_that_has_the_agent(tmp_path: Path, agent: Path) -> None:
    assert find_agent_executable([tmp_path / "nowhere", agent.parent]) == agent


def stonewall_main(arguments: list[str]) -> int:
    """`stonewall ARGUMENTS` with the pacemaker subcommand registered as cli.py does."""
    parser = argparse.ArgumentParser(prog="stonewall")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(arguments)
    return args.func(args)


def test_the_stonewall_command_installs_the_agent(tmp_path: Path, agent: Path, capsys) -> None:
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    arguments = ["pacemaker", "install-agent", "--sbin-dir", str(sbin), "--source", str(agent)]
    assert stonewall_main(arguments) == 0
    assert capsys.readouterr().out.strip() == f"{sbin}/fence_stonewall -> {agent}: created"
    (sbin / "fence_stonewall").unlink()
    (sbin / "fence_stonewall").write_text("foreign")
    assert stonewall_main(arguments) == 1
    assert "not replacing" in capsys.readouterr().err
    assert stonewall_main(["pacemaker", "install-agent", "--sbin-dir", str(sbin), "--source",
                           str(tmp_path / "absent")]) == 2
