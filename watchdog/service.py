"""`stonewall watchdog run` as decision wiring: the node's holder (DESIGN 8) proves
ownership for the self-fencing loop (loop.py), libvirt stops the guests, and the holder's
socket serves the other entry points from the same sessions.

Every outside system comes in as a parameter (holder, device, guests, notifier, clock), so
the lab and the tests run exactly this code against tgtd, the stand-in and libvirt's test
driver. Start-up follows DESIGN 3 and 5: join only when this boot may, arm only after a good
check, and serve the holder socket only once ownership is proven and the watchdog armed.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.model import ClusterConfig
from stonewall.holder.node import NodeHolder
from stonewall.holder.client import socket_path
from stonewall.holder.server import HolderServer
from stonewall.storage.bootid import FencedBoot
from stonewall.storage.ownership import VerifyReport
from stonewall.watchdog.device import WatchdogDevice
from stonewall.watchdog.errors import (
    DisarmFailed, KeyNotRegistered, OwnershipUnverified, StopRefused, WatchdogError)
from stonewall.watchdog.guests import LocalGuests
from stonewall.watchdog.loop import CheckOutcome, CheckResult, OwnershipWatchdog
from stonewall.watchdog.snapshot import status_path, write_snapshot
from stonewall.watchdog.systemd import ServiceNotifier
from stonewall.config.timing import t_safe

START_SECONDS = 10.0  # logging in every path, and joining, at start-up
STOP_JOIN_SECONDS = 5.0  # the loop's threads get this long to end after a clean stop


class ServiceExit(IntEnum):
    """Exit status of `stonewall watchdog run` (docs/watchdog.md; the unit's
    RestartPreventExitStatus= names 2 and 3)."""

    CLEAN_STOP = 0  # disarmed with the magic close, no guest depended on the LUNs
    UNEXPECTED = 1
    REFUSED = 2  # configuration or watchdog device refused
    FENCED = 3  # this node was fenced in this boot: nothing armed, nothing registered
    UNVERIFIED = 4  # ownership could not be proven at start (storage unreachable)


def check_result(report: VerifyReport) -> CheckResult:
    """The loop's answer for a verification of our own key (NodeHolder.check_own).

    A LUN whose verdict is False had a path that answered READ KEYS without our key (SPC-4
    READ KEYS lists every key registered on the logical unit, whatever nexus asks), or every
    data-path nexus that answered refused our key: the writes of our guests are refused
    there, so FENCED is certain, not a guess from a flaky path. A LUN no path answered for
    leaves it open: UNREACHABLE."""
    gone = [check.lun for check in report.checks if check.verdict is False]
    if gone:
        return CheckResult(CheckOutcome.FENCED, f"own key missing on {', '.join(gone)}")
    silent = [lun for lun in report.luns
              if (check := report.check(lun)) is None or check.verdict is None]
    if silent or not report.luns:
        return CheckResult(CheckOutcome.UNREACHABLE,
                           f"no path answered for {', '.join(silent) or 'any LUN'}")
    down = [f"{check.lun} via {path}" for check in report.checks for path in check.paths_down]
    return CheckResult(CheckOutcome.OWNED, f"paths down: {', '.join(down)}" if down else "")


class HolderOwnershipCheck:
    """The loop's `check(deadline)`: our key on the LUNs we hold, as our data path sees it
    (arbiters and shared LUNs, and the guest LUNs claimed here). A FENCED answer is written to the boot record at once, so no
    later start in this boot joins again (DESIGN 3), even if the reset comes first."""

    def __init__(self, holder: NodeHolder, log: logging.Logger) -> None:
        self.holder = holder
        self.log = log

    def __call__(self, deadline: Deadline) -> CheckResult:
        # Dropped sessions come back with the same identity; one that lost its registration
        # is registered again only where adopt_path proves our key still there.
        for line in self.holder.refresh(deadline.earlier(deadline.remaining() / 2)):
            self.log.warning("%s", line)
        report, lines = self.holder.check_own(deadline)
        for line in lines:
            self.log.warning("%s", line)
        result = check_result(report)
        if result.outcome is CheckOutcome.FENCED:
            self.holder.boot_records.mark_fenced()
        return result


class WatchdogService:
    """One run of the service: start (join, prove, arm, serve), supervise until a clean stop
    is possible, and never return while self-fencing (the reset ends the process)."""

    def __init__(self, config: ClusterConfig, holder: NodeHolder, device: WatchdogDevice,
                 guests: LocalGuests, *, notifier: ServiceNotifier | None,
                 announce_ready: Callable[[], None], clock: Clock = SYSTEM_CLOCK,
                 log: logging.Logger) -> None:
        self.config = config
        self.settings = config.watchdog
        self.holder = holder
        self.device = device
        self.guests = guests
        self.notifier = notifier
        self.announce_ready = announce_ready
        self.clock = clock
        self.log = log
        self.status_file = status_path(config.paths.runtime_dir)
        self._stop_refusal: str | None = None

    def run(self, stop_requested: threading.Event) -> ServiceExit:
        """Run until a clean stop after `stop_requested` is set; the exit status."""
        self.holder.connect(Deadline.after(START_SECONDS, self.clock))
        server: HolderServer | None = None
        try:
            refusal = self._join(Deadline.after(START_SECONDS, self.clock))
            if refusal is not None:
                # Nothing will be armed, so nothing protects guests that still run here (the
                # loop's start() does the same for its own refusals).
                self._stop_guests(f"start refused ({refusal.name.lower()})")
                return refusal
            loop = self._loop()
            refusal = self._start(loop)
            if refusal is not None:
                return refusal
            server = HolderServer(socket_path(self.config.paths.runtime_dir), self.holder,
                                  self.log)
            server.serve_in_thread()
            self.log.info("ownership proven and %s armed; T_safe %gs; serving %s",
                          self.device.name, t_safe(self.settings), server.server_address)
            self.announce_ready()
            self._supervise(loop, stop_requested)
            return ServiceExit.CLEAN_STOP
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            self.guests.close()
            self.holder.close()

    # --- start-up ----------------------------------------------------------------------------

    def _join(self, deadline: Deadline) -> ServiceExit | None:
        records = self.holder.boot_records
        if records.fenced_in_this_boot():
            self.log.error("not joining: this node was fenced in boot %s; it joins again only "
                           "after a reboot", records.boot_id)
            return ServiceExit.FENCED
        try:
            result = self.holder.join(deadline)
        except FencedBoot as exc:
            self.log.error("not joining: %s", exc)
            return ServiceExit.FENCED
        failures = [f"{o.lun} via {o.path}: {o.detail}" for o in result.failures()]
        self.log.info("joined as %s%s", self.holder.node.name,
                      f" (incomplete: {'; '.join(failures)})" if failures else "")
        return None

    def _stop_guests(self, reason: str) -> None:
        # The reset comes at most `timeout` after petting stopped: no point waiting longer.
        self.guests.destroy_all(reason, Deadline.after(self.settings.timeout, self.clock))

    def _loop(self) -> OwnershipWatchdog:
        return OwnershipWatchdog(device=self.device, settings=self.settings,
                                 check=HolderOwnershipCheck(self.holder, self.log),
                                 on_fenced=self._stop_guests,
                                 guests_running=self.guests.any_running,
                                 notifier=self.notifier, clock=self.clock, log=self.log)

    def _start(self, loop: OwnershipWatchdog) -> ServiceExit | None:
        try:
            loop.start()
        except KeyNotRegistered as exc:
            self.log.error("not arming, this node was fenced: %s", exc)
            return ServiceExit.FENCED
        except OwnershipUnverified as exc:
            self.log.error("not arming, ownership unproven: %s", exc)
            return ServiceExit.UNVERIFIED
        except WatchdogError as exc:
            self.log.error("watchdog device refused: %s", exc)
            return ServiceExit.REFUSED
        return None

    # --- running -----------------------------------------------------------------------------

    def _supervise(self, loop: OwnershipWatchdog, stop_requested: threading.Event) -> None:
        """Write the status every interval; once a stop is requested, try the clean stop
        every interval until it is allowed (no dependent guest, not self-fencing)."""
        while True:
            self._write_status(loop, stop_requested.is_set())
            if stop_requested.is_set():
                if self._try_stop(loop):
                    self._write_status(loop, True)
                    return
                self.clock.sleep(self.settings.interval)
            else:
                stop_requested.wait(self.settings.interval)

    def _try_stop(self, loop: OwnershipWatchdog) -> bool:
        try:
            loop.stop(Deadline.after(STOP_JOIN_SECONDS, self.clock))
        except (StopRefused, DisarmFailed) as exc:
            text = f"{type(exc).__name__}: {exc}"
            if text != self._stop_refusal:  # one log line per reason, not one per interval
                self.log.warning("stop refused, the watchdog stays armed: %s", exc)
            self._stop_refusal = text
            return False
        self._stop_refusal = None
        self.log.info("stopped cleanly: %s disarmed, no guest depends on the LUNs",
                      self.device.name)
        return True

    def snapshot(self, loop: OwnershipWatchdog, stop_requested: bool) -> dict[str, Any]:
        """What `stonewall watchdog status` reads (snapshot.py)."""
        stop = self.guests.last_stop
        return {
            "service": {
                "node": self.holder.node.name, "pid": os.getpid(),
                "interval": self.settings.interval, "t_safe": t_safe(self.settings),
                "written_monotonic": self.clock.monotonic(), "written_wall": self.clock.wall(),
                "stop_requested": stop_requested, "stop_refused": self._stop_refusal,
                "guest_stop": None if stop is None else stop.to_dict(),
            },
            "watchdog": loop.status().to_dict(),
            "holder": self.holder.state().to_jsonable(),
        }

    def _write_status(self, loop: OwnershipWatchdog, stop_requested: bool) -> None:
        try:
            write_snapshot(self.status_file, self.snapshot(loop, stop_requested))
        except (OSError, ValueError) as exc:  # a full /run, a damaged boot record: neither
            # may take the service (and with it the petting) down
            self.log.error("cannot write %s: %s", self.status_file, exc)
