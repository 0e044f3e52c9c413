"""A small schema language over PyYAML's composed node tree.

Kinds describe what a value must be (text, integer in a range, one of some choices, a list,
a map, a record of named fields). Loading walks the node tree, so every problem carries the
line and key path it comes from, and it goes on after a problem so one run reports them all.
A node that produced any problem loads as INVALID; a record's builder never sees INVALID.
"""
from __future__ import annotations

import difflib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from stonewall.config.errors import ConfigProblem
from stonewall.messages import quoted

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Invalid:
    """The value of a node that had a problem (already reported)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()
_NO_DEFAULT: Any = object()  # an optional field without a default of its own


class Invalid(Exception):
    """Raised by a kind or a record builder: why a value is wrong.

    `complete` says the reason already tells what is expected, so no "; expected ..." is added.
    """

    def __init__(self, reason: str, complete: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.complete = complete


class ProblemLog:
    """Collects problems for one file and remembers the line of every key path it visited."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []
        self._lines: dict[str, int] = {}

    @property
    def count(self) -> int:
        return len(self.problems)

    def place(self, path: str, node: Node) -> None:
        """Remember where `path` is; the first place wins (a field's key line, not its value's)."""
        self._lines.setdefault(path, node.start_mark.line + 1)

    @property
    def lines(self) -> dict[str, int]:
        """The line of every key path visited."""
        return dict(self._lines)

    def line(self, path: str) -> int | None:
        """The line of `path`, or of its nearest visited parent."""
        while True:
            if path in self._lines:
                return self._lines[path]
            if not path:
                return None
            path = path[: max(path.rfind("."), path.rfind("["), 0)]

    def add(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(ConfigProblem(self.file, line or self.line(path), path, message))


def join(path: str, name: str) -> str:
    """The key path of field `name` inside `path`."""
    return f"{path}.{name}" if path else name


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a choice is close to `word`, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "an empty value"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
    return repr(text)


def _number_text(node: ScalarNode) -> str:
    """A number as written, cut short: a 5000-digit value must not become the message."""
    return node.value if len(node.value) <= 40 else node.value[:37] + "..."


def _native(node: ScalarNode) -> Any:
    """The value YAML gives a plain scalar (int, float, bool ...) by its resolved tag."""
    try:
        return SafeConstructor().construct_object(node)
    except ConstructorError as err:
        raise Invalid(f"{_shown(node)} cannot be read ({err.problem})") from None
    except ValueError:  # CPython converts at most 4300 digits to an int
        raise Invalid(f"{_shown(node)} has {len(node.value)} characters, too many for a "
                      "number") from None


class Kind(ABC):
    """What one value must be. `expected` completes "...; expected <expected>"."""

    expected: str

    def load(self, node: Node, path: str, log: ProblemLog) -> Any:
        """The value of `node`, or INVALID after logging every problem found in it."""
        log.place(path, node)
        before = log.count
        try:
            value = self.read(node, path, log)
        except Invalid as err:
            log.add(path, err.reason if err.complete else f"{err.reason}; expected {self.expected}")
            return INVALID
        return INVALID if log.count > before else value

    @abstractmethod
    def read(self, node: Node, path: str, log: ProblemLog) -> Any:
        """Convert `node`; raise Invalid for a problem with the node itself."""


class Scalar(Kind):
    """One non-empty scalar; subclasses convert it."""

    def read(self, node: Node, path: str, log: ProblemLog) -> Any:
        if not isinstance(node, ScalarNode) or node.tag == _NULL_TAG:
            raise Invalid(f"got {_shown(node)}")
        return self.convert(node)

    @abstractmethod
    def convert(self, node: ScalarNode) -> Any:
        """The value of a scalar; raise Invalid if it is wrong."""


class Text(Scalar):
    """Text as written (a YAML number or boolean is taken as its text, e.g. a password 1234).

    `conceal` keeps the value out of every message (for passwords).
    """

    def __init__(self, expected: str = "a string", pattern: str | None = None,
                 max_length: int = 4096, conceal: bool = False) -> None:
        self.expected = expected
        self._pattern = re.compile(pattern) if pattern else None
        self._max_length = max_length
        self._conceal = conceal

    def convert(self, node: ScalarNode) -> str:
        text = node.value
        shown = "the value" if self._conceal else _shown(node)
        if len(text) > self._max_length:
            raise Invalid(f"{shown} is longer than {self._max_length} characters")
        if self._pattern and not self._pattern.fullmatch(text):
            raise Invalid(f"{shown} is not valid")
        return text


class Integer(Scalar):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self.expected = f"an integer {low}..{high}"

    def convert(self, node: ScalarNode) -> int:
        if node.tag != _INT_TAG:
            raise Invalid(f"{_shown(node)} is not an integer")
        value = _native(node)
        if not self.low <= value <= self.high:
            raise Invalid(f"{_number_text(node)} is out of range")
        return value


class Number(Scalar):
    """A real number, e.g. seconds; `above` is exclusive, `at_least` inclusive."""

    def __init__(self, *, above: float | None = None, at_least: float | None = None,
                 unit: str = "") -> None:
        self._above, self._at_least = above, at_least
        bound = f" > {above:g}" if above is not None else f" >= {at_least:g}" if at_least is not None else ""
        self.expected = f"a number{unit}{bound}"

    def convert(self, node: ScalarNode) -> float:
        if node.tag not in (_INT_TAG, _FLOAT_TAG):
            raise Invalid(f"{_shown(node)} is not a number")
        try:
            value = float(_native(node))
        except OverflowError:  # an integer beyond any float
            value = math.inf
        if not math.isfinite(value):
            raise Invalid(f"{_number_text(node)} is not a finite number")
        if (self._above is not None and value <= self._above) or (
                self._at_least is not None and value < self._at_least):
            raise Invalid(f"{_number_text(node)} is out of range")
        return value


class Flag(Scalar):
    expected = "true or false"

    def convert(self, node: ScalarNode) -> bool:
        if node.tag != _BOOL_TAG:
            raise Invalid(f"{_shown(node)} is not a boolean")
        return bool(_native(node))


class Choice(Scalar):
    """One of a fixed set of words."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)
        self.expected = "one of: " + ", ".join(self._values)

    @classmethod
    def of(cls, enum: type[Enum]) -> "Choice":
        """The choice among a string enum's values."""
        return cls({member.value: member for member in enum})

    def convert(self, node: ScalarNode) -> Any:
        if node.value not in self._values:
            raise Invalid(f"{_shown(node)} is not known{did_you_mean(node.value, self._values)}")
        return self._values[node.value]


class Converted(Scalar):
    """Text turned into a value by `parse`, whose ValueError message is the whole complaint."""

    def __init__(self, expected: str, parse: Callable[[str], Any]) -> None:
        self.expected = expected
        self._parse = parse

    def convert(self, node: ScalarNode) -> Any:
        try:
            return self._parse(node.value)
        except ValueError as err:
            # The parsers quote the value with repr(); a long one is cut to one short line.
            raise Invalid(str(err).replace(repr(node.value), quoted(node.value)),
                          complete=True) from None


class ListOf(Kind):
    def __init__(self, item: Kind, min_items: int = 0, expected: str | None = None) -> None:
        self._item = item
        self._min_items = min_items
        self.expected = expected or f"a list, each item {item.expected}"
        if min_items:
            self.expected += f" (at least {min_items})"

    def read(self, node: Node, path: str, log: ProblemLog) -> tuple[Any, ...]:
        if not isinstance(node, SequenceNode):
            raise Invalid(f"got {_shown(node)}")
        count = len(node.value)
        if count < self._min_items:
            raise Invalid(f"got {count} item{'s' if count > 1 else ''}" if count else "got an empty list")
        return tuple(self._item.load(item, f"{path}[{i}]", log) for i, item in enumerate(node.value))


def _key_nodes(node: Node, path: str, log: ProblemLog) -> Iterable[tuple[ScalarNode, Node]]:
    """A mapping's (key, value) pairs with scalar keys, reporting other and duplicate keys."""
    if not isinstance(node, MappingNode):
        raise Invalid(f"got {_shown(node)}")
    first_line: dict[str, int] = {}
    for key, value in node.value:
        line = key.start_mark.line + 1
        if not isinstance(key, ScalarNode):
            log.add(path, f"a key must be a plain word, got {_shown(key)}", line)
        elif key.value in first_line:
            log.add(join(path, key.value), f"duplicate key; first given at line {first_line[key.value]}", line)
        else:
            first_line[key.value] = line
            yield key, value


class MapOf(Kind):
    """A mapping with keys of one kind and values of another, e.g. DRBD node-id -> node name."""

    def __init__(self, key: Kind, value: Kind, expected: str) -> None:
        self._key, self._value = key, value
        self.expected = expected

    def read(self, node: Node, path: str, log: ProblemLog) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in _key_nodes(node, path, log):
            child = join(path, key_node.value)
            key = self._key.load(key_node, child, log)
            value = self._value.load(value_node, child, log)
            if key in result:  # different spellings of one key, e.g. 1 and 0x1
                log.add(child, f"duplicate key {key!r}")
            result[key] = value
        return result


@dataclass(frozen=True)
class Field:
    """One key of a record. Absent and optional: `default`, or left to the builder's default."""

    kind: Kind
    required: bool = False
    default: Any = _NO_DEFAULT


def required(kind: Kind) -> Field:
    """A field that must be given."""
    return Field(kind, required=True)


def optional(kind: Kind, default: Any = _NO_DEFAULT) -> Field:
    """A field that may be left out: then `default`, or (without one) the builder's own default."""
    return Field(kind, default=default)


class Record(Kind):
    """A mapping with named fields, built into a value by `build(**fields)` when all are valid.

    Without `build` the record loads as a dict of its fields.
    """

    def __init__(self, fields: Mapping[str, Field], build: Callable[..., Any] | None = None) -> None:
        self.fields = dict(fields)
        self._build = build
        self.expected = "a mapping with keys " + ", ".join(self.fields)

    def load_fields(self, node: Node, path: str, log: ProblemLog) -> dict[str, Any]:
        """Each field's value (INVALID where it had a problem); problems with keys are logged."""
        try:
            pairs = {key.value: (key, value) for key, value in _key_nodes(node, path, log)}
        except Invalid as err:
            log.add(path, f"{err.reason}; expected {self.expected}", node.start_mark.line + 1)
            return {name: INVALID for name in self.fields}
        for name, (key, _) in pairs.items():
            if name not in self.fields:
                log.add(join(path, name), "unknown key" + (
                    did_you_mean(name, self.fields) or f"; expected one of: {', '.join(self.fields)}"),
                    key.start_mark.line + 1)
        values: dict[str, Any] = {}
        for name, field in self.fields.items():
            child = join(path, name)
            if name in pairs:
                key, value = pairs[name]
                log.place(child, key)
                values[name] = field.kind.load(value, child, log)
            elif field.required:
                log.add(child, f"required key is missing; expected {field.kind.expected}")
                values[name] = INVALID
            elif field.default is not _NO_DEFAULT:
                values[name] = field.default
        return values

    def read(self, node: Node, path: str, log: ProblemLog) -> Any:
        before = log.count
        values = self.load_fields(node, path, log)
        if log.count > before:
            return INVALID
        if self._build is None:
            return values
        try:
            return self._build(**values)
        except Invalid as err:
            raise Invalid(err.reason, complete=True) from None
