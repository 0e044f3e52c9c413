"""Outcomes of the in-process SG_IO transport, from a process started with the fakesg shim
(lab/pr_driver.py) against a nexus whose target answers what the test sets: every SCSI status,
sense and transport failure becomes the same exception type as on the other transports."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterator

import pytest

from stonewall.lab.driver_client import DriverClient, RemoteFailure
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.device import CommandResult
from stonewall.storage.scsi.errors import (
    CommandTimeout, DeviceError)
from stonewall.storage.scsi.types import PrOutAction, ReservationType

from .sg_lab import PR_OUTCOMES, ScriptedNexus

KEY = 0x5354570000000001
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


@pytest.fixture
def driver(scripted_nexus: ScriptedNexus) -> Iterator[DriverClient]:
    process = subprocess.Popen([sys.executable, "-m", "stonewall.lab.pr_driver"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **scripted_nexus.environment})
    assert process.stdin is not None and process.stdout is not None
    try:
        yield DriverClient(process.stdout, process.stdin)
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("answer", "expected"), PR_OUTCOMES)
def test_outcomes_become_the_transports_exception_types(
        scripted_nexus: ScriptedNexus, driver: DriverClient, answer, expected):
    scripted_nexus.target.answer = answer
    with pytest.raises(expected) as caught:
        driver.pr("sgio", scripted_nexus.sg_path, "preempt", KEY, KEY + 1, int(WE_RO))
    assert type(caught.value) is expected
    assert scripted_nexus.target.cdbs == [cdb.pr_out(PrOutAction.PREEMPT, WE_RO)]
    # The parameter list went out whole: our key, then the victim's (SPC-4 6.16.3).
    assert scripted_nexus.target.data_out == [cdb.pr_out_parameters(KEY, KEY + 1)]


def test_a_block_device_path_works_as_well(scripted_nexus: ScriptedNexus,
                                           driver: DriverClient):
    scripted_nexus.target.answer = CommandResult(0x00, bytes.fromhex("0000000700000008")
                                                 + KEY.to_bytes(8, "big"))
    assert driver.pr("sgio", scripted_nexus.block_path, "read_keys") == {
        "generation": 7, "keys": [KEY]}


def test_a_short_answer_is_never_an_empty_key_list(scripted_nexus: ScriptedNexus,
                                                   driver: DriverClient):
    scripted_nexus.target.answer = CommandResult(0x00, b"")
    with pytest.raises(RemoteFailure) as caught:
        driver.pr("sgio", scripted_nexus.sg_path, "read_keys")
    assert caught.value.error == "ResponseFormatError"


def test_a_hung_target_ends_at_the_deadline(scripted_nexus: ScriptedNexus,
                                            driver: DriverClient):
    # The SG_IO timeout is the deadline's remainder; the initiator (here the stand-in, as
    # the kernel would) gives up there and the command's fate is unknown.
    scripted_nexus.target.delay = 20
    scripted_nexus.target.answer = CommandTimeout("no answer from the array")
    answer = driver.request("pr", 30, backend="sgio", device=scripted_nexus.sg_path,
                            call="reserve", args=[KEY, int(WE_RO)], kwargs={}, timeout=0.5)
    assert (answer["ok"], answer["error"]) == (False, "CommandTimeout")
    assert answer["seconds"] < 3.0


def test_a_path_without_its_nexus_is_a_device_error(scripted_nexus: ScriptedNexus,
                                                    driver: DriverClient):
    with pytest.raises(DeviceError, match="cannot open"):
        driver.pr("sgio", scripted_nexus.unserved_path, "read_keys")
