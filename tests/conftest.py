"""Fixtures shared by every test folder: a private tgtd with LUNs on two portals, and
iSCSI sessions that are always logged out at the end."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.scsi.iscsi import IscsiSession



KERNEL_TIER = Path(__file__).parent / "kernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kernel", action="store_true",
                     help="run the kernel tier (tests/kernel: QEMU guests) and nothing else")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The kernel tier runs only with --kernel (`./run test --kernel`), and then alone."""
    wanted = config.getoption("--kernel")
    keep, drop = [], []
    for item in items:
        (keep if item.path.is_relative_to(KERNEL_TIER) == wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    config.stash[_KERNEL_DESELECTED] = 0 if wanted else len(drop)


def pytest_terminal_summary(terminalreporter: object, config: pytest.Config) -> None:
    count = config.stash.get(_KERNEL_DESELECTED, 0)
    if count:
        terminalreporter.write_line(  # type: ignore[attr-defined]
            f"kernel tier: {count} test(s) not run here; they run with ./run test --kernel")


_KERNEL_DESELECTED = pytest.StashKey[int]()


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
