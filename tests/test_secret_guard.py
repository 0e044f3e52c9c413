"""The secret guard (tests/secret_guard.py) fails a test that shows a lab secret, wherever it
shows, says where without saying the secret, and lets every other test pass."""
from __future__ import annotations

from pathlib import Path

import pytest

from stonewall.lab.identities import BMC_PASSWORD, CHAP_SECRET

GUARD = Path(__file__).with_name("secret_guard.py")

LEAKY_TESTS = f'''
import json, logging, sys
BMC, CHAP = {BMC_PASSWORD!r}, {CHAP_SECRET!r}

def test_prints_it():
    print("connecting with", BMC)

def test_writes_it_to_stderr_through_the_file_descriptor(capfd):
    import os
    os.write(2, CHAP.encode())
    capfd.readouterr()  # read, so pytest itself never sees it

def test_reads_it_from_capsys(capsys):
    sys.stdout.write("password=" + BMC)
    assert "password" in capsys.readouterr().out

def test_logs_it():
    logging.getLogger("stonewall.power").warning("login as admin/%s failed", BMC)

def test_records_it_in_an_event_log(tmp_path):
    (tmp_path / "events.jsonl").write_text(json.dumps({{"details": {{"chap": CHAP}}}}) + "\\n")

def test_puts_it_in_the_watchdog_status_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "watchdog.json").write_text(json.dumps({{"secret": BMC}}))

def test_keeps_it_in_a_password_file_and_passes(tmp_path, capsys):
    (tmp_path / "bmc.password").write_text(BMC)  # where a secret belongs
    print("nothing to see")
    assert capsys.readouterr().out == "nothing to see\\n"
'''


def test_every_way_a_secret_shows_fails_its_test_and_nothing_else(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(GUARD.read_text())
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    # Output and logs fail the phase they show in; what the guard finds after the test (read
    # capture, files) is an error at teardown of a test whose body passed.
    result.assert_outcomes(failed=2, passed=5, errors=4)
    text = result.stdout.str() + result.stderr.str()
    assert "test_keeps_it_in_a_password_file_and_passes - " not in text
    assert BMC_PASSWORD not in text and CHAP_SECRET not in text
    for where in ("the lab BMC password shows in captured stdout call",
                  "the lab CHAP secret shows in capfd.readouterr().err",
                  "the lab BMC password shows in capsys.readouterr().out",
                  "the lab BMC password shows in captured log call",
                  "the lab CHAP secret shows in", "events.jsonl",
                  "watchdog.json"):
        assert where in text, where
