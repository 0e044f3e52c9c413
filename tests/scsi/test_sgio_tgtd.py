"""The in-process SG_IO transport (storage/scsi/sgio.py) against tgtd, through the fakesg
shim and the nexus stand-in: the same two nodes, two paths each, as test_sg_tgtd.py, driven
from one long-lived process started with the shim (lab/pr_driver.py), and side by side with
sg_persist on the same nexuses."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.lab.driver_client import DriverClient
from stonewall.lab.nexus import NexusStandIn
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.scsi.errors import (
    DeviceError, ReservationConflict, UnitAttention, UnsupportedServiceAction)
from stonewall.storage.scsi.types import ReservationType

from .test_sg_tgtd import KEY_A, KEY_B, fake_devices

WE_RO = int(ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)


@dataclass
class Driven:
    client: DriverClient
    a1: str
    a2: str
    b1: str
    b2: str
    a1_block: str

    def sgio(self, device: str, call: str, *args: object, **kwargs: object) -> object:
        return self.client.pr("sgio", device, call, *args, **kwargs)

    def sg_persist(self, device: str, call: str, *args: object, **kwargs: object) -> object:
        return self.client.pr("sg_persist", device, call, *args, **kwargs)


@pytest.fixture
def driven(tgtd: Tgtd, tmp_path: Path) -> Iterator[Driven]:
    nexus = NexusStandIn(tmp_path / "nexus", fake_devices(tgtd, tmp_path / "dev"))
    nexus.start(Deadline.after(15))
    process = subprocess.Popen([sys.executable, "-m", "stonewall.lab.pr_driver"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **nexus.environment})
    try:
        assert process.stdin is not None and process.stdout is not None
        client = DriverClient(process.stdout, process.stdin)
        assert client.call("ping") == "pong"
        yield Driven(client, *(d.path for d in nexus.devices))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        nexus.stop()


def test_fence_on_every_path_through_sg_io(driven: Driven):
    for device, key in ((driven.a1, KEY_A), (driven.a2, KEY_A), (driven.b1, KEY_B),
                        (driven.b2, KEY_B)):
        driven.sgio(device, "register", 0, key, ignore_existing=True)
    driven.sgio(driven.a1, "reserve", KEY_A, WE_RO)
    assert sorted(driven.sgio(driven.b1, "read_keys")["keys"]) == [KEY_A, KEY_A, KEY_B, KEY_B]
    reservation = driven.sgio(driven.b2, "read_reservation")
    assert (reservation["holder"], reservation["type"]) == (KEY_A, WE_RO)
    capabilities = driven.sgio(driven.a1_block, "report_capabilities")
    assert capabilities["tmv"] and not capabilities["atp_c"]
    with pytest.raises(UnsupportedServiceAction):  # tgtd: ILLEGAL REQUEST 24/00, via sense
        driven.sgio(driven.b1, "preempt", KEY_B, KEY_A, WE_RO, abort=True)
    with pytest.raises(UnsupportedServiceAction):
        driven.sgio(driven.a1, "read_full_status")

    driven.sgio(driven.b1, "preempt", KEY_B, KEY_A, WE_RO)

    # sg_persist on the same nexus agrees: the kernel (here, the stand-in) keeps one nexus
    # per path, whichever process sends the command.
    assert driven.sg_persist(driven.b2, "read_keys")["keys"] == [KEY_B, KEY_B]
    for fenced in (driven.a1, driven.a2):
        with pytest.raises(UnitAttention):  # 2A/03, told once per nexus
            driven.sgio(fenced, "read_keys")
        with pytest.raises(ReservationConflict):
            driven.sgio(fenced, "reserve", KEY_A, WE_RO)
    driven.sgio(driven.b1, "clear", KEY_B)
    assert driven.sgio(driven.a1_block, "read_keys")["keys"] == []


def test_registration_made_by_sg_persist_is_used_by_sg_io(driven: Driven):
    driven.sg_persist(driven.a1, "register", 0, KEY_A, ignore_existing=True)
    driven.sgio(driven.a1, "reserve", KEY_A, WE_RO)  # same nexus, other program: allowed
    assert driven.sg_persist(driven.a2, "read_reservation")["holder"] == KEY_A
    with pytest.raises(ReservationConflict):  # node-b's nexus is not registered
        driven.sgio(driven.b1, "reserve", KEY_B, WE_RO)
    driven.sgio(driven.a1, "release", KEY_A, WE_RO)
    driven.sgio(driven.a1, "register", KEY_A, 0)  # unregister
    assert driven.sgio(driven.a2, "read_keys")["keys"] == []


def test_a_path_that_is_no_device_is_a_device_error(driven: Driven, tmp_path: Path):
    plain = tmp_path / "plain-file"
    plain.write_bytes(b"")
    with pytest.raises(DeviceError, match="not a block or character device"):
        driven.sgio(str(plain), "read_keys")
    with pytest.raises(DeviceError, match="cannot open"):
        driven.sgio(str(tmp_path / "absent"), "read_keys")
