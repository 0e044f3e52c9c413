"""The `sg` transport: persistent reservations through sg3_utils (`sg_persist`, `sg_turs`)
and multipath-tools (`mpathpersist`) processes.

`SgRunner` is the one seam that runs them: argument lists, never a shell; the deadline
becomes the process timeout; the exit status (and, for sg3_utils, the raw sense that `-vv`
dumps) becomes the exception types of `errors`. `SgPersistDevice` is one LUN through one
path (/dev/sdX, /dev/sgN: the kernel keeps that I_T nexus between processes);
`MpathPersistDevice` is a dm-multipath map, where mpathpersist fans PR OUT out to the paths.
"""
from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
import shutil
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from stonewall.clock import Deadline
from stonewall.process import ProcessError, run_process
from stonewall.storage.scsi.cdb import MAX_KEY
from stonewall.storage.scsi.errors import (
    CheckCondition, CommandTimeout, DeviceError, IllegalRequest, NotReady,
    ReservationConflict, ScsiError, TargetBusy, TransportError, TruncatedResponse,
    UnitAttention, UnsupportedServiceAction)
from stonewall.storage.scsi.responses import Capabilities, FullStatus, Keys, Reservation
from stonewall.storage.scsi.sense import SenseFormatError, decode_sense
from stonewall.storage.scsi.sg_output import (
    data_in_length, parse_full_status_hex, parse_full_status_text, parse_read_keys,
    parse_read_reservation, parse_report_capabilities, raw_sense, transport_failure)
from stonewall.storage.scsi.status import exception_for_sense
from stonewall.storage.scsi.types import ReservationType

ErrorMapper = Callable[[int, str, str], "ScsiError | None"]


# -- exit statuses --------------------------------------------------------------------------
# sg3_utils (man 8 sg3_utils, EXIT STATUS). The CHECK CONDITION family is classified from the
# raw sense when `-vv` printed it (the same rule as the iSCSI transport: status.py).
_SG3_CHECK_CONDITION: dict[int, type[ScsiError]] = {
    2: NotReady, 3: CheckCondition, 5: IllegalRequest, 6: UnitAttention, 7: CheckCondition,
    9: UnsupportedServiceAction,  # ILLEGAL REQUEST 20/00: the command itself is unknown
    10: CheckCondition, 11: CheckCondition, 14: CheckCondition, 17: IllegalRequest,
    18: CheckCondition, 20: CheckCondition, 21: CheckCondition, 22: IllegalRequest,
    40: CheckCondition, 41: CheckCondition, 98: CheckCondition,
}
_SG3_OTHER: dict[int, type[ScsiError]] = {
    1: DeviceError,  # the tool rejected our command line: unusable through this tool
    15: DeviceError, 31: DeviceError, 126: DeviceError, 127: DeviceError,
    24: ReservationConflict, 26: TargetBusy, 27: TargetBusy, 33: CommandTimeout,
    # ACA ACTIVE / TASK ABORTED / bad response / anything else: the fate is unknown.
    28: TransportError, 29: TransportError, 97: TransportError, 99: TransportError,
}
# 50 + errno: these errnos mean the device could not be opened or is no SCSI device, so no
# command left; any other errno may have struck after the command was sent.
_UNUSABLE_ERRNOS = {errno.EPERM, errno.ENOENT, errno.ENXIO, errno.EACCES, errno.EBUSY,
                    errno.ENODEV, errno.ENOTDIR, errno.EISDIR, errno.EINVAL, errno.ENOTTY,
                    errno.EROFS, errno.ENOTBLK}
_OS_ERROR_BASE = 50
# What sg3_utils 1.46 says for ILLEGAL REQUEST 24/00 and 26/00 when no sense is dumped.
_UNSUPPORTED_HINT = "perhaps unsupported service action"


