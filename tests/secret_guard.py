"""A lab secret (a BMC password, a CHAP secret: stonewall.lab.identities.LAB_SECRETS) never
shows in what a test can see. Every test fails that lets one through to:

- its captured output: what it read with capsys/capfd, and what pytest captured besides;
- its log records (what caplog sees);
- an event log (`*.jsonl`) or a watchdog status file (`watchdog.json`) under its tmp_path.

A failure names the secret and where it showed, never its value, and the secret is cut out of
the captured output pytest prints for a failed test. tests/conftest.py installs the hook and
the autouse fixture from here.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stonewall.lab.identities import BMC_PASSWORD, CHAP_SECRET, LAB_SECRETS

SECRET_NAMES = {BMC_PASSWORD: "the lab BMC password", CHAP_SECRET: "the lab CHAP secret"}
assert set(SECRET_NAMES) == set(LAB_SECRETS)  # a new lab secret needs a name here
REDACTED = "<lab secret>"
WATCHED_FILES = ("*.jsonl", "watchdog.json")  # event logs and the watchdog's status file


def exposures(text: str, where: str) -> list[str]:
    """One phrase per lab secret that `text` (seen at `where`) contains."""
    return [f"{name} shows in {where}" for secret, name in SECRET_NAMES.items()
            if secret in text]


def redacted(text: str) -> str:
    for secret in LAB_SECRETS:
        text = text.replace(secret, REDACTED)
    return text


def file_exposures(directory: Path) -> list[str]:
    """Lab secrets in the event logs and status files under `directory`."""
    found = []
    for pattern in WATCHED_FILES:
        for path in sorted(directory.rglob(pattern)):
            if path.is_file():
                found += exposures(path.read_text(errors="replace"), str(path))
    return found


@pytest.fixture(autouse=True)
def lab_secrets_stay_hidden(request: pytest.FixtureRequest) -> Iterator[None]:
    """Watch what the test reads from capsys/capfd and, afterwards, its files."""
    seen: list[str] = []
    for name in ("capsys", "capfd", "capsysbinary", "capfdbinary"):
        if name in request.fixturenames:
            _watch_readouterr(request.getfixturevalue(name), name, seen)
    # Asked for now, so that tmp_path is torn down after this fixture has read it.
    tmp_path = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    found = list(seen)
    if tmp_path is not None:
        found += file_exposures(tmp_path)
    if found:
        pytest.fail("a lab secret leaked: " + "; ".join(found), pytrace=False)


def _watch_readouterr(capture: Any, name: str, seen: list[str]) -> None:
    read = capture.readouterr

    def readouterr() -> Any:
        result = read()
        for stream, text in (("out", result.out), ("err", result.err)):
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            seen.extend(exposures(text, f"{name}.readouterr().{stream}"))
        return result

    capture.readouterr = readouterr


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Fail a phase whose captured output or log shows a lab secret, and cut the secret out
    of what pytest will print."""
    outcome = yield
    report = outcome.get_result()
    # A report carries the sections of the phases before it too: judge only its own.
    found = [phrase for title, content in report.sections if title.endswith(f" {report.when}")
             for phrase in exposures(content, title.lower())]
    report.sections = [(title, redacted(content)) for title, content in report.sections]
    if not found:
        return
    report.outcome = "failed"
    report.longrepr = "a lab secret leaked: " + "; ".join(found)
