"""The worker process behind `IpmiClient`: one IPMI operation through pyghmi, then exit.

    python -m stonewall.power.ipmi_child   < WorkerRequest JSON on stdin

pyghmi has no per-call timeout and some of its failures never return (reference ipmi.md:
a BMC that answers Open Session but never RAKP2 spins forever), so it is imported only
here, in a process the parent kills at its deadline. Each worker opens one fresh session
(bytes credentials, no keepalive), runs one command, reports, and logs out.
"""
from __future__ import annotations

import signal
import sys
from typing import Any, Callable

from pyghmi import exceptions as pyghmi_exceptions
from pyghmi.ipmi.private import session as pyghmi_session

from stonewall.power.protocol import (
    EVENT_ANSWERED, EVENT_FAILURE, EVENT_LOGGED_IN, EVENT_RESULT, Operation, PowerState,
    ProtocolError, WorkerFailure, WorkerRequest, event_line)

# IPMI 2.0 command numbers (appendix G): chassis netfn 0x00, app netfn 0x06.
NETFN_CHASSIS = 0x00
CMD_GET_CHASSIS_STATUS = 0x01
CMD_CHASSIS_CONTROL = 0x02
NETFN_APP = 0x06
CMD_SET_SESSION_PRIVILEGE = 0x3B
CHASSIS_CONTROL_CODE = {Operation.OFF: 0x00, Operation.ON: 0x01}  # section 28.3
CC_INSUFFICIENT_PRIVILEGE = 0xD4  # table 5-2
# RMCP+ status codes (table 13-15) that mean "no free session slot", not bad credentials,
# and the one pyghmi answers by starting over (a retry invalidated the exchange).
RMCP_NO_RESOURCES = frozenset({0x01, 0x0B})
RMCP_INVALID_SESSION_ID = 0x02
# pyghmi's `attemptedhash` picks the proposal: 1 = suite 3 (SHA1), 256 = suite 17 (SHA256).
HASH_FOR_SUITE = {3: 1, 17: 256}
# The parent kills at the deadline; this bounds a worker whose parent died first.
SELF_KILL_GRACE = 1.0

Emit = Callable[..., None]


