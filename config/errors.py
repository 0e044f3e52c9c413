"""What is wrong with a configuration file, as values callers can branch on and print."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: where it is (file, 1-based line, key path) and what was expected."""

    file: str
    line: int | None  # None when the problem has no place in the file (it could not be read)
    key: str  # dotted key path such as "nodes[1].id"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{place}: {self.key}: {self.message}" if self.key else f"{place}: {self.message}"


class ConfigError(Exception):
    """The configuration is not valid; `problems` lists everything found, in file order."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (p.line or 0, p.key)))
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigUnreadable(ConfigError):
    """The configuration file could not be read at all (missing, no permission, a directory)."""
