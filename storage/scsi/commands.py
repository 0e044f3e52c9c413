"""Persistent reservations of one LUN over one CDB transport (one I_T nexus).

Each command is written once, as an operation of CDB exchanges (`CommandPrSteps`, see
steps.py); `CommandPrDevice` runs it at once, and a batch runs many together."""
from __future__ import annotations

from stonewall.clock import Deadline
from stonewall.storage.scsi import cdb
from stonewall.storage.scsi.device import CommandTransport
from stonewall.storage.scsi.errors import TruncatedResponse
from stonewall.storage.scsi.responses import (
    Capabilities, FullStatus, Keys, Reservation, needed_length, parse_read_full_status,
    parse_read_keys, parse_read_reservation, parse_report_capabilities)
from stonewall.storage.scsi.status import raise_for_status
from stonewall.storage.scsi.steps import Exchange, Steps, run_one
from stonewall.storage.scsi.types import PrInAction, PrOutAction, ReservationType

# Room for 63 keys: one round trip for any sane cluster; larger answers are re-read.
DEFAULT_ALLOCATION_LENGTH = 512
MAX_ALLOCATION_LENGTH = 0xFFFF


class CommandPrSteps:
    """The PR commands of one LUN through one CommandTransport, as operations."""

    def __init__(self, transport: CommandTransport,
                 first_allocation_length: int = DEFAULT_ALLOCATION_LENGTH) -> None:
        self.transport = transport
        self.first_allocation_length = first_allocation_length

    def _pr_in(self, action: PrInAction) -> Steps[bytes]:
        """PR IN, re-read once with the length the target asked for when the first answer
        did not fit: a truncated key list must never pass for the whole one."""
        what = f"PR IN {action.name} on {self.transport.path_name}"
        length = self.first_allocation_length
        while True:
            result = yield Exchange(self.transport, cdb.pr_in(action, length),
                                    data_in_length=length)
            raise_for_status(result, what)
            if action is PrInAction.REPORT_CAPABILITIES:
                return result.data
            wanted = needed_length(result.data)
            if wanted <= len(result.data):
                return result.data
            if length >= MAX_ALLOCATION_LENGTH or wanted > MAX_ALLOCATION_LENGTH:
                raise TruncatedResponse(
                    f"{what}: the answer needs {wanted} bytes, more than one PR IN can carry")
            length = wanted

    def _pr_out(self, action: PrOutAction, *, rtype: ReservationType | None = None,
                key: int = 0, service_action_key: int = 0, all_tg_pt: bool = False,
                aptpl: bool = False) -> Steps[None]:
        parameters = cdb.pr_out_parameters(key, service_action_key, all_tg_pt=all_tg_pt,
                                           aptpl=aptpl)
        result = yield Exchange(self.transport, cdb.pr_out(action, rtype, len(parameters)),
                                data_out=parameters)
        raise_for_status(result, f"PR OUT {action.name} on {self.transport.path_name}")

    def read_keys(self) -> Steps[Keys]:
        return parse_read_keys((yield from self._pr_in(PrInAction.READ_KEYS)))

    def read_reservation(self) -> Steps[Reservation]:
        return parse_read_reservation((yield from self._pr_in(PrInAction.READ_RESERVATION)))

    def report_capabilities(self) -> Steps[Capabilities]:
        return parse_report_capabilities(
            (yield from self._pr_in(PrInAction.REPORT_CAPABILITIES)))

    def read_full_status(self) -> Steps[FullStatus]:
        return parse_read_full_status((yield from self._pr_in(PrInAction.READ_FULL_STATUS)))

    def register(self, key: int, new_key: int, *, ignore_existing: bool = False,
                 all_tg_pt: bool = False, aptpl: bool = False) -> Steps[None]:
        action = (PrOutAction.REGISTER_AND_IGNORE_EXISTING_KEY if ignore_existing
                  else PrOutAction.REGISTER)
        return self._pr_out(action, key=0 if ignore_existing else key,
                            service_action_key=new_key, all_tg_pt=all_tg_pt, aptpl=aptpl)

    def reserve(self, key: int, rtype: ReservationType) -> Steps[None]:
        return self._pr_out(PrOutAction.RESERVE, rtype=rtype, key=key)

    def release(self, key: int, rtype: ReservationType) -> Steps[None]:
        return self._pr_out(PrOutAction.RELEASE, rtype=rtype, key=key)

    def clear(self, key: int) -> Steps[None]:
        return self._pr_out(PrOutAction.CLEAR, key=key)

    def preempt(self, key: int, victim_key: int, rtype: ReservationType, *,
                abort: bool = False) -> Steps[None]:
        action = PrOutAction.PREEMPT_AND_ABORT if abort else PrOutAction.PREEMPT
        return self._pr_out(action, rtype=rtype, key=key, service_action_key=victim_key)


class CommandPrDevice:
    """PrDevice built from CDBs sent through any CommandTransport."""

    def __init__(self, transport: CommandTransport,
                 first_allocation_length: int = DEFAULT_ALLOCATION_LENGTH) -> None:
        self.transport = transport
        self.first_allocation_length = first_allocation_length

    @property
    def path_name(self) -> str:
        return self.transport.path_name

    def pr_steps(self) -> CommandPrSteps:
        """The same commands as operations, for a batch (steps.py)."""
        return CommandPrSteps(self.transport, self.first_allocation_length)

    def read_keys(self, deadline: Deadline) -> Keys:
        return run_one(self.pr_steps().read_keys(), deadline)

    def read_reservation(self, deadline: Deadline) -> Reservation:
        return run_one(self.pr_steps().read_reservation(), deadline)

    def report_capabilities(self, deadline: Deadline) -> Capabilities:
        return run_one(self.pr_steps().report_capabilities(), deadline)

    def read_full_status(self, deadline: Deadline) -> FullStatus:
        return run_one(self.pr_steps().read_full_status(), deadline)

    def register(self, key: int, new_key: int, deadline: Deadline, *,
                 ignore_existing: bool = False, all_tg_pt: bool = False,
                 aptpl: bool = False) -> None:
        run_one(self.pr_steps().register(key, new_key, ignore_existing=ignore_existing,
                                         all_tg_pt=all_tg_pt, aptpl=aptpl), deadline)

    def reserve(self, key: int, rtype: ReservationType, deadline: Deadline) -> None:
        run_one(self.pr_steps().reserve(key, rtype), deadline)

    def release(self, key: int, rtype: ReservationType, deadline: Deadline) -> None:
        run_one(self.pr_steps().release(key, rtype), deadline)

    def clear(self, key: int, deadline: Deadline) -> None:
        run_one(self.pr_steps().clear(key), deadline)

    def preempt(self, key: int, victim_key: int, rtype: ReservationType, deadline: Deadline,
                *, abort: bool = False) -> None:
        run_one(self.pr_steps().preempt(key, victim_key, rtype, abort=abort), deadline)
