"""The guests on this node that depend on the cluster's LUNs, as the watchdog service sees
them: are any running (a clean stop must wait), and destroy them all (self-fencing, through
the same concurrent, retried eviction as every lost ownership: vm.control).

A domain depends on the LUNs when it is configured under `guests:` or one of its disks maps
to a configured LUN (vm.mapping). A domain whose XML cannot be read or parsed is counted as
dependent: "cannot tell" must never let the watchdog disarm or leave a guest running.
Self-fencing destroys (kills QEMU), never shuts down: the node has lost its storage and its
reset is minutes away at most; a guest OS flushing through an ACPI shutdown could not write
anyway, and waiting for it would only keep the guest alive on the network longer.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.model import ClusterConfig
from stonewall.vm.control import Eviction, destroy_guests_for_lost_ownership
from stonewall.vm.disks import DomainXmlError
from stonewall.vm.libvirt_conn import (
    DomainInfo, DomainNotFound, LibvirtConnection, LibvirtError, LibvirtUnavailable)
from stonewall.vm.mapping import guest_luns

Connect = Callable[[Deadline], LibvirtConnection]


@dataclass
class GuestStopReport:
    """What one self-fencing guest stop did: destroyed guests and the ones that failed."""

    reason: str
    destroyed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # guest -> error type and message
    finished_wall: float | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        return {"reason": self.reason, "destroyed": list(self.destroyed),
                "failed": dict(self.failed), "finished_wall": self.finished_wall, "ok": self.ok}


class LocalGuests:
    """This node's libvirt, seen through one long-lived connection (opened again only after
    it broke: a connection that timed out is never reused, libvirt_conn.py)."""

    def __init__(self, config: ClusterConfig, connect: Connect, *, call_seconds: float,
                 clock: Clock = SYSTEM_CLOCK, log: logging.Logger | None = None) -> None:
        self.config = config
        self.connect = connect
        self.call_seconds = call_seconds
        self.clock = clock
        self.log = log or logging.getLogger("stonewall.watchdog")
        self._lock = threading.Lock()
        self._conn: LibvirtConnection | None = None
        self.last_stop: GuestStopReport | None = None

    def _connection(self, deadline: Deadline) -> LibvirtConnection:
        with self._lock:
            if self._conn is None:
                self._conn = self.connect(deadline)
            return self._conn

    def _forget_broken(self, conn: LibvirtConnection) -> None:
        with self._lock:
            if self._conn is conn:
                conn.close()
                self._conn = None

    def dependent_active(self, deadline: Deadline) -> list[str]:
        """Names of the active domains that depend on the LUNs (state UNKNOWN counts as
        active). Raises LibvirtError when libvirt cannot answer: the caller treats that as
        "guests run"."""
        conn = self._connection(deadline)
        try:
            domains = conn.list_domains()
            return [d.name for d in domains
                    if d.state.active is not False and self._depends(conn, d)]
        except LibvirtUnavailable:
            self._forget_broken(conn)
            raise

    def _depends(self, conn: LibvirtConnection, domain: DomainInfo) -> bool:
        try:
            return guest_luns(self.config, domain.name, conn.xml(domain.name)).managed
        except DomainNotFound:
            return False  # a transient domain that stopped between the list and now
        except LibvirtUnavailable:
            raise
        except (DomainXmlError, LibvirtError) as exc:
            self.log.warning("guest %s: cannot tell its LUNs (%s); counting it as dependent",
                             domain.name, exc)
            return True

    def any_running(self) -> bool:
        """True while a dependent guest runs here; raises when libvirt cannot tell."""
        return bool(self.dependent_active(Deadline.after(self.call_seconds, self.clock)))

    def destroy_all(self, reason: str, stop_deadline: Deadline) -> GuestStopReport:
        """Destroy every dependent active guest before `stop_deadline`, all at once and
        retried (vm.control.destroy_guests_for_lost_ownership); one log line each."""
        report = GuestStopReport(reason)
        try:
            names = self.dependent_active(stop_deadline)
        except LibvirtError as exc:
            report.failed["*"] = f"{type(exc).__name__}: {exc}"
            self.log.critical("cannot list guests to stop them: %s", exc)
            names = []
        if names:
            conn = self._connection(stop_deadline)
            eviction = destroy_guests_for_lost_ownership(conn, names, stop_deadline)
            for guest in eviction.guests:
                if guest.outcome.off:
                    report.destroyed.append(guest.guest)
                    self.log.critical("guest %s destroyed (%s): %s", guest.guest,
                                      guest.outcome.value, reason)
                else:
                    report.failed[guest.guest] = f"{guest.outcome.value}: {guest.detail}"
                    self.log.critical("guest %s NOT stopped: %s (%s)", guest.guest,
                                      guest.outcome.value, guest.detail)
            if any(g.outcome is Eviction.CANNOT_TELL for g in eviction.guests):
                self._forget_broken(conn)  # a hung or dead connection is never reused
        report.finished_wall = self.clock.wall()
        self.last_stop = report
        return report

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
