"""Reading typed values back from JSON: one accessor per field type, each refusing a value of
the wrong shape. The holder's socket and its callers share these, so both sides of the
protocol validate a field the same way (`from_json` beside each `to_jsonable`)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class WireFormatError(ValueError):
    """A JSON value that does not have the shape its type expects."""


def obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise WireFormatError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def field(data: Mapping[str, Any], name: str, kind: type[T] | tuple[type, ...],
          what: str) -> T:
    """`data[name]`, which must exist and be of `kind` (a bool is never taken for an int)."""
    if name not in data:
        raise WireFormatError(f"{what}: missing {name!r}")
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise WireFormatError(f"{what}: {name!r} must be {_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise WireFormatError(f"{what}: {name!r} must be {_names(kinds)}, "
                              f"not {type(value).__name__}")
    return value  # type: ignore[return-value]


def optional(data: Mapping[str, Any], name: str, kind: type[T] | tuple[type, ...],
             what: str) -> T | None:
    """`data[name]` of `kind`, or None when absent or null."""
    if data.get(name) is None:
        return None
    return field(data, name, kind, what)


def items(data: Mapping[str, Any], name: str, decode: Callable[[Any], T],
          what: str) -> tuple[T, ...]:
    """The list `data[name]`, each element decoded by `decode`."""
    return tuple(decode(item) for item in field(data, name, list, what))


def strings(data: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    """The list of strings `data[name]` (LUN names, path names)."""
    values = field(data, name, list, what)
    if not all(isinstance(value, str) for value in values):
        raise WireFormatError(f"{what}: {name!r} must be a list of strings")
    return tuple(values)


def key(value: Any, what: str) -> int:
    """A reservation key as the protocol spells it: "0x" and 16 hex digits, or an integer."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64:
        return value
    if isinstance(value, str) and value.startswith("0x") and len(value) == 18:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise WireFormatError(f"{what}: {value!r} is not a reservation key")


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(kind.__name__ for kind in kinds)