def sg3_utils_error(status: int, stderr: str, what: str) -> ScsiError | None:
    """The exception for an sg3_utils run, or None when it succeeded.

    Exit 0 is not always success: sg3_utils 1.46 exits 0 after an SG_IO that failed in the
    host or transport (measured; it prints "transport: Host_status=..." and a zeroed answer).
    """
    message = f"{what}: exit {status}: {_tail(stderr)}"
    if status == 0:
        failure = transport_failure(stderr)
        if failure is None:
            return None
        kind = CommandTimeout if "DID_TIME_OUT" in failure else TransportError
        return kind(f"{what}: {failure}")
    if status in _SG3_CHECK_CONDITION:
        sense_bytes = raw_sense(stderr)
        if sense_bytes:
            try:
                return exception_for_sense(decode_sense(sense_bytes), message)
            except (SenseFormatError, ValueError):
                pass
        if status == 5 and _UNSUPPORTED_HINT in stderr:
            return UnsupportedServiceAction(message)
        return _SG3_CHECK_CONDITION[status](message)
    if status in _SG3_OTHER:
        return _SG3_OTHER[status](message)
    if status == _OS_ERROR_BASE:  # an errno too large for the range (47 and up)
        return TransportError(f"{message} (an OS error)")
    if _OS_ERROR_BASE < status < 97:
        code = status - _OS_ERROR_BASE
        return (DeviceError if code in _UNUSABLE_ERRNOS else TransportError)(
            f"{message} ({os.strerror(code)})")
    return ScsiError(message)


# mpathpersist returns libmpathpersist's MPATH_PR_* codes (mpath_persist.h), not sg3_utils'.
_MPATH_EXITS: dict[int, type[ScsiError]] = {
    1: DeviceError,  # syntax, no device-mapper, or "configured reservation key doesn't match"
    2: NotReady, 3: CheckCondition, 4: CheckCondition,
    5: IllegalRequest,  # any ILLEGAL REQUEST: mpathpersist keeps no ASC/ASCQ
    6: UnitAttention, 7: UnsupportedServiceAction, 8: CheckCondition, 9: CheckCondition,
    10: TransportError, 11: ReservationConflict, 12: DeviceError, 13: DeviceError,
    14: TransportError, 15: TransportError,  # OTHER includes host/transport failures
}


def mpathpersist_error(status: int, stderr: str, what: str) -> ScsiError | None:
    """The exception for an mpathpersist run, or None when it succeeded."""
    if status == 0:
        return None
    message = f"{what}: exit {status}: {_tail(stderr)}"
    return _MPATH_EXITS.get(status, ScsiError)(message)


def _tail(stderr: str, lines: int = 2) -> str:
    """The last lines of stderr (sg3_utils' summary of the failure), joined, for messages."""
    kept = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no message)"


# -- the runner ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tool:
    """A program the runner may run, the Debian package that ships it, its exit statuses."""

    name: str
    package: str
    error_for: ErrorMapper


SG_PERSIST = Tool("sg_persist", "sg3-utils", sg3_utils_error)
SG_TURS = Tool("sg_turs", "sg3-utils", sg3_utils_error)
MPATHPERSIST = Tool("mpathpersist", "multipath-tools", mpathpersist_error)


@dataclass(frozen=True)
class ToolOutput:
    stdout: str
    stderr: str


# READ FULL STATUS of a LUN with many registrants on many paths is the longest output.
_OUTPUT_LIMIT = 1024 * 1024


class SgRunner:
    """Runs sg3_utils and mpathpersist. `environment` is added to this process's environment
    for every run (the lab adds LD_PRELOAD and the fake device map; a test may set PATH)."""

    def __init__(self, environment: Mapping[str, str] | None = None) -> None:
        self.environment = {**os.environ, **(environment or {})}

    def run(self, tool: Tool, arguments: Sequence[str], deadline: Deadline,
            what: str) -> ToolOutput:
        """Run `tool arguments...` within `deadline`; raise the type its outcome means."""
        binary = shutil.which(tool.name, path=self.environment.get("PATH", os.defpath))
        if binary is None:
            raise DeviceError(f"{what}: {tool.name} not found: install the Debian package "
                              f"{tool.package}")
        remaining = deadline.remaining()
        if remaining <= 0:
            raise CommandTimeout(f"{what}: no time left to run {tool.name}")
        try:
            result = run_process([binary, *arguments], deadline, env=self.environment,
                                 output_limit=_OUTPUT_LIMIT)
        except ProcessError as exc:
            raise DeviceError(f"{what}: cannot run {binary}: {exc}") from exc
        if result.timed_out:
            # The group is killed; a PR OUT it sent may or may not have been executed.
            raise CommandTimeout(f"{what}: {tool.name} did not finish within "
                                 f"{remaining:.1f}s")
        assert result.returncode is not None
        if result.returncode < 0:
            raise TransportError(f"{what}: {tool.name} killed by signal {-result.returncode}")
        stdout, stderr = result.text("stdout"), result.text("stderr")
        error = tool.error_for(result.returncode, stderr, f"{what} ({tool.name})")
        if error is not None:
            raise error
        return ToolOutput(stdout, stderr)


