"""The paths (I_T nexuses) through which a node reaches its LUNs.

Two kinds (DESIGN sections 1 and 3):
- data paths, for the `sg` transport: the kernel's path devices of the LUN's WWID (found in
  sysfs), one PR device each. The kernel holds those nexuses between processes, and the
  node's guests (or DRBD) write through them, so that is where ownership is proven. A path
  the kernel reports down is kept, marked down.
- control paths, for an `iscsi:` location: one libiscsi session per configured portal,
  logged in with the node's initiator name. They PREEMPT, READ KEYS and settle fence races
  quickly; no guest writes through them. A path that cannot be opened is kept, marked down.

An `sg` LUN has data paths and, when it also names an `iscsi:` location, control paths; an
`iscsi` LUN has control paths only. Each data-path command is an ioctl(SG_IO) from this
process, or (LUN `sg_backend: sg_persist`) an `sg_persist` run."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from stonewall.clock import Deadline
from stonewall.config.model import Lun, Paths, SgBackend, Transport
from stonewall.storage.multipath import resolve
from stonewall.storage.multipath.errors import MultipathError
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.multipath.types import Discovery, PathDevice, PathState
from stonewall.storage.path_errors import PathSetupError
from stonewall.bounded import map_bounded
from stonewall.storage.scsi.commands import CommandPrDevice
from stonewall.storage.scsi.device import PrDevice
from stonewall.storage.scsi.errors import ScsiError
from stonewall.storage.scsi.iscsi import IscsiSession
from stonewall.storage.scsi.sg import SgPersistDevice, SgRunner
from stonewall.storage.scsi.sgio import SgioDevice


class PathKind(str, Enum):
    DATA = "data"  # a kernel path device: guests write through it
    CONTROL = "control"  # the service's own session: never carries guest data


@dataclass
class LunPath:
    """One path of one LUN. `device` is None while the path is down (`error` says why)."""

    lun: Lun
    name: str
    device: PrDevice | None
    error: str | None = None
    registered: bool = False  # this nexus carries our registration (the holder knows)
    session: IscsiSession | None = None
    kind: PathKind = PathKind.CONTROL

    @property
    def up(self) -> bool:
        return self.device is not None and self.error is None

    def mark_down(self, reason: str) -> None:
        self.error = reason

    def reconnect(self, deadline: Deadline) -> bool:
        """A new session for a control path, with the same initiator port identity; False
        (and the path marked down) when it cannot log in."""
        assert self.session is not None, "only a control path has a session to reconnect"
        try:
            self.session.reconnect(deadline)
        except ScsiError as exc:
            self.mark_down(str(exc))
            return False
        self.error = None
        return True

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        if isinstance(self.device, SgioDevice):
            self.device.close()  # its path device's fd


PathSet = dict[str, list[LunPath]]  # LUN name -> its paths


@dataclass(frozen=True)
class KernelRoots:
    """Where the sg transport finds sysfs and the device nodes (config `paths.sysfs` and
    `paths.dev`: the host's /sys and /dev unless a test host tree is configured)."""

    sysfs: str = "/sys"
    dev: str = "/dev"

    @classmethod
    def of(cls, paths: Paths) -> "KernelRoots":
        return cls(paths.sysfs, paths.dev)

    def discover(self) -> Discovery:
        return discover_sysfs(self.sysfs)


def _iscsi_path(lun: Lun, portal: str, initiator: str, role: str) -> LunPath:
    assert lun.iscsi is not None
    session = IscsiSession(portal, lun.iscsi.target, lun.iscsi.lun, initiator, role=role)
    return LunPath(lun, portal, CommandPrDevice(session), session=session)


def _down_reason(device: PathDevice) -> str:
    facts = [f"{what} {value}" for what, value in (
        ("device state", device.device_state), ("dm", device.dm_state),
        ("checker", device.checker_state)) if value]
    return f"{device.name} is down ({', '.join(facts)})"


def _sg_paths(lun: Lun, discovery: Discovery, runner: SgRunner, dev_root: str) -> list[LunPath]:
    try:
        found = resolve.resolve_lun_paths(lun, discovery, dev_root=dev_root)
    except MultipathError as exc:
        raise PathSetupError(f"{exc} (looked in {discovery.source})") from exc
    if not found.paths:
        raise PathSetupError(f"LUN {lun.name}: map {found.map_device} has no path device "
                             f"(looked in {discovery.source})")
    paths = []
    for found_path in found.paths:
        device: PrDevice = (SgioDevice(found_path.device) if lun.sg_backend is SgBackend.SGIO
                            else SgPersistDevice(found_path.device, runner))
        path = LunPath(lun, found_path.device, device, kind=PathKind.DATA)
        # UNKNOWN stays up: sysfs always knows the state, and a path that does not answer
        # is reported down by the command that tried it.
        if found_path.state is PathState.DOWN:
            path.mark_down(_down_reason(found_path.path))
        paths.append(path)
    return paths


def plan_paths(luns: list[Lun], initiator: str | None, role: str, *,
               discovery: Callable[[], Discovery] | None = None,
               runner: SgRunner | None = None, dev_root: str = "/dev") -> PathSet:
    """The paths of `luns` for an initiator, not yet connected: data paths first, then
    control paths.

    sg LUNs are looked up in `discovery()` (called once, only if an sg LUN is planned;
    default: sysfs at /sys), their devices under `dev_root`, run by `runner` (default:
    sg3_utils with this process's environment). Control paths need `initiator`. Raises
    PathSetupError for a LUN that cannot have paths (no location, not found on this host)."""
    discovered = functools.cache(discovery or KernelRoots().discover)
    sg_runner = runner or SgRunner()
    paths: PathSet = {}
    for lun in luns:
        paths[lun.name] = []
        if lun.transport is Transport.SG:
            try:
                found = discovered()
            except MultipathError as exc:
                raise PathSetupError(f"LUN {lun.name}: {exc}") from exc
            paths[lun.name] += _sg_paths(lun, found, sg_runner, dev_root)
        if lun.iscsi is not None:
            if not initiator:
                raise PathSetupError(f"LUN {lun.name}: its control path needs the node's "
                                     "initiator name")
            paths[lun.name] += [_iscsi_path(lun, str(portal), initiator, role)
                                for portal in lun.iscsi.portals]
        elif lun.transport is Transport.ISCSI:
            raise PathSetupError(f"LUN {lun.name} needs an iscsi location and the node an "
                                 "initiator name")
    return paths


def new_data_paths(lun: Lun, known: list[LunPath], discovery: Discovery,
                   dev_root: str) -> list[LunPath]:
    """The kernel path devices of `lun` that `known` does not hold yet (a path that came
    up, or came back under a new name). Raises PathSetupError like plan_paths."""
    names = {path.name for path in known}
    return [path for path in _sg_paths(lun, discovery, SgRunner(), dev_root)
            if path.name not in names]


def data_paths(lun_paths: list[LunPath]) -> list[LunPath]:
    return [path for path in lun_paths if path.kind is PathKind.DATA]


def connect_paths(paths: PathSet, deadline: Deadline) -> None:
    """Log in every iscsi path concurrently; failures mark the path down. sg paths have
    no session: the kernel holds their nexus."""
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
