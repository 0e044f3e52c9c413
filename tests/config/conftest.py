"""Helpers for the config tests: real files in tmp_path, read back through the real loader."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest

from stonewall.config.errors import ConfigError
from stonewall.config.loader import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "multipath-cluster.yaml"

# A small valid file; tests that need a problem write their own text so line numbers are plain.
MINIMAL = """\
cluster: lab
nodes:
  - {name: kvm-a, id: 1}
  - {name: kvm-b, id: 2}
luns:
  - name: arbiter0
    role: arbiter
    iscsi: {target: "iqn.2026-11.org.example:array1", lun: 1, portals: ["127.0.0.1:3260"]}
fencing:
  - {level: storage, timeout: 10}
"""

WriteConfig = Callable[..., str]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """write_config(text, mode=0o600, name="cluster.yaml") -> path of a real file."""

    def write(text: str, mode: int = 0o600, name: str = "cluster.yaml") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        path.chmod(mode)
        return str(path)

    return write


ProblemsOf = Callable[[str], list[tuple[int | None, str, str]]]


def _problems_of(path: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert all(problem.file == path for problem in caught.value.problems)
    return [(p.line, p.key, p.message) for p in caught.value.problems]


@pytest.fixture
def problems_of() -> ProblemsOf:
    """problems_of(path) -> (line, key, message) of every problem load_config reports (it must fail)."""
    return _problems_of


@pytest.fixture
def minimal() -> str:
    """The text of a small valid configuration."""
    return MINIMAL


@pytest.fixture
def example_path() -> str:
    return str(EXAMPLE)