# -- PR command lines, shared by sg_persist and mpathpersist ---------------------------------
def hex_key(key: int) -> str:
    """A reservation key as both tools read it: hex with 0x."""
    if not 0 <= key <= MAX_KEY:
        raise ValueError(f"reservation key {key!r} does not fit in 8 bytes")
    return f"0x{key:x}"


def _rk(key: int) -> str:
    return f"--param-rk={hex_key(key)}"


def _sark(key: int) -> str:
    return f"--param-sark={hex_key(key)}"


def _type(rtype: ReservationType) -> str:
    return f"--prout-type={int(rtype)}"  # 1..8: the same in decimal (sg_persist) and hex (mpath)


def _register_arguments(key: int, new_key: int, *, ignore_existing: bool, all_tg_pt: bool,
                        aptpl: bool) -> list[str]:
    # REGISTER AND IGNORE EXISTING KEY ignores the reservation key field: none is passed.
    arguments = (["--register-ignore", _sark(new_key)] if ignore_existing
                 else ["--register", _rk(key), _sark(new_key)])
    if all_tg_pt:
        arguments.append("--param-alltgpt")
    if aptpl:
        arguments.append("--param-aptpl")
    return arguments


def _check_device_path(device_path: str) -> str:
    if not device_path.startswith("/"):
        raise ValueError(f"device path {device_path!r} must be absolute")
    return device_path


class _PersistTool(ABC):
    """The PrDevice operations as command lines; subclasses say how a run is made."""

    def __init__(self, device_path: str, runner: SgRunner) -> None:
        self.device_path = _check_device_path(device_path)
        self.runner = runner

    @property
    def path_name(self) -> str:
        return self.device_path

    @abstractmethod
    def _run(self, arguments: list[str], deadline: Deadline, what: str) -> ToolOutput:
        """Run the tool with `arguments` on this device."""

    def _pr_in(self, option: str, deadline: Deadline, what: str) -> ToolOutput:
        return self._run(["--in", option], deadline, what)

    def _pr_out(self, arguments: list[str], deadline: Deadline, what: str) -> None:
        self._run(["--out", *arguments], deadline, what)

    def _what(self, action: str) -> str:
        return f"{action} on {self.device_path}"

    def register(self, key: int, new_key: int, deadline: Deadline, *,
                 ignore_existing: bool = False, all_tg_pt: bool = False,
                 aptpl: bool = False) -> None:
        action = "REGISTER AND IGNORE EXISTING KEY" if ignore_existing else "REGISTER"
        self._pr_out(_register_arguments(key, new_key, ignore_existing=ignore_existing,
                                         all_tg_pt=all_tg_pt, aptpl=aptpl),
                     deadline, self._what(f"PR OUT {action}"))

    def reserve(self, key: int, rtype: ReservationType, deadline: Deadline) -> None:
        self._pr_out(["--reserve", _rk(key), _type(rtype)], deadline,
                     self._what("PR OUT RESERVE"))

    def release(self, key: int, rtype: ReservationType, deadline: Deadline) -> None:
        self._pr_out(["--release", _rk(key), _type(rtype)], deadline,
                     self._what("PR OUT RELEASE"))

    def clear(self, key: int, deadline: Deadline) -> None:
        self._pr_out(["--clear", _rk(key)], deadline, self._what("PR OUT CLEAR"))

    def preempt(self, key: int, victim_key: int, rtype: ReservationType, deadline: Deadline,
                *, abort: bool = False) -> None:
        option, action = (("--preempt-abort", "PREEMPT AND ABORT") if abort
                          else ("--preempt", "PREEMPT"))
        self._pr_out([option, _rk(key), _sark(victim_key), _type(rtype)], deadline,
                     self._what(f"PR OUT {action}"))