class LoginFailed(Exception):
    def __init__(self, kind: WorkerFailure, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class FenceSession(pyghmi_session.Session):
    """One pyghmi RMCP+ session, pinned to one cipher suite, that records how far its login
    got so a failure can be classified by what happened rather than by pyghmi's message."""

    def __new__(cls, request: WorkerRequest, emit: Emit) -> "FenceSession":
        # pyghmi's __new__ hands out an existing session to the same BMC (and has a
        # str/bytes key bug there); a worker wants exactly one fresh session.
        return object.__new__(cls)

    def __init__(self, request: WorkerRequest, emit: Emit) -> None:
        self.forbidsock: list[Any] = []  # normally set by pyghmi's __new__
        self.pinned_hash = HASH_FOR_SUITE[request.cipher_suite]
        self.emit = emit
        self.answered = False
        self.open_session_status: int | None = None
        self.rakp_status: int | None = None  # non-zero status of RAKP2 or RAKP4
        self.password_rejected = False
        self.privilege_refused: int | None = None
        try:
            super().__init__(bmc=request.address, port=request.port,
                             userid=request.username.encode(),
                             password=request.password.encode(),
                             privlevel=request.privilege, keepalive=False)
        except pyghmi_exceptions.IpmiException as error:
            # pyghmi gives up on a silent BMC with IpmiException(None) (measured).
            reason = error.args[0] if error.args and error.args[0] else "no answer from the BMC"
            raise LoginFailed(self._login_failure_kind(), str(reason)) from None

    def _login_failure_kind(self) -> WorkerFailure:
        if (self.password_rejected or self.privilege_refused is not None
                or self.rakp_status not in (None, *RMCP_NO_RESOURCES)):
            return WorkerFailure.AUTH
        if self.open_session_status or self.rakp_status is not None:
            return WorkerFailure.ERROR  # cipher suite refused, or no free session
        return WorkerFailure.UNREACHABLE

    # -- hooks into pyghmi's login state machine ------------------------------------------
    def _handle_ipmi_packet(self, data: Any, sockaddr: Any = None, qent: Any = None) -> Any:
        if not self.answered:
            self.answered = True
            self.emit(EVENT_ANSWERED)
        return super()._handle_ipmi_packet(data, sockaddr=sockaddr, qent=qent)

    def _initsession(self) -> None:
        super()._initsession()
        self.attemptedhash = self.pinned_hash

    def _open_rmcpplus_request(self) -> None:
        if self.attemptedhash != self.pinned_hash:
            # pyghmi falls back from suite 17 to 3 on any refusal; a pinned suite must not.
            self.onlogon({"error": "the BMC refused the configured cipher suite"})
            return
        super()._open_rmcpplus_request()

    def _got_rmcp_response(self, data: Any) -> Any:
        self.open_session_status = data[1]
        return super()._got_rmcp_response(data)

    def _note_rakp_status(self, status: int) -> None:
        if status not in (0, RMCP_INVALID_SESSION_ID):
            self.rakp_status = status

    def _got_rakp2(self, data: Any) -> Any:
        self._note_rakp_status(data[1])
        result = super()._got_rakp2(data)
        # pyghmi marks the context FAILED exactly when RAKP2's HMAC does not match the
        # password (the BMC knows the user but not with this password).
        self.password_rejected = self.password_rejected or self.sessioncontext == "FAILED"
        return result

    def _got_rakp4(self, data: Any) -> Any:
        self._note_rakp_status(data[1])
        return super()._got_rakp4(data)

    def awaitresponse(self, retry: Any, netfn: int, command: int) -> Any:
        # pyghmi registers its wake-up only after sending; a reply that arrives before
        # that sits in pktqueue while pyghmi sleeps out its retry timer (0.5-1 s, measured
        # on about 1 command in 8 on loopback). Handle such a reply first.
        self.process_pktqueue()
        return super().awaitresponse(retry, netfn, command)

    def raw_command(self, netfn: int, command: int, *args: Any, **kwargs: Any) -> Any:
        response = super().raw_command(netfn, command, *args, **kwargs)
        if (netfn, command) == (NETFN_APP, CMD_SET_SESSION_PRIVILEGE) and response \
                and response.get("code"):
            self.privilege_refused = response["code"]
        return response


def run_operation(session: FenceSession, operation: Operation, emit: Emit) -> None:
    """Send one command on a logged-in session and emit its result or failure."""
    try:
        if operation is Operation.STATUS:
            response = session.raw_command(netfn=NETFN_CHASSIS, command=CMD_GET_CHASSIS_STATUS)
        else:
            response = session.raw_command(netfn=NETFN_CHASSIS, command=CMD_CHASSIS_CONTROL,
                                           data=[CHASSIS_CONTROL_CODE[operation]])
    except pyghmi_exceptions.IpmiException as error:
        emit(EVENT_FAILURE, kind=WorkerFailure.UNREACHABLE.value,
             detail=f"the BMC stopped answering: {error}")
        return
    code = response.get("code", 0)
    if operation is Operation.STATUS:
        emit(EVENT_RESULT, state=chassis_power_state(response).value,
             **({"detail": f"completion code 0x{code:02x}"} if code else {}))
    elif code == CC_INSUFFICIENT_PRIVILEGE:
        emit(EVENT_FAILURE, kind=WorkerFailure.AUTH.value, code=code,
             detail="insufficient privilege for Chassis Control (needs operator)")
    elif code:
        emit(EVENT_FAILURE, kind=WorkerFailure.REJECTED.value, code=code,
             detail=f"Chassis Control refused with completion code 0x{code:02x}")
    else:
        emit(EVENT_RESULT)


def chassis_power_state(response: dict[str, Any]) -> PowerState:
    """Get Chassis Status (IPMI 2.0 section 28.2): byte 1 bit 0 is "power is on"."""
    data = response.get("data") or []
    if response.get("code") or not data:
        return PowerState.UNKNOWN
    return PowerState.ON if data[0] & 0x01 else PowerState.OFF


def main() -> int:
    out = sys.stdout.buffer

    def emit(event: str, **fields: Any) -> None:
        out.write(event_line(event, **fields))
        out.flush()

    try:
        request = WorkerRequest.from_json(sys.stdin.buffer.read())
        if request.cipher_suite not in HASH_FOR_SUITE:
            raise ProtocolError(f"unsupported cipher suite {request.cipher_suite}")
    except ProtocolError as error:
        emit(EVENT_FAILURE, kind=WorkerFailure.ERROR.value, detail=str(error))
        return 2
    # SIGALRM's default action ends the process even while pyghmi blocks in C.
    signal.setitimer(signal.ITIMER_REAL, request.budget + SELF_KILL_GRACE)
    try:
        session = FenceSession(request, emit)
    except LoginFailed as failure:
        emit(EVENT_FAILURE, kind=failure.kind.value, detail=f"login failed: {failure}")
        return 0
    except Exception as error:  # pyghmi raises non-IPMI errors too (struct.error, measured)
        emit(EVENT_FAILURE, kind=WorkerFailure.ERROR.value, detail=f"login failed: {error!r}")
        return 0
    emit(EVENT_LOGGED_IN)
    try:
        run_operation(session, request.operation, emit)
    except Exception as error:
        emit(EVENT_FAILURE, kind=WorkerFailure.ERROR.value, detail=repr(error))
    finally:
        try:
            session.logout()  # BMCs have few session slots; do not wait for them to expire
        except Exception:
            pass  # the result is already reported; a failed logout changes nothing
    return 0


if __name__ == "__main__":
    sys.exit(main())
