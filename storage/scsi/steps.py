"""An operation written once, as a generator of steps, and run either alone or batched.

A persistent-reservation operation (READ KEYS, a PREEMPT with its retries, a LUN's whole
preempt) yields its I/O as steps and gets each answer back (or has its error thrown in):
- `Exchange`: one CDB through one transport;
- `Blocking`: a call that blocks until done (an sg_persist process, an SG_IO ioctl, a login,
  a back-off sleep), given the operation's deadline.

`run_one` drives one operation here and now (the synchronous PrDevice methods do). The
batch loop (`batch.run_all`) drives many at once: every iSCSI exchange of every operation
on one poll() loop, so a phase of a fence is one batch instead of one thread per path."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, Protocol, TypeVar, Union

from stonewall.clock import Deadline
from stonewall.storage.scsi.device import CommandResult, CommandTransport, PrDevice
from stonewall.storage.scsi.responses import Keys, Reservation
from stonewall.storage.scsi.types import ReservationType

T = TypeVar("T")


@dataclass(frozen=True)
class Exchange:
    """One CDB through `transport`; the operation receives its CommandResult."""

    transport: CommandTransport
    cdb: bytes
    data_out: bytes | None = None
    data_in_length: int = 0

    def execute(self, deadline: Deadline) -> CommandResult:
        return self.transport.execute(self.cdb, deadline, data_out=self.data_out,
                                      data_in_length=self.data_in_length)


@dataclass(frozen=True)
class Blocking:
    """A call that blocks; the operation receives what it returns."""

    call: Callable[[Deadline], Any]


Step = Union[Exchange, Blocking]
Steps = Generator[Step, Any, T]


def run_one(steps: Steps[T], deadline: Deadline) -> T:
    """Drive one operation to its end in this thread; its result, or its exception."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            value = step.execute(deadline) if isinstance(step, Exchange) else step.call(deadline)
        except Exception as exc:  # handed to the operation, which decides
            error = exc


def blocking(call: Callable[[Deadline], T]) -> Steps[T]:
    """`call` as an operation of one Blocking step."""
    return (yield Blocking(call))  # type: ignore[no-any-return]


class PrSteps(Protocol):
    """The persistent-reservation commands a batched phase sends, as operations on one path
    (the same semantics as the PrDevice methods of the same names)."""

    def read_keys(self) -> Steps[Keys]: ...

    def read_reservation(self) -> Steps[Reservation]: ...

    def register(self, key: int, new_key: int, *, ignore_existing: bool = False,
                 all_tg_pt: bool = False) -> Steps[None]: ...

    def preempt(self, key: int, victim_key: int, rtype: ReservationType, *,
                abort: bool = False) -> Steps[None]: ...


class BlockingPrSteps:
    """PrSteps of a device that only has blocking calls (sg_persist processes): each
    command is one Blocking step, run on a worker when batched."""

    def __init__(self, device: PrDevice) -> None:
        self.device = device

    def read_keys(self) -> Steps[Keys]:
        return blocking(self.device.read_keys)

    def read_reservation(self) -> Steps[Reservation]:
        return blocking(self.device.read_reservation)

    def register(self, key: int, new_key: int, *, ignore_existing: bool = False,
                 all_tg_pt: bool = False) -> Steps[None]:
        return blocking(lambda d: self.device.register(
            key, new_key, d, ignore_existing=ignore_existing, all_tg_pt=all_tg_pt))

    def preempt(self, key: int, victim_key: int, rtype: ReservationType, *,
                abort: bool = False) -> Steps[None]:
        return blocking(lambda d: self.device.preempt(key, victim_key, rtype, d, abort=abort))


def steps_of(device: PrDevice) -> PrSteps:
    """The device's commands as operations: CDB exchanges where the device builds CDBs
    (`CommandPrDevice.pr_steps`), else blocking calls."""
    own = getattr(device, "pr_steps", None)
    return own() if callable(own) else BlockingPrSteps(device)