class SgPersistDevice(_PersistTool):
    """One LUN through one path, with `sg_persist -n` (one service action per run).

    Runs at -vv so that a failure carries its raw sense (classified as the iSCSI transport
    classifies it) and a PR IN reports how many bytes really came back.
    """

    def _run(self, arguments: list[str], deadline: Deadline, what: str) -> ToolOutput:
        return self.runner.run(SG_PERSIST, ["-vv", "-n", *arguments, self.device_path],
                               deadline, what)

    @staticmethod
    def _check_received(output: ToolOutput, needed: int, what: str) -> None:
        # sg_persist 1.46 prints a short or empty answer as "NO registered reservation keys"
        # (measured); the byte count at -vv tells the two apart.
        received = data_in_length(output.stderr)
        if received is not None and received < needed:
            raise TruncatedResponse(f"{what}: {received} bytes came back, the answer printed "
                                    f"needs {needed}")

    def read_keys(self, deadline: Deadline) -> Keys:
        what = self._what("PR IN READ KEYS")
        output = self._pr_in("--read-keys", deadline, what)
        keys = parse_read_keys(output.stdout)
        self._check_received(output, 8 + 8 * len(keys.keys), what)
        return keys

    def read_reservation(self, deadline: Deadline) -> Reservation:
        what = self._what("PR IN READ RESERVATION")
        output = self._pr_in("--read-reservation", deadline, what)
        reservation = parse_read_reservation(output.stdout)
        self._check_received(output, 8 if reservation.holder is None else 24, what)
        return reservation

    def report_capabilities(self, deadline: Deadline) -> Capabilities:
        what = self._what("PR IN REPORT CAPABILITIES")
        output = self._pr_in("--report-capabilities", deadline, what)
        capabilities = parse_report_capabilities(output.stdout)
        self._check_received(output, 8, what)
        return capabilities

    def read_full_status(self, deadline: Deadline) -> FullStatus:
        # --hex: the descriptors byte for byte (TransportIDs of every protocol), decoded by
        # the SPC-4 parser the iSCSI transport uses.
        what = self._what("PR IN READ FULL STATUS")
        output = self._run(["--in", "--read-full-status", "--hex"], deadline, what)
        return parse_full_status_hex(output.stdout)


class MpathPersistDevice(_PersistTool):
    """A dm-multipath map (/dev/mapper/NAME) through `mpathpersist`.

    What mpathpersist does per path: REGISTER (and REGISTER AND IGNORE) goes down every
    usable path of the map in parallel threads, so READ KEYS then lists the key once per
    I_T nexus; RESERVE, RELEASE, CLEAR and PREEMPT go down one path (any registered nexus
    of the initiator may act); PR IN asks one path. It needs root and multipath.conf's
    `reservation_key` (a key or `file`): otherwise PR OUT ends with exit 1, "configured
    reservation key doesn't match", which maps to DeviceError.
    """

    # Service actions a target may lack. mpathpersist reports every ILLEGAL REQUEST as
    # exit 5 without the ASC, so for these it is taken as "not supported" (tgtd answers
    # 24/00 to both, measured), and the caller falls back as it would with sg_persist.
    _OPTIONAL_ACTIONS = ("--preempt-abort", "--read-full-status")

    def _run(self, arguments: list[str], deadline: Deadline, what: str) -> ToolOutput:
        try:
            return self.runner.run(MPATHPERSIST, [*arguments, self.device_path], deadline,
                                   what)
        except IllegalRequest as exc:
            if any(option in arguments for option in self._OPTIONAL_ACTIONS):
                raise UnsupportedServiceAction(str(exc), exc.sense) from exc
            raise

    def read_keys(self, deadline: Deadline) -> Keys:
        what = self._what("PR IN READ KEYS")
        return parse_read_keys(self._pr_in("--read-keys", deadline, what).stdout)

    def read_reservation(self, deadline: Deadline) -> Reservation:
        what = self._what("PR IN READ RESERVATION")
        return parse_read_reservation(self._pr_in("--read-reservation", deadline, what).stdout)

    def report_capabilities(self, deadline: Deadline) -> Capabilities:
        what = self._what("PR IN REPORT CAPABILITIES")
        return parse_report_capabilities(
            self._pr_in("--report-capabilities", deadline, what).stdout)

    def read_full_status(self, deadline: Deadline) -> FullStatus:
        what = self._what("PR IN READ FULL STATUS")
        return parse_full_status_text(self._pr_in("--read-full-status", deadline, what).stdout)


def test_unit_ready(device_path: str, deadline: Deadline, runner: SgRunner) -> None:
    """TEST UNIT READY through `sg_turs`; returns when the LUN answered GOOD (at -vv, so a
    CHECK CONDITION carries its sense)."""
    runner.run(SG_TURS, ["-vv", _check_device_path(device_path)], deadline,
               f"TEST UNIT READY on {device_path}")
