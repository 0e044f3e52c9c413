"""An `agent` or `fabric` level: drive every device of the peer's device group off at once,
and verify the level only when every one of them read back off.

All devices are required: a node with two power supplies on two PDUs is off only when both
outlets are (the seed's dual-PSU case), and a node with two SAN ports is cut off only when
both are down. They run in parallel, so the level takes as long as its slowest device, and a
mute PDU costs the level's deadline, not one deadline per device. Nothing here powers anything
back on: a device that went off while its twin did not stays off, and the operator decides.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stonewall.clock import Clock, Deadline
from stonewall.config.model import AgentDevice, Node
from stonewall.config.secrets import SecretError, read_secret
from stonewall.power.agent import (
    AgentAction, DeviceFailure, DeviceResult, Runner, drive_device)
from stonewall.process import run_process
from stonewall.bounded import Abandoned, map_bounded


@dataclass(frozen=True)
class GroupResult:
    """What driving a node's device group did, device by device."""

    node: str
    group: str
    target: AgentAction
    devices: tuple[DeviceResult, ...]
    elapsed: float

    @property
    def verified(self) -> bool:
        """Every device of the group read back `target` (an empty group proves nothing)."""
        return bool(self.devices) and all(device.verified for device in self.devices)

    def summary(self) -> str:
        if not self.devices:
            return f"{self.node} has no devices in group {self.group}"
        done = sum(device.verified for device in self.devices)
        state = f"all {len(self.devices)} devices" if self.verified else \
            f"{done} of {len(self.devices)} devices"
        return (f"{self.group}: {state} verified {self.target.value} in {self.elapsed:.2f} s: "
                + "; ".join(device.summary() for device in self.devices))


# group_off(peer, group, deadline) -> GroupResult; the topology's adapter for these levels.
GroupOff = Callable[[Node, str, Deadline], GroupResult]


def drive_group(node: Node, group: str, target: AgentAction, deadline: Deadline,
                clock: Clock, environ: Mapping[str, str], runner: Runner = run_process
                ) -> GroupResult:
    """Drive every device of `node`'s `group` to `target` in parallel, each under
    `deadline`; never raises for one device's failure."""
    start = clock.monotonic()
    devices = node.devices(group)

    def one(device: AgentDevice) -> DeviceResult:
        try:
            secret = read_secret(device.secret, environ) if device.secret else None
        except SecretError as err:
            return DeviceResult(device.label, target, False, DeviceFailure.NO_SECRET, (), 0.0,
                                str(err))
        return drive_device(device, target, secret, deadline, clock, runner)

    answers = map_bounded(one, devices, deadline)
    results = tuple(_as_result(device, target, answer)
                    for device, answer in zip(devices, answers))
    return GroupResult(node.name, group, target, results, clock.monotonic() - start)


def _as_result(device: AgentDevice, target: AgentAction,
               answer: DeviceResult | BaseException) -> DeviceResult:
    if isinstance(answer, DeviceResult):
        return answer
    failure = DeviceFailure.TIMEOUT if isinstance(answer, Abandoned) else DeviceFailure.REFUSED
    return DeviceResult(device.label, target, False, failure, (), 0.0,
                        f"{type(answer).__name__}: {answer}")


def agent_group_off(clock: Clock, environ: Mapping[str, str],
                    runner: Runner = run_process) -> GroupOff:
    """The production adapter: a verified off of any node's device group."""

    def group_off(node: Node, group: str, deadline: Deadline) -> GroupResult:
        return drive_group(node, group, AgentAction.OFF, deadline, clock, environ, runner)

    return group_off
