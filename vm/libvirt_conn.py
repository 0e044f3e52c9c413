"""The one adapter around libvirt-python: list, read, define, start and stop domains.

Every call runs under a deadline (libvirt calls block; a daemon stuck on storage can hold them
for minutes, reference vm.md section 7 items 3, 8, 9). A state libvirt could not report is
`DomainState.UNKNOWN`, never `SHUT_OFF` (ClusterLabs/resource-agents#856: "cannot determine"
mapped to "stopped" started a second copy). Failures are exception types, not messages.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, TypeVar

import libvirt

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.bounded import DeadlineExceeded, call_before

T = TypeVar("T")

DEFAULT_CALL_TIMEOUT = 30.0  # seconds for one libvirt call other than destroy


class DomainState(Enum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUT_OFF = "shut off"
    CRASHED = "crashed"
    UNKNOWN = "unknown"

    @property
    def active(self) -> bool | None:
        """Whether a QEMU process may exist (None: cannot tell). A crashed domain kept with
        on_crash='preserve' still has its process, so CRASHED counts as active."""
        if self is DomainState.UNKNOWN:
            return None
        return self is not DomainState.SHUT_OFF


# virDomainState -> ours. BLOCKED and SHUTDOWN ("being shut down") still run; PMSUSPENDED keeps
# the process like PAUSED; NOSTATE and anything newer is UNKNOWN.
_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTDOWN: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.SHUT_OFF,
    libvirt.VIR_DOMAIN_CRASHED: DomainState.CRASHED,
}

# Errors that say the connection, not the domain, failed.
_CONNECTION_ERRORS = frozenset({
    libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED, libvirt.VIR_ERR_AUTH_UNAVAILABLE,
})


def domain_state(code: int) -> DomainState:
    """Our state for a virDomainState number."""
    return _STATES.get(code, DomainState.UNKNOWN)


class LibvirtError(Exception):
    """A libvirt call failed; `code` is libvirt's error number (None when it never ran)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class LibvirtUnavailable(LibvirtError):
    """No usable connection: open failed, the daemon went away, or a call hung."""


class CallTimeout(LibvirtUnavailable):
    """A call did not return before its deadline; the connection is not used again."""


class DomainNotFound(LibvirtError):
    """libvirt has no domain of that name on this host."""


class DomainAlreadyRunning(LibvirtError):
    """start of a domain that runs (qemu says code 55, the test driver code 1: we ask the
    state instead of trusting either)."""


class StartRefusedByHook(LibvirtError):
    """A hook script vetoed the start (VIR_ERR_HOOK_SCRIPT_FAILED); the message carries the
    hook's stderr, e.g. stonewall's own refusal naming the owner."""


class DestroyFailed(LibvirtError):
    """The domain may still run (e.g. QEMU stuck in D state: "Device or resource busy").
    Escalate (host reset / fence); never assume it is gone."""


class DestroyTimeout(DestroyFailed):
    """destroy did not return before its deadline."""


class StopOutcome(Enum):
    DESTROYED = "destroyed"
    SHUTDOWN_REQUESTED = "shutdown requested"
    WAS_NOT_RUNNING = "was not running"


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: DomainState
    persistent: bool


@dataclass(frozen=True)
class MigrationStats:
    """libvirt's job statistics of a finished migration (None where it gave none)."""

    downtime_ms: float | None  # the guest's pause at switchover, as libvirt measured it
    elapsed_ms: float | None
    memory_transferred: int | None  # bytes


def _ms(stats: dict, key: str) -> float | None:
    value = stats.get(key)
    return float(value) if isinstance(value, (int, float)) else None


