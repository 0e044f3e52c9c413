"""Who owns a LUN, and the operations that change it: join, reserve, preempt a peer,
verify, release. Every caller (holder, handlers, agent, vm) goes through here, so every
caller gets arbiter-first ordering and the same verification.

All operations take the node's paths (`PathSet`), its key, a deadline and a clock; they
return reports that say what happened per LUN and per path (storage/reports.py, the values
that cross the holder's socket). They never print or exit."""
from __future__ import annotations

from typing import Callable

from stonewall.clock import Clock, Deadline
from stonewall.config.model import Lun, LunRole
from stonewall.storage.parallel import map_bounded
from stonewall.storage.paths import LunPath, PathSet
from stonewall.storage.reports import (
    LunCheck, LunFence, PathOutcome, PreemptReport, Report, VerifyReport)
from stonewall.storage.scsi.device import PrDevice
from stonewall.storage.scsi.errors import (
    ReservationConflict, ScsiError, UnsupportedServiceAction)
from stonewall.storage.scsi.retry import run_with_retries
from stonewall.storage.scsi.types import ReservationType
from stonewall.storage.view import LunView, PathView


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# -- reading ----------------------------------------------------------------------------------
def read_path(path: LunPath, deadline: Deadline, clock: Clock, log_in: bool = False,
              reservation: bool = True) -> PathView:
    """READ KEYS (and READ RESERVATION unless `reservation` is False: verifying a key needs
    only the keys) through one path; PR IN needs no registration.
    `log_in`: a reader's fresh session logs in first, inside this path's own work, so a path
    that hangs at login costs only itself (never for a holder's registered sessions)."""
    if log_in and path.session is not None and not path.session.connected:
        try:
            path.session.connect(deadline)
            path.error = None
        except ScsiError as exc:
            path.mark_down(str(exc))
    if not path.up:
        return PathView(path.name, None, None, path.error or "down")
    assert path.device is not None
    try:
        keys = run_with_retries(path.device.read_keys, deadline, clock)
        held = (run_with_retries(path.device.read_reservation, deadline, clock)
                if reservation else None)
    except ScsiError as exc:
        return PathView(path.name, None, None, _describe(exc))
    return PathView(path.name, keys.keys, held)


def read_views(paths: PathSet, deadline: Deadline, clock: Clock, log_in: bool = False,
               reservation: bool = True) -> dict[str, LunView]:
    """Every path of every LUN read concurrently; a path that does not answer is down.
    `log_in` and `reservation` as in read_path."""
    flat = [(lun, path) for lun, lun_paths in paths.items() for path in lun_paths]
    answers = map_bounded(lambda item: read_path(item[1], deadline, clock, log_in,
                                                 reservation), flat, deadline)
    views: dict[str, list[PathView]] = {lun: [] for lun in paths}
    for (lun, path), answer in zip(flat, answers):
        if isinstance(answer, BaseException):
            answer = PathView(path.name, None, None, _describe(answer))
        views[lun].append(answer)
    return {lun: LunView(lun, tuple(found)) for lun, found in views.items()}


# -- joining ----------------------------------------------------------------------------------
def register_paths(paths: PathSet, key: int, deadline: Deadline, clock: Clock) -> Report:
    """REGISTER AND IGNORE EXISTING KEY on every path (one registration per I_T nexus;
    tgtd reports no ATP_C, so ALL_TG_PT is used only where REPORT CAPABILITIES offers it)."""
    report = Report()
    flat = [p for lun_paths in paths.values() for p in lun_paths if p.up]
    atp_luns = _luns_with_all_target_ports(paths, deadline, clock)

    def register(path: LunPath) -> str:
        assert path.device is not None
        all_tg_pt = path.lun.name in atp_luns
        if all_tg_pt and any(p.registered for p in paths[path.lun.name]):
            path.registered = True
            return "covered by ALL_TG_PT"
        run_with_retries(lambda d: path.device.register(  # type: ignore[union-attr]
            0, key, d, ignore_existing=True, all_tg_pt=all_tg_pt), deadline, clock)
        path.registered = True
        return "registered (ALL_TG_PT)" if all_tg_pt else "registered"

    # With ALL_TG_PT one registration covers every port: do those LUNs one path at a time.
    for path, result in zip(flat, map_bounded(register, flat, deadline)):
        failed = isinstance(result, BaseException)
        report.outcomes.append(PathOutcome(path.lun.name, path.name, not failed,
                                           _describe(result) if failed else str(result)))
    for lun_paths in paths.values():
        for path in lun_paths:
            if not path.up:
                report.outcomes.append(PathOutcome(path.lun.name, path.name, False,
                                                   f"down: {path.error}"))
    return report


