"""Who owns a LUN, and the operations that change it: join, reserve, preempt a peer,
verify, release. Every caller (holder, handlers, agent, vm) goes through here, so every
caller gets arbiter-first ordering and the same verification.

All operations take the node's paths (`PathSet`), its key, a deadline and a clock; they
return reports that say what happened per LUN and per path (storage/reports.py, the values
that cross the holder's socket). They never print or exit."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Callable

from stonewall.clock import Clock, Deadline
from stonewall.config.model import Lun, LunRole
from stonewall.bounded import map_bounded
from stonewall.storage.paths import LunPath, PathKind, PathSet, data_paths
from stonewall.storage.reports import (
    ClaimOutcome, LunCheck, LunFence, PathOutcome, PreemptReport, Report, VerifyReport)
from stonewall.storage.scsi.device import PrDevice
from stonewall.storage.scsi.errors import (
    ReservationConflict, ScsiError, UnsupportedServiceAction)
from stonewall.storage.scsi.batch import run_all
from stonewall.storage.scsi.retry import retrying, run_with_retries
from stonewall.storage.scsi.steps import Blocking, Steps, run_one, steps_of
from stonewall.storage.scsi.types import ReservationType
from stonewall.storage.view import LunView, PathView


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# -- reading ----------------------------------------------------------------------------------
def _read_path_steps(path: LunPath, deadline: Deadline, clock: Clock, log_in: bool,
                     reservation: bool) -> Steps[PathView]:
    """read_path as an operation (storage/scsi/steps.py), for a batch."""
    if log_in and path.session is not None and not path.session.connected:
        try:
            yield Blocking(path.session.connect)
            path.error = None
        except ScsiError as exc:
            path.mark_down(str(exc))
    if not path.up:
        return PathView(path.name, None, None, path.error or "down")
    assert path.device is not None
    commands = steps_of(path.device)
    try:
        keys = yield from retrying(commands.read_keys, deadline, clock)
        held = ((yield from retrying(commands.read_reservation, deadline, clock))
                if reservation else None)
    except ScsiError as exc:
        return PathView(path.name, None, None, _describe(exc))
    return PathView(path.name, keys.keys, held)


def read_path(path: LunPath, deadline: Deadline, clock: Clock, log_in: bool = False,
              reservation: bool = True) -> PathView:
    """READ KEYS (and READ RESERVATION unless `reservation` is False: verifying a key needs
    only the keys) through one path; PR IN needs no registration.
    `log_in`: a reader's fresh session logs in first, inside this path's own work, so a path
    that hangs at login costs only itself (never for a holder's registered sessions)."""
    return run_one(_read_path_steps(path, deadline, clock, log_in, reservation), deadline)


def read_views(paths: PathSet, deadline: Deadline, clock: Clock, log_in: bool = False,
               reservation: bool = True) -> dict[str, LunView]:
    """Every path of every LUN read in one batch (storage/scsi/batch.py); a path that does
    not answer is down. `log_in` and `reservation` as in read_path."""
    flat = [(lun, path) for lun, lun_paths in paths.items() for path in lun_paths]
    answers = run_all([_read_path_steps(path, deadline, clock, log_in, reservation)
                       for _lun, path in flat], deadline)
    views: dict[str, list[PathView]] = {lun: [] for lun in paths}
    for (lun, path), answer in zip(flat, answers):
        if isinstance(answer, BaseException):
            answer = PathView(path.name, None, None, _describe(answer))
        views[lun].append(answer)
    return {lun: LunView(lun, tuple(found)) for lun, found in views.items()}


def _lun_keys_steps(lun_paths: list[LunPath], deadline: Deadline,
                    clock: Clock) -> Steps[LunView]:
    """The LUN's registered keys read through one path, the next only when a path does not
    answer. One answer covers the LUN: READ KEYS lists every key registered with the device
    server, whichever I_T nexus registered it (SPC-4 6.16.2; on tgtd each path lists the
    registrations of both paths' nexuses, as `status --paths` shows). Deciding whether to preempt needs only that;
    the proof afterwards (`verify`) still reads every path."""
    answers: list[PathView] = []
    for path in _control_first(lun_paths):
        answer = yield from _read_path_steps(path, deadline, clock, False, False)
        answers.append(answer)
        if answer.up:
            break
    return LunView(lun_paths[0].lun.name if lun_paths else "?", tuple(answers))


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
    """Take `rtype` on one LUN through a registered path."""
    return _on_a_registered_path(lun_paths, lambda dev, d: dev.reserve(key, rtype, d),
                                 f"reserved {rtype.short}", deadline, clock)


def unregister_paths(lun_paths: list[LunPath], key: int, deadline: Deadline,
                     clock: Clock) -> Report:
    """REGISTER with service action key 0 on every path that carries our registration: the
    nexus is unregistered (SPC-4 5.14.11.2.3; under an all-registrants type the reservation
    goes with the last registrant). A path that fails keeps `registered` and is reported."""
    report = Report()
    chosen = [p for p in lun_paths if p.registered]

    def unregister(path: LunPath) -> None:
        assert path.device is not None
        run_with_retries(lambda d: path.device.register(  # type: ignore[union-attr]
            key, 0, d), deadline, clock)
        path.registered = False

    for path, result in zip(chosen, map_bounded(unregister, chosen, deadline)):
        failed = isinstance(result, BaseException)
        report.outcomes.append(PathOutcome(path.lun.name, path.name, not failed,
                                           _describe(result) if failed else "unregistered"))
    return report


def probe_registration(path: LunPath, key: int, deadline: Deadline, clock: Clock) -> bool:
    """Whether this very nexus carries `key`: REGISTER with `key` as both keys changes nothing
    on a nexus registered with it and is refused (RESERVATION CONFLICT) on any other, so it
    can never bring a preempted key back. READ KEYS cannot tell: its list is LUN-wide.
    Raises ScsiError when the path does not answer."""
    assert path.device is not None
    device = path.device
    try:
        run_with_retries(lambda d: device.register(key, key, d), deadline, clock)
    except ReservationConflict:
        return False
    return True


def claim_lun(lun_paths: list[LunPath], lun: Lun, key: int, deadline: Deadline,
              clock: Clock, *, handing_over: int | None = None) -> ClaimOutcome:
    """Make this node the guest LUN's one registrant: refuse while another key is registered
    (its guest runs, or may run, there), register on every path that answers (at least one
    data path), reserve `lun.reservation` where no reservation is held, and read the keys
    back. Two nodes claiming at once both see the other's key afterwards and both withdraw:
    neither starts the guest.

    `handing_over`: the key of a migration's source, which may stay registered (it
    unregisters once this claim is read back; the all-registrants reservation it holds stays
    in place meanwhile, so the LUN is never without one). Any other key still refuses."""
    allowed = {key} | ({handing_over} if handing_over is not None else set())
    before = read_views({lun.name: lun_paths}, deadline, clock)[lun.name]
    if not before.reachable:
        return ClaimOutcome(lun.name, False, "no path answered (cannot tell who owns it)")
    others = _other_keys(before, key)
    if set(others) - allowed:
        return ClaimOutcome(lun.name, False, "registered by another node", others)
    registered = register_paths({lun.name: lun_paths}, key, deadline, clock)
    writable = [p for p in lun_paths if p.registered and (
        p.kind is PathKind.DATA or not data_paths(lun_paths))]
    if not writable:
        # Not one nexus the guest writes through carries our key: nothing to start on. A
        # path that is down is left (the service registers it when it comes back).
        withdrawn = unregister_paths(lun_paths, key, deadline, clock)
        return ClaimOutcome(lun.name, False, "could not register on a data path: " + "; ".join(
            f"{o.path}: {o.detail}" for o in registered.failures()), registered=withdrawn)
    after = read_views({lun.name: lun_paths}, deadline, clock)[lun.name]
    others = _other_keys(after, key)
    if set(others) - allowed or not after.reachable:
        withdrawn = unregister_paths(lun_paths, key, deadline, clock)
        why = "another node registered at the same time" if others else "no path answered"
        return ClaimOutcome(lun.name, False, why, others, withdrawn)
    held = after.reservation()
    if held is None or held.holder is None:
        reserved = reserve_lun(lun_paths, key, lun.reservation, deadline, clock)
        if not reserved.ok:
            withdrawn = unregister_paths(lun_paths, key, deadline, clock)
            return ClaimOutcome(lun.name, False, reserved.detail, registered=withdrawn)
    down = [o.path for o in registered.failures()]
    return ClaimOutcome(lun.name, True, f"registered on {len(registered.outcomes) - len(down)} "
                        f"path(s), {lun.reservation.short}"
                        + (f"; not on {', '.join(down)} (down)" if down else ""),
                        registered=registered)


def release_guest_lun(lun_paths: list[LunPath], lun: Lun, key: int, deadline: Deadline,
                      clock: Clock) -> ClaimOutcome:
    """Unregister this node from a guest LUN (only once its guest is known to be off), then
    read the keys back: our key still there, or no answer, is a failure."""
    for path in lun_paths:  # a holder restarted since the claim knows no flags: ask the SAN
        if path.up and not path.registered:
            path.registered = _answers_registered(path, key, deadline, clock)
    report = unregister_paths(lun_paths, key, deadline, clock)
    after = read_views({lun.name: lun_paths}, deadline, clock)[lun.name]
    gone = after.absent_everywhere(key)
    if gone is True:
        return ClaimOutcome(lun.name, True, "unregistered", _other_keys(after, key), report)
    why = "our key is still registered" if gone is False else "no path answered the read-back"
    return ClaimOutcome(lun.name, False, why, _other_keys(after, key), report)


class AdoptResult(str, Enum):
    REGISTERED = "registered"  # it carries our key, and another nexus or the count vouches
    NOT_OURS = "not ours"  # we hold no registration on this LUN: nothing to carry over
    PREEMPTED = "preempted meanwhile"  # our old registrations are gone: unregistered again
    CANNOT_TELL = "cannot tell"  # the evidence could not be read: unregistered, to be safe
    FAILED = "failed"  # the REGISTER itself failed


def adopt_path(new: LunPath, lun_paths: list[LunPath], key: int, deadline: Deadline,
               clock: Clock, *, lapsed: bool = False) -> AdoptResult:
    """Register a path that appeared while we own the LUN, or (`lapsed`) a nexus of ours that
    lost its registration when it reconnected, before it carries I/O (DESIGN section 3).

    No atomic "register only if my key is still there" exists, so a PREEMPT may land between
    our last look and this REGISTER. Two pieces of evidence, read after the REGISTER:
    - another nexus of ours still carries the key (probed nexus by nexus);
    - else, the LUN-wide count: READ KEYS lists one entry per registered nexus, and a
      PREEMPT (or CLEAR) removes every entry of the key, also those of lapsed nexuses (tgtd
      ties a registration to its session: a re-login is a new nexus, and the old entry
      lingers until then). Counted before our REGISTER (no entry: we were preempted, and
      nothing is registered), it must be exactly one more afterwards; fewer means a PREEMPT
      came in between. This also covers old nexuses that lapsed themselves, which refuse the
      probe without our key being gone.
    Anything else withdraws the new registration at once (the caller self-fences on
    PREEMPTED). A nexus that already carries the key (a real array keeps a reconnected
    initiator port's registration; multipathd may register a new path itself) adds no entry,
    so there only another nexus's registration can vouch for it."""
    old = [p for p in lun_paths if p is not new and p.registered and p.up]
    if not new.up or new.device is None or not (old or lapsed):
        return AdoptResult.NOT_OURS
    device = new.device
    try:
        carried_already = probe_registration(new, key, deadline, clock)
        before = _count_key(new, key, deadline, clock)
    except ScsiError:
        return AdoptResult.CANNOT_TELL
    if before == 0:  # no registration of our key is left anywhere on the LUN
        return AdoptResult.PREEMPTED
    if not carried_already:
        try:
            run_with_retries(lambda d: device.register(0, key, d, ignore_existing=True),
                             deadline, clock)
        except ScsiError:
            return AdoptResult.FAILED
    new.registered = True
    if _carried_elsewhere(old, key, deadline, clock):
        return AdoptResult.REGISTERED
    if carried_already:
        result = AdoptResult.REGISTERED if not old else AdoptResult.CANNOT_TELL
    else:
        result = _grew_by_one(new, key, before, deadline, clock)
    if result is not AdoptResult.REGISTERED:
        unregister_paths([new], key, deadline, clock)
    return result


def _carried_elsewhere(old: list[LunPath], key: int, deadline: Deadline,
                       clock: Clock) -> bool:
    """Whether one of the `old` nexuses still carries `key` (a refusal proves nothing: that
    nexus may have lapsed itself)."""
    for path in old:
        try:
            if probe_registration(path, key, deadline, clock):
                return True
        except ScsiError:
            continue
    return False


def _grew_by_one(path: LunPath, key: int, before: int, deadline: Deadline,
                 clock: Clock) -> AdoptResult:
    """REGISTERED when READ KEYS lists `key` once more than `before` (see adopt_path)."""
    try:
        after = _count_key(path, key, deadline, clock)
    except ScsiError:
        return AdoptResult.CANNOT_TELL
    if after == before + 1:
        return AdoptResult.REGISTERED
    return AdoptResult.PREEMPTED if after <= before else AdoptResult.CANNOT_TELL


def _count_key(path: LunPath, key: int, deadline: Deadline, clock: Clock) -> int:
    """How many registrations of `key` READ KEYS lists on the LUN (one per I_T nexus)."""
    assert path.device is not None
    device = path.device
    return run_with_retries(device.read_keys, deadline, clock).keys.count(key)


def _answers_registered(path: LunPath, key: int, deadline: Deadline, clock: Clock) -> bool:
    try:
        return probe_registration(path, key, deadline, clock)
    except ScsiError:
        return False


def _other_keys(view: LunView, key: int) -> tuple[int, ...]:
    return tuple(dict.fromkeys(k for p in view.up_paths for k in (p.keys or ()) if k != key))


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
    lets only one of two racing nodes win there), then the rest in one batch (every LUN's
    read and PREEMPT on one poll loop, storage/scsi/batch.py). Preempting an absent key is
    skipped (idempotent). A conflict that proves our own key gone stops it all."""
    report = PreemptReport()
    arbiters = [lun for lun in luns if lun.role is LunRole.ARBITER]
    others = [lun for lun in luns if lun.role is not LunRole.ARBITER]
    for lun in arbiters:
        try:
            report.luns.append(run_one(_preempt_lun(paths[lun.name], lun, my_key, victim_key,
                                                    deadline, clock, abort_support), deadline))
        except LostRegistration as exc:
            report.lost_race, report.lost_detail = True, str(exc)
            return report
    proven_live = (any(lun.role is LunRole.GUEST for lun in others)
                   and _own_key_live(paths, arbiters, report, my_key, deadline, clock))
    results = run_all([_preempt_lun(paths[lun.name], lun, my_key, victim_key, deadline, clock,
                                    abort_support, register_first=proven_live)
                       for lun in others], deadline)
    for lun, result in zip(others, results):
        if isinstance(result, LostRegistration):
            report.lost_race, report.lost_detail = True, str(result)
        elif isinstance(result, BaseException):
            report.luns.append(LunFence(lun.name, "failed", "-", False, _describe(result)))
        else:
            report.luns.append(result)
    return report


def _own_key_live(paths: PathSet, arbiters: list[Lun], report: PreemptReport, my_key: int,
                  deadline: Deadline, clock: Clock) -> bool:
    """Registering on a guest LUN to fence there is safe only with our own key proven live
    first: an arbiter accepted our PREEMPT just now, or one of its nexuses still carries our
    key (a node fenced meanwhile has none left: it loses there and never registers)."""
    if any(f.ok and f.action.startswith("preempt") for f in report.luns):
        return True
    for lun in arbiters:
        for path in paths[lun.name]:
            if path.up and path.registered:
                try:
                    return probe_registration(path, my_key, deadline, clock)
                except ScsiError:
                    continue
    return False


def _preempt_lun(lun_paths: list[LunPath], lun: Lun, my_key: int, victim_key: int,
                 deadline: Deadline, clock: Clock, abort_support: AbortSupport,
                 register_first: bool = False) -> Steps[LunFence]:
    """One LUN's preempt, as an operation (storage/scsi/steps.py). Its outcome says whether
    the first READ KEYS found the victim's key: the takeover's evidence of which guests the
    victim ran (holder/fence_records.py)."""
    view = yield from _lun_keys_steps(lun_paths, deadline, clock)
    absent = view.absent_everywhere(victim_key)
    outcome = yield from _preempt_seen(lun_paths, lun, view, my_key, victim_key, deadline,
                                       clock, abort_support, register_first)
    return replace(outcome, found=None if absent is None else not absent)


def _preempt_seen(lun_paths: list[LunPath], lun: Lun, view: LunView, my_key: int,
                  victim_key: int, deadline: Deadline, clock: Clock,
                  abort_support: AbortSupport, register_first: bool) -> Steps[LunFence]:
    """The preempt of one LUN whose keys were read (`view`)."""
    if view.absent_everywhere(victim_key):
        return LunFence(lun.name, "already absent", "-", True)
    last = "no registered path is up"
    if lun.role is LunRole.GUEST and not any(p.registered for p in lun_paths):
        # Only a registered nexus may PREEMPT (SPC-4 5.14.11.4): the fencer joins the guest
        # LUN first and stays registered, so its all-registrants reservation outlives the
        # victim's key and the victim's stale guest stays refused (DESIGN section 3).
        if not register_first:
            return LunFence(lun.name, "failed", "-", False, "not registered on this guest LUN "
                            "and no arbiter LUN proved our own key live: not registering")
        joined = yield Blocking(lambda d: _register_to_fence(lun_paths, lun, my_key, d, clock))
        if joined is not None:
            return joined
    for path in _control_first(lun_paths):
        if not (path.up and path.registered and path.device is not None):
            continue
        try:
            preempt_all = _preempt_all_instead(lun, view, my_key, victim_key)
            action = yield from _preempt_through(path, lun, my_key, victim_key, deadline,
                                                 clock, abort_support, preempt_all)
            if preempt_all:
                return (yield Blocking(lambda d, through=path, done=action:
                                       _register_siblings_again(lun_paths, through, lun, done,
                                                                my_key, d, clock)))
            return LunFence(lun.name, action, path.name, True)
        except ReservationConflict as exc:
            # Either our nexus lost its registration, or the victim's key vanished meanwhile
            # (another fencer won first): the SAN's keys tell which.
            last = _describe(exc)
            after = yield from _lun_keys_steps(lun_paths, deadline, clock)
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


def _register_to_fence(lun_paths: list[LunPath], lun: Lun, my_key: int, deadline: Deadline,
                       clock: Clock) -> LunFence | None:
    """Register our control paths (else our data paths) on a guest LUN; a LunFence when
    that failed, None when at least one nexus now carries our key."""
    control = [p for p in lun_paths if p.kind is PathKind.CONTROL]
    report = register_paths({lun.name: control or data_paths(lun_paths)}, my_key, deadline,
                            clock)
    if any(p.registered for p in lun_paths):
        return None
    return LunFence(lun.name, "failed", "-", False, "could not register to fence: " + "; ".join(
        f"{o.path}: {o.detail}" for o in report.failures()))


def _preempt_all_instead(lun: Lun, view: LunView, my_key: int, victim_key: int) -> bool:
    """Preempt with service action key 0 on an all-registrants LUN that only we and the
    victim are registered on: it removes exactly the victim's registrations (and our own
    other nexuses', which _register_siblings_again restores) and makes the preempting nexus
    the reservation holder (SPC-4 5.14.11.4.3). The targeted form (key = victim) would do the
    same on an array that follows the standard, but tgtd 1.0.85 frees the victim's
    registrations without moving its reservation holder (usr/spc.c spc_pr_preempt): when the
    victim sent the RESERVE, the holder dangles, READ RESERVATION reports garbage (type 15,
    measured) and a later unregister drops the reservation, letting unregistered nodes
    write (measured)."""
    if not lun.reservation.all_registrants:
        return False
    keys = {key for p in view.up_paths for key in (p.keys or ())}
    return bool(keys) and keys <= {my_key, victim_key}


def _register_siblings_again(lun_paths: list[LunPath], preempted_through: LunPath, lun: Lun,
                             action: str, my_key: int, deadline: Deadline,
                             clock: Clock) -> LunFence:
    """After a PREEMPT with key 0 our other nexuses lost their registration too; our key is
    proven live (the PREEMPT through `preempted_through` was accepted), so they register
    again at once."""
    siblings = [p for p in lun_paths if p is not preempted_through and p.registered]
    for path in siblings:
        path.registered = False
    report = register_paths({lun.name: siblings}, my_key, deadline, clock)
    detail = "; ".join(f"{o.path}: {o.detail}" for o in report.failures())
    return LunFence(lun.name, action, preempted_through.name, True,
                    f"own paths not registered again: {detail}" if detail else "")


def _control_first(lun_paths: list[LunPath]) -> list[LunPath]:
    """Control paths before data paths: PREEMPT needs any registered nexus, and the
    service's own sessions answer without a process per command."""
    return sorted(lun_paths, key=lambda p: p.kind is not PathKind.CONTROL)


