"""A BMC for tests and the demo: pyghmi's server-side BMC on a loopback UDP port, fixed so
that pyghmi's own client can use it, with faults switchable while it runs.

    python -m stonewall.lab.bmc --port P --user U --password-file F --state-file S
        [--control-file C] [--on-power-off-kill-pgid PGID] [--delay SECONDS] [--mute]
        [--off-lag SECONDS] [--status-error CODE] [--control-error CODE]
        [--initial-power on|off]
        [--max-privilege LEVEL] [--address 127.0.0.1]

`--port 0` binds a free port; the port in use is published in the state file, which is
written once the socket is bound (that is the readiness signal) and after every change of
power. See docs/power.md ("The lab BMC") for the files and the faults.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from pyghmi.ipmi import bmc as pyghmi_bmc
from pyghmi.ipmi.private import constants as pyghmi_constants
from pyghmi.ipmi.private import serversession as pyghmi_serversession
from pyghmi.ipmi.private import session as pyghmi_session

from stonewall.lab.bmc_files import (
    BmcBehaviour, BmcFileError, BmcState, load_behaviour, save_state)
from stonewall.power.ipmi import PRIVILEGE_LEVELS
from stonewall.power.protocol import PowerState

# Suite 3 = RAKP-HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128 (IPMI 2.0 table 22-19), the only
# one pyghmi's server can speak.
SUITE_3_ALGORITHMS = (1, 1, 1)
# RMCP+ status codes, IPMI 2.0 table 13-15.
RMCP_UNAUTHORIZED_ROLE = 0x0A
RMCP_UNAUTHORIZED_NAME = 0x0D
RMCP_NO_CIPHER_SUITE_MATCH = 0x11
CC_INSUFFICIENT_PRIVILEGE = 0xD4  # completion code, table 5-2
OPERATOR = PRIVILEGE_LEVELS["operator"]
# How often the loop looks at a pending power-off when no packet arrives.
TICK = 0.05


class LabSession(pyghmi_serversession.ServerSession):
    """pyghmi's RMCP+ server session with the answers a real BMC gives and it omits."""

    bmc: "LabBmc"

    def _handle_ipmi_packet(self, data: Any, sockaddr: Any = None, qent: Any = None) -> Any:
        if self.bmc.admit():
            return super()._handle_ipmi_packet(data, sockaddr=sockaddr, qent=qent)
        return None

    def create_open_session_response(self, request: Any) -> bytearray:
        request = bytearray(request)
        # Payload offsets 12/20/28 hold the proposed auth/integrity/confidentiality
        # algorithms (table 13-9). pyghmi's server accepts any proposal and then speaks
        # suite 3 regardless; pyghmi's client proposes 17 first and crashes on the mismatch
        # (reference ipmi.md). Refusing lets every client fall back to suite 3.
        proposal = tuple(request[offset] & 0x3F for offset in (12, 20, 28)) \
            if len(request) >= 32 else ()
        if proposal != SUITE_3_ALGORITHMS:
            return bytearray([request[0], RMCP_NO_CIPHER_SUITE_MATCH, 0, 0]) + request[4:8]
        return super().create_open_session_response(request)

    def _got_rakp1(self, data: Any) -> None:
        # RAKP1 (table 13-11): [24] requested maximum privilege (low nibble), [27] name
        # length, [28:] name. pyghmi's server stays silent for an unknown user, which makes
        # clients retry forever; a real BMC answers RAKP2 with an error status.
        name = bytes(data[28:28 + data[27]]).decode(errors="replace")
        requested = data[24] & 0x0F
        if name not in self.authdata:
            return self._refuse_rakp1(data, RMCP_UNAUTHORIZED_NAME)
        if requested > self.bmc.max_privilege:
            return self._refuse_rakp1(data, RMCP_UNAUTHORIZED_ROLE)
        return super()._got_rakp1(data)

    def _refuse_rakp1(self, data: Any, status: int) -> None:
        # An error RAKP2 carries only the tag, the status and the console's session id.
        self.send_payload(bytearray([data[0], status, 0, 0]) + self.clientsessionid,
                          pyghmi_constants.payload_types["rakp2"], retry=False)


