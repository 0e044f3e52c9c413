"""The paths (I_T nexuses) through which a node reaches its LUNs.

For the `iscsi` transport a LUN's paths are its configured portals: one libiscsi session each,
logged in with the node's initiator name. Opening is concurrent; a path that cannot be opened
is kept, marked down with the reason, so reports can name it."""
from __future__ import annotations

from dataclasses import dataclass

from stonewall.clock import Deadline
from stonewall.config.model import Lun, Transport
from stonewall.storage.parallel import map_bounded
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.device import PrDevice
from stonewall.storage.scsi.iscsi import IscsiSession


class PathSetupError(Exception):
    """The node or LUN lacks what its transport needs."""


@dataclass
class LunPath:
    """One path of one LUN. `device` is None while the path is down (`error` says why)."""

    lun: Lun
    name: str
    device: PrDevice | None
    error: str | None = None
    registered: bool = False  # this nexus carries our registration (the holder knows)
    session: IscsiSession | None = None

    @property
    def up(self) -> bool:
        return self.device is not None and self.error is None

    def mark_down(self, reason: str) -> None:
        self.error = reason

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


PathSet = dict[str, list[LunPath]]  # LUN name -> its paths


def _iscsi_path(lun: Lun, portal: str, initiator: str, role: str) -> LunPath:
    assert lun.iscsi is not None
    session = IscsiSession(portal, lun.iscsi.target, lun.iscsi.lun, initiator, role=role)
    return LunPath(lun, portal, CommandPrDevice(session), session=session)


def plan_paths(luns: list[Lun], initiator: str | None, role: str) -> PathSet:
    """The paths of `luns` for an initiator, not yet connected."""
    paths: PathSet = {}
    for lun in luns:
        if lun.transport is not Transport.ISCSI:
            raise PathSetupError(f"LUN {lun.name}: transport {lun.transport.value} is reached "
                                 "through kernel devices; use the sg transport's discovery")
        if lun.iscsi is None or not initiator:
            raise PathSetupError(f"LUN {lun.name} needs an iscsi location and the node an "
                                 "initiator name")
        paths[lun.name] = [_iscsi_path(lun, str(portal), initiator, role)
                           for portal in lun.iscsi.portals]
    return paths


def connect_paths(paths: PathSet, deadline: Deadline) -> None:
    """Log in every path concurrently; failures mark the path down."""
    flat = [path for lun_paths in paths.values() for path in lun_paths if path.session]

    def login(path: LunPath) -> None:
        assert path.session is not None
        path.session.connect(deadline)

    for path, outcome in zip(flat, map_bounded(login, flat, deadline)):
        path.error = str(outcome) if isinstance(outcome, BaseException) else None


def close_paths(paths: PathSet) -> None:
    for lun_paths in paths.values():
        for path in lun_paths:
            path.close()