def _preempt_through(path: LunPath, lun: Lun, my_key: int, victim_key: int,
                     deadline: Deadline, clock: Clock, abort_support: AbortSupport,
                     preempt_all: bool = False) -> Steps[str]:
    """PREEMPT (AND ABORT where the target has it) `victim_key` through `path`; with
    `preempt_all` the service action key is 0 (see _preempt_all_instead)."""
    sark = 0 if preempt_all else victim_key
    assert path.device is not None
    commands = steps_of(path.device)
    if abort_support.try_abort(lun.name):
        try:
            yield from retrying(lambda: commands.preempt(my_key, sark, lun.reservation,
                                                         abort=True), deadline, clock)
            return "preempt-and-abort"
        except UnsupportedServiceAction:
            abort_support.unsupported(lun.name)  # tgtd and some arrays: plain PREEMPT
    yield from retrying(lambda: commands.preempt(my_key, sark, lun.reservation),
                        deadline, clock)
    return "preempt"


# -- verifying --------------------------------------------------------------------------------
@dataclass
class OwnCheck:
    """verify_own's answer: the verdict per LUN, and the data paths that answered "not
    registered" on a LUN whose other nexuses still carry our key (a path that came back as
    a new nexus, as tgtd makes every re-login: register it again through adopt_path)."""

    report: VerifyReport
    lapsed: list[LunPath] = field(default_factory=list)


