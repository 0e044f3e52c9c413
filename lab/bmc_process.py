"""Run a lab BMC (`stonewall.lab.bmc`) as a separate process, for fixtures and the demo.

pyghmi's server and client share one process-global event loop, and a BMC in a thread of
the client's process hung in 3 of 3 runs (reference ipmi.md), hence a process of its own.
It is started on a free port, waited for with a deadline, and stopped by its PID.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from stonewall.clock import SYSTEM_CLOCK, Clock, Deadline
from stonewall.config.model import IpmiSettings, Secret
from stonewall.lab.bmc_files import (
    BmcBehaviour, BmcFileError, BmcState, load_state, save_behaviour)
from stonewall.lab.identities import BMC_PASSWORD
from stonewall.power.protocol import PowerState

POLL = 0.02
LOG_TAIL = 2000


class BmcStartError(RuntimeError):
    """The lab BMC did not come up (its log tail is in the message)."""


class BmcProcess:
    """One lab BMC process and its files under `workdir`."""

    def __init__(self, workdir: Path, user: str = "admin", password: str = BMC_PASSWORD,
                 initial_power: PowerState = PowerState.ON,
                 behaviour: BmcBehaviour = BmcBehaviour(),
                 max_privilege: str = "administrator", kill_pgid: int | None = None,
                 host: str = "127.0.0.1", clock: Clock = SYSTEM_CLOCK,
                 netns: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.user = user
        self.password = password
        self.initial_power = initial_power
        self.max_privilege = max_privilege
        self.kill_pgid = kill_pgid
        self.host = host
        self.netns = netns  # run inside this network namespace, on its address `host`
        self.clock = clock
        self.password_file = self.workdir / "bmc.password"
        self.state_file = self.workdir / "bmc.state.json"
        self.control_file = self.workdir / "bmc.control.json"
        self.log_file = self.workdir / "bmc.log"
        self._behaviour = behaviour
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0

    # -- life cycle -----------------------------------------------------------------------
    def start(self, ready_within: float = 10.0) -> "BmcProcess":
        """Start the BMC and wait until its socket is bound (state file written)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (self.state_file, self.control_file):
            stale.unlink(missing_ok=True)
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(self.password)
        behaviour = self._behaviour
        command = [sys.executable, "-m", "stonewall.lab.bmc", "--address", self.host,
                   "--port", "0", "--user", self.user,
                   "--password-file", str(self.password_file),
                   "--state-file", str(self.state_file),
                   "--control-file", str(self.control_file),
                   "--delay", str(behaviour.delay), "--off-lag", str(behaviour.off_lag),
                   "--status-error", str(behaviour.status_error),
                   "--control-error", str(behaviour.control_error),
                   "--initial-power", self.initial_power.value,
                   "--max-privilege", self.max_privilege]
        if behaviour.mute:
            command.append("--mute")
        if self.kill_pgid is not None:
            command += ["--on-power-off-kill-pgid", str(self.kill_pgid)]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]  # it execs: same PID
        with open(self.log_file, "ab") as log:
            # A session of its own: a signal to the test's process group leaves it alone.
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(Deadline.after(ready_within, self.clock))
        return self

    def _wait_ready(self, deadline: Deadline) -> None:
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                self.stop()
                raise BmcStartError(f"lab BMC exited with {self._process.returncode}: "
                                    f"{self.log_tail()}")
            try:
                state = load_state(self.state_file)
            except (FileNotFoundError, BmcFileError):
                state = None  # not written yet
            if state is not None and state.pid == self._process.pid:
                self._port = state.port
                return
            if deadline.expired():
                self.stop()
                raise BmcStartError(f"lab BMC not ready in time: {self.log_tail()}")
            self.clock.sleep(POLL)

    def stop(self, within: float = 5.0) -> None:
        """SIGTERM by PID, SIGKILL if it has not exited `within` seconds; idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=within)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=within)

    def __enter__(self) -> "BmcProcess":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    # -- what tests look at ---------------------------------------------------------------
    @property
    def pid(self) -> int:
        if self._process is None:
            raise BmcStartError("lab BMC is not running")
        return self._process.pid

    @property
    def port(self) -> int:
        if not self._port:
            raise BmcStartError("lab BMC has not been started")
        return self._port

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def state(self) -> BmcState:
        return load_state(self.state_file)

    def log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-LOG_TAIL:]
        except OSError:
            return "(no log)"

    def settings(self, **overrides: object) -> IpmiSettings:
        """IpmiSettings that reach this BMC (password from its password file)."""
        base = IpmiSettings(address=self.host, port=self.port, username=self.user,
                            password=Secret(file=str(self.password_file)))
        return replace(base, **overrides)

    # -- faults, applied from the BMC's next packet on ------------------------------------
    @property
    def behaviour(self) -> BmcBehaviour:
        return self._behaviour

    def set_behaviour(self, behaviour: BmcBehaviour) -> None:
        self._behaviour = behaviour
        save_behaviour(self.control_file, behaviour)

    def set_mute(self, mute: bool = True) -> None:
        self.set_behaviour(replace(self._behaviour, mute=mute))

    def set_delay(self, seconds: float) -> None:
        self.set_behaviour(replace(self._behaviour, delay=seconds))

