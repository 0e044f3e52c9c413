"""The man pages, generated from the parsers and docs/ as the build does: every page renders
without a groff warning, every subcommand and option is in stonewall(8), and
`fence_stonewall -o manpage` prints the page the build installs."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stonewall.cli import build_parser
from stonewall.handlers.fence_agent import main as fence_agent_main
from stonewall.roff import subcommands

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("stonewall.8", "fence_stonewall.8", "stonewall-drbd.8", "cluster.yaml.5")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("man")
    (base / "pylib").mkdir()
    (base / "pylib" / "stonewall").symlink_to(ROOT)  # the tree is the package, as in make
    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-manpages"),
                            str(base / "out")], env={"PYTHONPATH": str(base / "pylib")},
                           capture_output=True, text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    return base / "out"


@pytest.mark.parametrize("page", PAGES)
def test_each_page_renders_without_warnings(pages: Path, page: str) -> None:
    if shutil.which("groff") is None:
        pytest.skip("needs groff (Debian package groff-base)")
    rendered = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(pages / page)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"})
    assert rendered.returncode == 0 and rendered.stderr == ""
    plain = re.sub(".\x08", "", rendered.stdout)  # grotty's overstrike bold and underline
    assert "NAME" in plain and len(plain.splitlines()) > 20


def test_stonewall_8_has_every_subcommand_and_option(pages: Path) -> None:
    text = (pages / "stonewall.8").read_text()
    for name, parser in subcommands(build_parser()):
        if subcommands(parser):
            continue  # groups: their leaves carry the text
        assert f'.SS "{name.replace("-", chr(92) + "-")}"' in text, name
        for action in parser._actions:  # noqa: SLF001
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option.replace("-", "\\-") in text, (name, option)


def test_the_agent_prints_the_page_the_build_writes(pages: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert fence_agent_main(["-o", "manpage"]) == 0
    assert capsys.readouterr().out == (pages / "fence_stonewall.8").read_text()


def test_the_config_page_is_docs_config_md(pages: Path) -> None:
    text = (pages / "cluster.yaml.5").read_text()
    assert text.startswith('.TH "CLUSTER.YAML" "5"')
    for heading in ("SECRETS", "VALIDATION RULES", "EXIT STATUS"):
        assert f'.SH "{heading}"' in text
    assert "\\-\\-on\\-node" in text
