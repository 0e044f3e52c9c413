"""Fixtures shared by every test folder: a private tgtd with LUNs on two portals, iSCSI
sessions that are always logged out at the end, and the guard that fails any test showing a
lab secret (tests/secret_guard.py)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.scsi.iscsi import IscsiSession

from .secret_guard import lab_secrets_stay_hidden, pytest_runtest_makereport  # noqa: F401

pytest_plugins = ["pytester"]  # tests/test_secret_guard.py runs the guard on tests of its own


KERNEL_TIER = Path(__file__).parent / "kernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kernel", action="store_true",
                     help="run only the kernel tier (tests/kernel: QEMU guests as nodes)")


@pytest.hookimpl(tryfirst=True)  # before -m selects: the kernel tier is in the slow tier
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The kernel tier (tests/kernel) is part of the slow tier; `./run test --kernel` runs it
    alone."""
    for item in items:
        if item.path.is_relative_to(KERNEL_TIER):
            item.add_marker(pytest.mark.slow)
    if not config.getoption("--kernel"):
        return
    keep = [item for item in items if item.path.is_relative_to(KERNEL_TIER)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def _tgtd_available() -> bool:
    return shutil.which("tgtd") is not None or Path("/usr/sbin/tgtd").exists()


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[Tgtd]:
    """tgtd on two loopback portals; target tid 1 (ARRAY_IQN) with LUNs 1-4 of 8 MiB."""
    if not _tgtd_available():
        pytest.skip("tgtd is not installed (Debian package tgt); run `make test` as root")
    target = Tgtd(tmp_path / "tgtd", portal_count=2)
    target.start()
    try:
        tid = target.add_target(ARRAY_IQN)
        for lun in range(1, 5):
            target.add_lun(tid, lun)
        yield target
    finally:
        target.stop()


SessionFactory = Callable[..., IscsiSession]


@pytest.fixture
def sessions(tgtd: Tgtd) -> Iterator[SessionFactory]:
    """open(initiator, lun=1, portal_index=0) -> a logged-in IscsiSession, closed at teardown."""
    opened: list[IscsiSession] = []

    def open_session(initiator: str, lun: int = 1, portal_index: int = 0) -> IscsiSession:
        session = IscsiSession(tgtd.portals[portal_index], ARRAY_IQN, lun, initiator)
        session.connect(Deadline.after(5))
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()