def _luns_with_all_target_ports(paths: PathSet, deadline: Deadline, clock: Clock) -> set[str]:
    found = set()
    for lun, lun_paths in paths.items():
        first = next((p for p in lun_paths if p.up), None)
        if first is None or first.device is None or len(lun_paths) < 2:
            continue
        try:
            if run_with_retries(first.device.report_capabilities, deadline, clock).atp_c:
                found.add(lun)
        except ScsiError:
            continue  # no capabilities: register every path, which is always correct
    return found


def reserve_unreserved(paths: PathSet, key: int, deadline: Deadline, clock: Clock,
                       luns: list[Lun] | None = None) -> Report:
    """Take the configured reservation on LUNs that carry none (arbiter and shared LUNs:
    the fence_scsi model). A LUN already reserved by anyone is left as it is."""
    report = Report()
    chosen = luns if luns is not None else [
        ps[0].lun for ps in paths.values() if ps and ps[0].lun.role is not LunRole.GUEST]
    views = read_views({lun.name: paths[lun.name] for lun in chosen}, deadline, clock)
    for lun in chosen:
        view = views[lun.name]
        current = view.reservation()
        if not view.reachable:
            report.outcomes.append(PathOutcome(lun.name, "-", False, "no path answered"))
            continue
        if current is not None and current.holder is not None:
            report.outcomes.append(PathOutcome(lun.name, "-", True,
                                               f"already reserved by 0x{current.holder:016x}"))
            continue
        report.outcomes.append(reserve_lun(paths[lun.name], key, lun.reservation, deadline,
                                           clock))
    return report


def _on_a_registered_path(lun_paths: list[LunPath],
                          operation: Callable[[PrDevice, Deadline], None], done: str,
                          deadline: Deadline, clock: Clock) -> PathOutcome:
    """Run one PR OUT through the first registered path that carries it (the next path only
    when a path fails to carry it; a RESERVATION CONFLICT is the SAN's answer, final)."""
    last = "no registered path"
    for path in lun_paths:
        if not (path.up and path.registered and path.device is not None):
            continue
        device = path.device
        try:
            run_with_retries(lambda d: operation(device, d), deadline, clock)
            return PathOutcome(path.lun.name, path.name, True, done)
        except ReservationConflict as exc:
            return PathOutcome(path.lun.name, path.name, False, _describe(exc))
        except ScsiError as exc:
            last = _describe(exc)
    return PathOutcome(lun_paths[0].lun.name if lun_paths else "?", "-", False, last)


def reserve_lun(lun_paths: list[LunPath], key: int, rtype: ReservationType,
                deadline: Deadline, clock: Clock) -> PathOutcome:
    """Take `rtype` on one LUN through a registered path (a guest LUN's type 1)."""
    return _on_a_registered_path(lun_paths, lambda dev, d: dev.reserve(key, rtype, d),
                                 f"reserved {rtype.short}", deadline, clock)


def release_lun(lun_paths: list[LunPath], key: int, rtype: ReservationType,
                deadline: Deadline, clock: Clock) -> PathOutcome:
    """RELEASE our reservation of `rtype` on one LUN."""
    return _on_a_registered_path(lun_paths, lambda dev, d: dev.release(key, rtype, d),
                                 "released", deadline, clock)


# -- fencing a peer ---------------------------------------------------------------------------
class LostRegistration(Exception):
    """Our own key is gone: we were preempted (we lost a fence race). Stop; never retry."""


class AbortSupport:
    """What each LUN's target said about PREEMPT AND ABORT, learnt once and remembered."""

    def __init__(self) -> None:
        self._unsupported: set[str] = set()

    def try_abort(self, lun: str) -> bool:
        return lun not in self._unsupported

    def unsupported(self, lun: str) -> None:
        self._unsupported.add(lun)


