"""The schema machinery on its own: kinds, records, and where problems are placed."""
from __future__ import annotations

import yaml

from stonewall.config.schema import (
    INVALID,
    Integer,
    Invalid,
    ListOf,
    MapOf,
    Number,
    ProblemLog,
    Record,
    Text,
    optional,
    required,
)


def _load(kind, text: str):  # type: ignore[no-untyped-def]
    log = ProblemLog("f.yaml")
    value = kind.load(yaml.compose(text, Loader=yaml.SafeLoader), "top", log)
    return value, [str(p) for p in log.problems]


def test_a_record_without_builder_loads_as_a_dict_with_defaults_and_omissions() -> None:
    record = Record({"a": required(Integer(0, 9)), "b": optional(Text(), "dflt"), "c": optional(Text())})
    assert _load(record, "{a: 3}") == ({"a": 3, "b": "dflt"}, [])


def test_a_builders_complaint_is_placed_at_the_record() -> None:
    def build(low: int, high: int) -> tuple[int, int]:
        if low > high:
            raise Invalid(f"low ({low}) must not exceed high ({high})")
        return low, high

    record = Record({"low": required(Integer(0, 9)), "high": required(Integer(0, 9))}, build=build)
    assert _load(record, "\n\n{low: 5, high: 2}") == (
        INVALID, ["f.yaml:3: top: low (5) must not exceed high (2)"])


def test_a_builder_never_sees_an_invalid_field() -> None:
    calls = []
    record = Record({"n": required(Integer(0, 9))}, build=lambda n: calls.append(n))
    assert _load(record, "{n: 10}") == (INVALID, ["f.yaml:1: top.n: 10 is out of range; expected an integer 0..9"])
    assert calls == []


def test_one_bad_item_makes_the_list_invalid_but_every_item_is_judged() -> None:
    value, problems = _load(ListOf(Integer(0, 9)), "- 1\n- x\n- 12\n")
    assert value is INVALID
    assert problems == ["f.yaml:2: top[1]: 'x' is not an integer; expected an integer 0..9",
                        "f.yaml:3: top[2]: 12 is out of range; expected an integer 0..9"]


def test_yaml_integer_spellings_are_read_as_yaml_defines_them() -> None:
    assert _load(ListOf(Integer(0, 100)), "[0x10, 1_0, 12]") == ((16, 10, 12), [])


def test_numbers_accept_integers_and_respect_inclusive_bounds() -> None:
    assert _load(Number(at_least=0), "0") == (0.0, [])
    assert _load(Number(above=0), "0.5") == (0.5, [])
    assert _load(Number(above=0), "-0.0")[1] == ["f.yaml:1: top: -0.0 is out of range; expected a number > 0"]


def test_text_takes_numbers_as_written_and_limits_length() -> None:
    assert _load(Text(), "0123") == ("0123", [])
    assert _load(Text(max_length=3), "abcd")[1] == [
        "f.yaml:1: top: 'abcd' is longer than 3 characters; expected a string"]


def test_a_map_rejects_repeated_and_non_scalar_keys() -> None:
    kind = MapOf(Integer(0, 9), Text(), "a map")
    assert _load(kind, "{1: a, 2: b}") == ({1: "a", 2: "b"}, [])
    value, problems = _load(kind, "1: a\n1: b\n? [x]\n: c\n")
    assert value is INVALID
    assert problems == ["f.yaml:2: top.1: duplicate key; first given at line 1",
                        "f.yaml:3: top: a key must be a plain word, got a list"]


def test_a_problem_without_a_place_of_its_own_takes_its_nearest_parents_line() -> None:
    log = ProblemLog("f.yaml")
    Record({"nodes": required(ListOf(Record({"name": required(Text())})))}).load(
        yaml.compose("x: 1\nnodes:\n  - name: a\n", Loader=yaml.SafeLoader), "", log)
    assert log.line("nodes[0].key") == 3
    assert log.line("nodes[0].name") == 3
    assert log.line("nodes") == 2
    assert log.line("elsewhere") == 1  # the document itself
    assert ProblemLog("f.yaml").line("nodes") is None