def verify_own(paths: PathSet, key: int, deadline: Deadline, clock: Clock) -> OwnCheck:
    """Our own key as our writes see it (DESIGN section 5): on a LUN with data paths that we
    registered, each of those nexuses is probed itself (READ KEYS is LUN-wide and would
    still list the key of our control path); elsewhere READ KEYS must list it on every
    path that answers. A LUN is lost when no probed nexus carries the key any more."""
    probed = {lun: [p for p in data_paths(ps) if p.registered and p.up]
              for lun, ps in paths.items()}
    read = {lun: ps for lun, ps in paths.items() if not probed[lun]}
    checks = list(verify(read, key, True, deadline, clock).checks) if read else []
    lapsed: list[LunPath] = []
    flat = [p for ps in probed.values() for p in ps]
    answers = map_bounded(lambda p: probe_registration(p, key, deadline, clock), flat,
                          deadline)
    said = dict(zip(map(id, flat), answers))
    for lun, lun_paths in probed.items():
        if not lun_paths:
            continue
        carried = [p for p in lun_paths if said[id(p)] is True]
        refused = [p for p in lun_paths if said[id(p)] is False]
        down = tuple(p.name for p in data_paths(paths[lun])
                     if p not in carried and p not in refused)
        verdict = True if carried else (False if refused else None)
        if carried:
            lapsed += refused
        checks.append(LunCheck(lun, verdict, len(carried) + len(refused), down))
    return OwnCheck(VerifyReport(tuple(paths), tuple(checks)), lapsed)


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
