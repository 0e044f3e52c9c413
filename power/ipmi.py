"""The IPMI adapter: power status, hard off and on of one node's BMC, each under a deadline.

pyghmi cannot be cancelled and some of its failures take 30 s or never return (reference
ipmi.md), so every call runs in a worker process (`stonewall.power.ipmi_child`) that is
killed at the deadline. This module imports neither pyghmi nor anything heavy.
"""
from __future__ import annotations

import sys

from stonewall.clock import Deadline
from stonewall.process import ProcessError, run_process
from stonewall.config.model import IpmiSettings
from stonewall.power.errors import (
    BmcAuthError, BmcCommandRejected, BmcError, BmcTimeout, BmcUnreachable,
    IpmiSettingsError)
from stonewall.power.protocol import (
    Operation, PowerState, ProtocolError, WorkerFailure, WorkerReport, WorkerRequest)

PRIVILEGE_LEVELS = {"callback": 1, "user": 2, "operator": 3, "administrator": 4}
# 17 (SHA256) where the BMC has it, else 3 (SHA1), the one every IPMI 2.0 BMC must offer;
# never 0, which authenticates nothing.
CIPHER_SUITES = (3, 17)
WORKER_MODULE = "stonewall.power.ipmi_child"
STDERR_TAIL = 600


class IpmiClient:
    """One node's BMC, reached over RMCP+ (IPMI 2.0 lanplus) with one fresh session per call."""

    def __init__(self, settings: IpmiSettings, password: str, python: str = sys.executable
                 ) -> None:
        check_settings(settings)
        if not password:
            raise IpmiSettingsError(f"BMC {settings.address}: the password is empty")
        self.settings = settings
        self._password = password
        self._python = python

    def __repr__(self) -> str:
        return (f"IpmiClient({self.settings.username}@{self.settings.address}:"
                f"{self.settings.port})")

    def power_state(self, deadline: Deadline) -> PowerState:
        """ON, OFF, or UNKNOWN when the BMC answered without a usable state."""
        report = self._run(Operation.STATUS, deadline)
        return report.state if report.state is not None else PowerState.UNKNOWN

    def power_off(self, deadline: Deadline) -> None:
        """Send hard power down (Chassis Control 0x00). Returning means only "accepted"."""
        self._run(Operation.OFF, deadline)

    def power_on(self, deadline: Deadline) -> None:
        """Send power up (Chassis Control 0x01). Returning means only "accepted"."""
        self._run(Operation.ON, deadline)

    def _run(self, operation: Operation, deadline: Deadline) -> WorkerReport:
        budget = deadline.remaining()
        if budget <= 0:
            raise BmcTimeout(f"{self!r} {operation.value}: the deadline passed before the call")
        request = WorkerRequest(
            operation=operation, address=self.settings.address, port=self.settings.port,
            username=self.settings.username, password=self._password,
            privilege=PRIVILEGE_LEVELS[self.settings.privilege],
            cipher_suite=self.settings.cipher_suite, budget=budget)
        what = f"{self!r} {operation.value}"
        stdout, stderr, killed, returncode = run_worker(
            [self._python, "-m", WORKER_MODULE], request.to_json(), deadline, what)
        try:
            report = WorkerReport.parse(stdout)
        except ProtocolError as error:
            raise BmcError(f"{what}: {error}") from None
        if report.finished:
            # A worker killed while logging out has still delivered its result.
            raise_for_failure(report, what)
            return report
        if killed:
            stage = ("logged in, no reply to the command" if report.logged_in else
                     "the BMC answered but login did not finish" if report.answered else
                     "no answer from the BMC")
            raise BmcTimeout(f"{what}: deadline of {budget:.2f} s passed "
                             f"({stage})", answered=report.answered,
                             logged_in=report.logged_in)
        tail = stderr.decode(errors="replace")[-STDERR_TAIL:].strip()
        raise BmcError(f"{what}: the IPMI worker exited with code {returncode} and no "
                       f"result: {tail or 'no error output'}")


def run_worker(command: list[str], request: bytes, deadline: Deadline, what: str
               ) -> tuple[bytes, bytes, bool, int]:
    """Run a worker with `request` on stdin; kill it at `deadline`. Returns its stdout,
    stderr, whether it was killed, and its exit code."""
    try:
        done = run_process(command, deadline, stdin=request)
    except ProcessError as error:
        raise BmcError(f"{what}: cannot start the IPMI worker {command}: {error}") from None
    # What the worker wrote before a kill still counts: its report lines are read back.
    return done.stdout, done.stderr, done.timed_out, -9 if done.returncode is None \
        else done.returncode


def check_settings(settings: IpmiSettings) -> None:
    """Raise IpmiSettingsError for settings no BMC call could succeed with."""
    if not settings.address:
        raise IpmiSettingsError("ipmi.address is empty")
    if not settings.username:
        raise IpmiSettingsError(f"BMC {settings.address}: ipmi.username is empty")
    if not 0 < settings.port < 65536:
        raise IpmiSettingsError(f"BMC {settings.address}: port {settings.port} is out of range")
    if settings.privilege not in PRIVILEGE_LEVELS:
        raise IpmiSettingsError(
            f"BMC {settings.address}: privilege {settings.privilege!r} is not one of "
            f"{', '.join(PRIVILEGE_LEVELS)}")
    if settings.cipher_suite not in CIPHER_SUITES:
        raise IpmiSettingsError(
            f"BMC {settings.address}: cipher suite {settings.cipher_suite} is not supported; "
            f"use 17 (SHA256) or 3 (SHA1)")


def raise_for_failure(report: WorkerReport, what: str) -> None:
    """Turn a worker's failure line into the matching exception type."""
    if report.failure is None:
        return
    message = f"{what}: {report.detail}"
    if report.failure is WorkerFailure.AUTH:
        raise BmcAuthError(message)
    if report.failure is WorkerFailure.UNREACHABLE:
        raise BmcUnreachable(message)
    if report.failure is WorkerFailure.REJECTED and report.completion_code is not None:
        raise BmcCommandRejected(message, report.completion_code)
    raise BmcError(message)
