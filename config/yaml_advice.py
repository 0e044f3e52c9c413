"""What to do about a YAML syntax error, from the parser's own words.

PyYAML says what it met ("could not find expected ':'"); an administrator needs what to
change. Each rule below matches one message PyYAML 6 gives (its scanner and parser) and
names the usual cause on a line of cluster.yaml. The line's text is never quoted back: it
might hold an inline password.
"""
from __future__ import annotations

import re

import yaml

_ADVICE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), advice) for pattern, advice in (
        (r"found character '\\t' that cannot start any token",
         "a tab indents this line; YAML indents with spaces only: replace the tab with spaces"),
        (r"found character '([@`%])' that cannot start any token",
         "a plain value cannot start with {0}: put the value in quotes"),
        (r"could not find expected ':'",
         "a key without ':', or a value continued on a line of its own: write `key: value` "
         "on one line, or quote the value"),
        (r"mapping values are not allowed here",
         "a ': ' inside a value, or a key indented under a value: quote the value, or align "
         "the key with the keys above it"),
        (r"found undefined alias",
         "a value starting with '*' reads as a reference to an anchor: put the value in quotes"),
        (r"while scanning a quoted scalar|found unexpected end of stream",
         "a quote opened here is never closed: add the closing quote"),
        (r"expected ',' or '\]'", "a '[' list is not closed: add the ']'"),
        (r"expected ',' or '\}'", "a '{' mapping is not closed: add the '}'"),
        (r"expected <block end>, but found '-'",
         "a list item where a key was expected: indent the '- ' item under its key"),
        (r"expected <block end>, but found",
         "this line is indented differently from the lines it belongs with: align it with "
         "its siblings (same number of spaces)"),
    ))
_FALLBACK = "check the indentation (spaces only) and the quoting on this line and the one above"


def syntax_advice(words: str) -> str:
    """The fix for a syntax error PyYAML described in `words` (its context and problem)."""
    for pattern, advice in _ADVICE:
        match = pattern.search(words)
        if match:
            return advice.format(*match.groups()) if match.groups() else advice
    return _FALLBACK


# Errors PyYAML notices only further down (at the end of the file, or on the line after a
# key without ':'): the line to fix is where the construct began, its context mark.
_FOUND_LATER = re.compile(r"end of stream|<stream end>|while scanning a simple key")


def error_line(err: yaml.MarkedYAMLError) -> int | None:
    """The 1-based line an administrator should edit for `err`."""
    words = f"{err.context or ''} {err.problem or ''}"
    first, second = err.problem_mark, err.context_mark
    if _FOUND_LATER.search(words) and second is not None:
        first, second = second, first
    mark = first or second
    return mark.line + 1 if mark else None
