"""Fuzzing the YAML configuration: any file is a validated ClusterConfig or a ConfigError whose
problems are one line each, found in bounded time (no alias bomb, no deep nesting, no
huge number gets through or hangs). `stonewall config check` on such a file exits 0, 1 or 2
with one problem per stderr line and no traceback."""
from __future__ import annotations

import os
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from stonewall.config.errors import ConfigError
from stonewall.config.loader import load_config

from . import budget
from .support import assert_one_line, python_module, run

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "multipath-cluster.yaml").read_text()
EXAMPLE_LINES = EXAMPLE.splitlines()
VALUE_LINES = [index for index, line in enumerate(EXAMPLE_LINES)
               if re.match(r"\s*(- )?[a-z_]+: \S", line)]

scalars = st.one_of(
    st.sampled_from(["0", "-1", "65536", "1e999", ".nan", "-.inf", "0x10", "0o7", "true",
                     "null", "~", "''", '""', "[]", "{}", "[1, 2", "*undefined", "&a 1",
                     "!!python/object/apply:os.system ['true']", "!!binary aGk=", "|", ">-",
                     "'\\x00'", '"\\ud800"', "2026-11-25", "1_000", "0b101", ":", "- x"]),
    st.integers(1, 6000).map(lambda digits: "9" * digits),
    st.text(max_size=20).map(lambda text: text.replace("\n", " ")))


def alias_bomb(levels: int, where: str) -> str:
    """The 'billion laughs' of YAML: each level names the one below nine times; the top
    level is then used at `where` (an unknown key, a list of strings, a list of records)."""
    lines = ["a0: &a0 [lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    bomb = "\n".join(lines) + "\n"
    if where == "portals":
        return bomb + EXAMPLE.replace('portals: ["127.0.0.1:3260", "127.0.0.2:3260"]',
                                      f"portals: *a{levels}", 1)
    if where == "guests":
        return bomb + EXAMPLE.replace("guests:\n", f"guests: *a{levels}\nunused:\n", 1)
    return EXAMPLE + bomb


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "bomb", "nested", "junk"]))
    if kind == "bomb":
        return alias_bomb(draw(st.integers(1, 9)),
                          draw(st.sampled_from(["unknown", "portals", "guests"])))
    if kind == "nested":
        depth = draw(st.integers(10, 20_000))
        return EXAMPLE + "guests: " + "[" * depth + "]" * depth + "\n"
    if kind == "junk":
        return draw(st.text(max_size=300))
    lines = list(EXAMPLE_LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.sampled_from(VALUE_LINES))
        action = draw(st.sampled_from(["value", "delete", "duplicate", "indent"]))
        if action == "value":
            key = lines[index].split(":", 1)[0]
            lines[index] = f"{key}: {draw(scalars)}"
        elif action == "delete":
            lines[index] = ""
        elif action == "duplicate":
            lines.insert(index, lines[index])
        else:
            lines[index] = " " * draw(st.integers(0, 9)) + lines[index].lstrip()
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    os.chmod(path, 0o600)  # the example's inline-secret rule is about others reading it
    return str(path)


@budget.pure(250)
@given(text=st.one_of(config_texts(), st.binary(max_size=200)))
def test_any_file_is_a_valid_config_or_problems_of_one_line_each(tmp_path: Path,
                                                                  text: str | bytes) -> None:
    path = _write(tmp_path / "cluster.yaml", text)
    try:
        config = load_config(path)
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert_one_line(str(problem))
            assert problem.file == path
        return
    assert config.nodes and config.luns  # what the schema requires of a valid file


@budget.process(6)
@given(text=config_texts())
def test_config_check_exits_0_1_or_2_with_one_problem_per_line(tmp_path: Path,
                                                               text: str) -> None:
    path = _write(tmp_path / "cluster.yaml", text)
    result = run(python_module("stonewall", "--config", path, "config", "check",
                               "--skip-secrets"))
    result.assert_no_traceback()
    assert result.exit_code in (0, 1, 2), result.stderr
    if result.exit_code:
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith(f"{path}") for line in lines), result.stderr