def preempt_peer(paths: PathSet, luns: list[Lun], my_key: int, victim_key: int,
                 deadline: Deadline, clock: Clock, abort_support: AbortSupport) -> PreemptReport:
    """Remove `victim_key` from `luns`: arbiter LUNs first, one by one in `order` (the SAN
    lets only one of two racing nodes win there), then the rest concurrently. Preempting an
    absent key is skipped (idempotent). A conflict that proves our own key gone stops it all."""
    report = PreemptReport()
    arbiters = [lun for lun in luns if lun.role is LunRole.ARBITER]
    others = [lun for lun in luns if lun.role is not LunRole.ARBITER]
    for lun in arbiters:
        try:
            report.luns.append(_preempt_lun(paths[lun.name], lun, my_key, victim_key, deadline,
                                            clock, abort_support))
        except LostRegistration as exc:
            report.lost_race, report.lost_detail = True, str(exc)
            return report
    results = map_bounded(lambda lun: _preempt_lun(paths[lun.name], lun, my_key, victim_key,
                                                   deadline, clock, abort_support),
                          others, deadline)
    for lun, result in zip(others, results):
        if isinstance(result, LostRegistration):
            report.lost_race, report.lost_detail = True, str(result)
        elif isinstance(result, BaseException):
            report.luns.append(LunFence(lun.name, "failed", "-", False, _describe(result)))
        else:
            report.luns.append(result)
    return report


def _preempt_lun(lun_paths: list[LunPath], lun: Lun, my_key: int, victim_key: int,
                 deadline: Deadline, clock: Clock, abort_support: AbortSupport) -> LunFence:
    view = read_views({lun.name: lun_paths}, deadline, clock, reservation=False)[lun.name]
    if view.absent_everywhere(victim_key):
        return LunFence(lun.name, "already absent", "-", True)
    last = "no registered path is up"
    conflicts = 0
    for path in lun_paths:
        if not (path.up and path.registered and path.device is not None):
            continue
        try:
            action = _preempt_through(path, lun, my_key, victim_key, deadline, clock,
                                      abort_support)
            return LunFence(lun.name, action, path.name, True)
        except ReservationConflict as exc:
            # Either our nexus lost its registration, or the victim's key vanished meanwhile
            # (another fencer won first): the SAN's keys tell which.
            conflicts += 1
            last = _describe(exc)
            after = read_views({lun.name: lun_paths}, deadline, clock,
                               reservation=False)[lun.name]
            if after.absent_everywhere(victim_key):
                return LunFence(lun.name, "already absent", path.name, True,
                                "removed by another fencer")
            if after.absent_everywhere(my_key):
                raise LostRegistration(f"LUN {lun.name}: our key 0x{my_key:016x} is gone "
                                       f"(RESERVATION CONFLICT via {path.name})") from exc
            path.registered = False  # this nexus is not registered (e.g. a new session)
        except ScsiError as exc:
            last = _describe(exc)
    return LunFence(lun.name, "failed", "-", False, last)


def _preempt_through(path: LunPath, lun: Lun, my_key: int, victim_key: int,
                     deadline: Deadline, clock: Clock, abort_support: AbortSupport) -> str:
    device = path.device
    assert device is not None
    if abort_support.try_abort(lun.name):
        try:
            run_with_retries(lambda d: device.preempt(my_key, victim_key, lun.reservation, d,
                                                      abort=True), deadline, clock)
            return "preempt-and-abort"
        except UnsupportedServiceAction:
            abort_support.unsupported(lun.name)  # tgtd and some arrays: plain PREEMPT
    run_with_retries(lambda d: device.preempt(my_key, victim_key, lun.reservation, d),
                     deadline, clock)
    return "preempt"


# -- verifying --------------------------------------------------------------------------------
def verify(paths: PathSet, key: int, present: bool, deadline: Deadline,
           clock: Clock) -> VerifyReport:
    """Check that `key` is present (or absent) on every reachable path of every LUN."""
    checks = []
    for lun, view in read_views(paths, deadline, clock, reservation=False).items():
        verdict = (view.registered_everywhere(key) if present
                   else view.absent_everywhere(key))
        down = tuple(p.path for p in view.paths if not p.up)
        checks.append(LunCheck(lun, verdict, len(view.up_paths), down))
    return VerifyReport(tuple(paths), tuple(checks))