class LabBmc(pyghmi_bmc.Bmc):
    """One node's BMC: a power state, a state file, and faults read from a control file."""

    def __init__(self, address: str, port: int, user: str, password: str,
                 state_file: Path, control_file: Path | None, default_behaviour: BmcBehaviour,
                 initial_power: PowerState, max_privilege: int,
                 kill_pgid: int | None) -> None:
        super().__init__({user: password}, port=port, address=address)
        # With port 0 the kernel picked one; pyghmi routes sessions by the bound port.
        self.port = self.serversocket.getsockname()[1]
        self.max_privilege = max_privilege
        self.state_file = state_file
        self.control_file = control_file
        self.default_behaviour = default_behaviour
        self.kill_pgid = kill_pgid
        self.off_due: float | None = None  # monotonic time a pending power-off completes
        self.state = BmcState(pid=os.getpid(), port=self.port, power=initial_power,
                              power_changed_at=time.time())
        save_state(self.state_file, self.state)

    # -- faults ---------------------------------------------------------------------------
    def behaviour(self) -> BmcBehaviour:
        if self.control_file is None or not self.control_file.exists():
            return self.default_behaviour
        try:
            return load_behaviour(self.control_file)
        except (BmcFileError, OSError) as error:
            print(f"lab bmc: ignoring control file: {error}", file=sys.stderr)
            return self.default_behaviour

    def admit(self) -> bool:
        """Whether to handle the packet that just arrived (after the configured delay)."""
        behaviour = self.behaviour()
        if behaviour.mute:
            return False
        if behaviour.delay:
            time.sleep(behaviour.delay)
        return True

    # -- packet entry points --------------------------------------------------------------
    def sessionless_data(self, data: Any, sockaddr: Any) -> None:
        if not self.admit():
            return
        data = bytearray(data)
        # RMCP (class IPMI), auth type 6 = RMCP+, payload 0x10 = Open Session Request: start
        # a session of our own class (pyghmi's IpmiServer would hard-wire its own).
        if (len(data) >= 22 and data[0] == 6 and data[2:4] == b"\xff\x07"
                and data[4] == 6 and data[5] == 0x10):
            LabSession(self.authdata, self.kg, sockaddr, self.serversocket, data[16:],
                       self.uuid, bmc=self)
            return
        super().sessionless_data(data, sockaddr)

    def get_chassis_status(self, session: Any) -> None:
        code = self.behaviour().status_error
        if code:
            session.send_ipmi_response(code=code)
        else:
            super().get_chassis_status(session)

    def control_chassis(self, request: Any, session: Any) -> None:
        # Chassis Control needs operator privilege (IPMI 2.0 appendix G); pyghmi's server
        # grants anything, a real BMC answers 0xd4.
        refusal = self.behaviour().control_error
        if getattr(session, "clientpriv", session.maxpriv) < OPERATOR:
            session.send_ipmi_response(code=CC_INSUFFICIENT_PRIVILEGE)
        elif refusal:
            session.send_ipmi_response(code=refusal)
        else:
            super().control_chassis(request, session)

    # -- the machine ----------------------------------------------------------------------
    def get_power_state(self) -> str:
        self.settle()
        return self.state.power.value

    def power_off(self) -> None:
        """Hard power down; the power goes `off_lag` seconds later (a slow PSU)."""
        self._update(off_commands=self.state.off_commands + 1)
        if self.state.power is PowerState.ON and self.off_due is None:
            self.off_due = time.monotonic() + self.behaviour().off_lag
        self.settle()

    def power_on(self) -> None:
        self.off_due = None
        self._update(on_commands=self.state.on_commands + 1)
        if self.state.power is not PowerState.ON:
            self._update(power=PowerState.ON, power_changed_at=time.time())

    def settle(self) -> None:
        """Complete a pending power-off whose time has come."""
        if self.off_due is None or time.monotonic() < self.off_due:
            return
        self.off_due = None
        self._update(power=PowerState.OFF, power_changed_at=time.time())
        self._kill_node()

    def _kill_node(self) -> None:
        if self.kill_pgid is None:
            return
        try:
            os.killpg(self.kill_pgid, signal.SIGKILL)
        except OSError as error:
            self._update(killed_pgid=self.kill_pgid, kill_error=str(error))
        else:
            self._update(killed_pgid=self.kill_pgid, killed_at=time.time())

    def _update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        save_state(self.state_file, self.state)

    def serve_forever(self) -> None:
        while True:
            pyghmi_session.Session.wait_for_rsp(TICK)
            self.settle()


def completion_code(text: str) -> int:
    """An IPMI completion code given as 0xd5 or 213."""
    return int(text, 0)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stonewall.lab.bmc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="UDP port; 0 for a free one")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--control-file", type=Path)
    parser.add_argument("--on-power-off-kill-pgid", type=int, dest="kill_pgid")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--mute", action="store_true")
    parser.add_argument("--off-lag", type=float, default=0.0)
    parser.add_argument("--status-error", type=completion_code, default=0,
                        help="answer Get Chassis Status with this completion code")
    parser.add_argument("--control-error", type=completion_code, default=0,
                        help="answer Chassis Control with this code, without obeying")
    parser.add_argument("--initial-power", choices=("on", "off"), default="on")
    parser.add_argument("--max-privilege", choices=tuple(PRIVILEGE_LEVELS),
                        default="administrator")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        password = args.password_file.read_text().rstrip("\n")
        behaviour = BmcBehaviour(mute=args.mute, delay=args.delay, off_lag=args.off_lag,
                                 status_error=args.status_error,
                                 control_error=args.control_error)
    except (OSError, BmcFileError) as error:
        print(f"lab bmc: {error}", file=sys.stderr)
        return 2
    bmc = LabBmc(args.address, args.port, args.user, password, args.state_file,
                 args.control_file, behaviour, PowerState(args.initial_power),
                 PRIVILEGE_LEVELS[args.max_privilege], args.kill_pgid)
    bmc.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