class LibvirtConnection:
    """One libvirt connection (qemu:///system, qemu+ssh://peer/system, test:///...)."""

    def __init__(self, conn: libvirt.virConnect, uri: str, *,
                 call_timeout: float = DEFAULT_CALL_TIMEOUT, clock: Clock = SYSTEM_CLOCK) -> None:
        self._conn = conn
        self.uri = uri
        self._call_timeout = call_timeout
        self._clock = clock
        self._broken = False

    @classmethod
    def open(cls, uri: str, deadline: Deadline, *, read_only: bool = False,
             call_timeout: float = DEFAULT_CALL_TIMEOUT) -> "LibvirtConnection":
        """Connect to `uri` before `deadline`; LibvirtUnavailable if that fails."""
        # libvirt's default handler prints every error to stderr; ours are raised as types.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        opener = libvirt.openReadOnly if read_only else libvirt.open
        try:
            conn = call_before(deadline, lambda: opener(uri), f"open {uri}")
        except DeadlineExceeded as error:
            raise CallTimeout(f"cannot connect to {uri}: {error}") from error
        except libvirt.libvirtError as error:
            raise LibvirtUnavailable(f"cannot connect to {uri}: {error}", error.get_error_code()) from error
        return cls(conn, uri, call_timeout=call_timeout, clock=deadline.clock)

    def close(self) -> None:
        if not self._broken:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass  # closing a dead connection: nothing left to release
        self._broken = True

    def __enter__(self) -> "LibvirtConnection":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def list_domains(self) -> tuple[DomainInfo, ...]:
        """Every domain on this host (running and defined), with its state."""
        def collect() -> tuple[DomainInfo, ...]:
            return tuple(DomainInfo(d.name(), d.UUIDString(), domain_state(d.state()[0]),
                                    bool(d.isPersistent()))
                         for d in self._conn.listAllDomains())
        return self._call(collect, f"list domains on {self.uri}")

    def state(self, name: str) -> DomainState:
        """The domain's state; UNKNOWN when libvirt cannot tell. DomainNotFound if undefined."""
        try:
            return self._call(lambda: domain_state(self._lookup(name).state()[0]), f"state of {name}")
        except DomainNotFound:
            raise
        except LibvirtError:
            return DomainState.UNKNOWN

    def is_active(self, name: str) -> bool:
        """True while a QEMU process of the domain exists; False if it is off or undefined."""
        try:
            return self._call(lambda: bool(self._lookup(name).isActive()), f"is {name} active")
        except DomainNotFound:
            return False

    def xml(self, name: str, *, inactive: bool = False) -> str:
        """The domain's XML (live, or the persistent definition with `inactive`)."""
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return self._call(lambda: self._lookup(name).XMLDesc(flags), f"XML of {name}")

    def define(self, domain_xml: str) -> str:
        """Define (or redefine) a persistent domain; returns its name."""
        return self._call(lambda: self._conn.defineXML(domain_xml).name(), "define a domain")

    def start(self, name: str) -> None:
        """Start a defined domain. StartRefusedByHook when a hook vetoed it."""
        try:
            self._call(lambda: self._lookup(name).create(), f"start {name}")
        except (StartRefusedByHook, LibvirtUnavailable, DomainNotFound):
            raise
        except LibvirtError as error:
            if self.state(name) in (DomainState.RUNNING, DomainState.PAUSED):
                raise DomainAlreadyRunning(f"{name} is already running on {self.uri}", error.code) from error
            raise

    def shutdown(self, name: str) -> StopOutcome:
        """Ask the guest to shut down (ACPI); it may take long or never happen."""
        try:
            self._call(lambda: self._lookup(name).shutdown(), f"shut down {name}")
        except DomainNotFound:
            return StopOutcome.WAS_NOT_RUNNING
        except LibvirtUnavailable:
            raise
        except LibvirtError:
            if self.state(name) is DomainState.SHUT_OFF:
                return StopOutcome.WAS_NOT_RUNNING
            raise
        return StopOutcome.SHUTDOWN_REQUESTED

    def destroy(self, name: str, deadline: Deadline) -> StopOutcome:
        """Kill the domain's QEMU before `deadline` and check that it is off.

        "Not running" and "no such domain" count as stopped (resource-agents#137); anything
        else that leaves the domain possibly alive raises DestroyFailed / DestroyTimeout."""
        try:
            self._call(lambda: self._lookup(name).destroy(), f"destroy {name}", deadline)
        except DomainNotFound:
            return StopOutcome.WAS_NOT_RUNNING
        except CallTimeout as error:
            raise DestroyTimeout(f"destroy {name} did not finish before its deadline") from error
        except LibvirtError as error:
            if self._stopped(name):
                return StopOutcome.WAS_NOT_RUNNING
            raise DestroyFailed(f"destroy {name} failed and it may still run: {error}", error.code) from error
        if not self._stopped(name):
            raise DestroyFailed(f"{name} is not shut off after destroy")
        return StopOutcome.DESTROYED

    def migrate(self, name: str, destination: "LibvirtConnection", flags: int,
                migrate_uri: str | None, deadline: Deadline) -> MigrationStats:
        """Migrate the domain to `destination` (client-driven: this process talks to both
        daemons) before `deadline`; the statistics of the finished job, as the destination
        reports them. A failure raises LibvirtError (StartRefusedByHook when the
        destination's hook refused it)."""
        def run() -> MigrationStats:
            migrated = self._lookup(name).migrate(destination._conn, flags, None, migrate_uri, 0)
            try:
                stats = migrated.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
            except libvirt.libvirtError:
                stats = {}  # the statistics are a report, not part of the migration
            return MigrationStats(_ms(stats, "downtime"), _ms(stats, "time_elapsed"),
                                  stats.get("memory_transferred"))
        return self._call(run, f"migrate {name} to {destination.uri}", deadline)

    def paused_for_migration(self, name: str) -> bool:
        """True while the domain's CPUs are stopped by a migration (the source after the
        switchover, or an incoming one still receiving)."""
        try:
            return self._call(lambda: tuple(self._lookup(name).state()) == (
                libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION),
                f"state of {name}")
        except DomainNotFound:
            return False

    def incoming_finished_paused(self, name: str) -> bool:
        """True once an incoming migration with VIR_MIGRATE_PAUSED finished here: the domain
        is paused "by the user" (libvirt's Finish step sets that reason; while it receives,
        the reason is "migration", measured on libvirt 9.0)."""
        try:
            return self._call(lambda: tuple(self._lookup(name).state()) == (
                libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER), f"state of {name}")
        except DomainNotFound:
            return False

    def resume(self, name: str) -> None:
        """Let a paused domain's CPUs run."""
        self._call(lambda: self._lookup(name).resume(), f"resume {name}")

    def _stopped(self, name: str) -> bool:
        try:
            return self.state(name) is DomainState.SHUT_OFF
        except DomainNotFound:
            return True  # a transient domain disappears when it stops

    def _lookup(self, name: str) -> libvirt.virDomain:
        return self._conn.lookupByName(name)

    def _call(self, call: Callable[[], T], what: str, deadline: Deadline | None = None) -> T:
        if self._broken:
            raise LibvirtUnavailable(f"{what}: the connection to {self.uri} is closed or hung")
        deadline = deadline or Deadline.after(self._call_timeout, self._clock)
        try:
            return call_before(deadline, call, what)
        except DeadlineExceeded as error:
            self._broken = True  # the hung call still owns the connection
            raise CallTimeout(str(error)) from error
        except libvirt.libvirtError as error:
            raise _translate(error, what) from error


def _translate(error: libvirt.libvirtError, what: str) -> LibvirtError:
    code = error.get_error_code()
    message = f"{what}: {error.get_error_message() or error}"
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return DomainNotFound(message, code)
    if code == libvirt.VIR_ERR_HOOK_SCRIPT_FAILED:
        return StartRefusedByHook(message, code)
    if code in _CONNECTION_ERRORS:
        return LibvirtUnavailable(message, code)
    return LibvirtError(message, code)
