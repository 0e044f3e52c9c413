"""Outside text (an environment value, an argument, a guest name) inside a one-line message:
quoted or escaped, and cut short where a hostile value would flood the log."""
from __future__ import annotations

SHOWN_LENGTH = 60


def quoted(text: str) -> str:
    """`text` as repr() shows it (control characters escaped), at most ~SHOWN_LENGTH long."""
    if len(text) <= SHOWN_LENGTH:
        return repr(text)
    return f"{text[:SHOWN_LENGTH - 12]!r}... ({len(text)} characters)"


def printable(text: str) -> str:
    """`text` unquoted, with every character a log viewer could take for a line end or a
    terminal command escaped as repr() escapes it."""
    return text if text.isprintable() else "".join(
        ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
