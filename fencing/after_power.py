"""Storage after power: preempt a powered-off peer's key on every LUN (DESIGN 4.4).

A fence that only a power level verified leaves the dead peer's key registered everywhere,
and a start of its guests here is refused while another node's key is on their LUNs. Once
its power is verified off, the peer cannot race us, so its key is preempted through this
node's holder on every configured LUN (guest LUNs included: the holder's preempt without a
LUN list covers them all). When the SAN does not answer, nothing is retried here: the
outcome says which LUNs still hold the key, the fence stands (the peer is off), and
`stonewall vm takeover` preempts again when asked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from stonewall.clock import Deadline
from stonewall.holder.client import HolderError, HolderUnavailable, storage_shortfall


class Preempter(Protocol):
    """The node's holder (stonewall.holder.client.HolderClient)."""

    def preempt(self, victim_node: str, lun_names: list[str] | None,
                deadline: Deadline) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AfterPowerPreempt:
    """Whether the powered-off peer's key is verified gone on every LUN, and what is left."""

    peer: str
    done: bool
    left: tuple[str, ...] = ()  # one phrase per LUN still to do
    error: str = ""  # the holder could not be asked, or refused
    answer: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.done:
            return f"{self.peer}'s key preempted and verified gone on every LUN"
        what = self.error or "; ".join(self.left) or "the holder did not prove it"
        return (f"{self.peer} is off, but its key is not verified gone everywhere ({what}); "
                f"left to do: `stonewall vm takeover {self.peer} --power-off-verified` "
                "preempts it again")

    def details(self) -> dict[str, Any]:
        return {"left": list(self.left), "error": self.error,
                "preempt": self.answer.get("preempt"),
                "verification": self.answer.get("verification")}


def preempt_after_power(holder: Preempter, peer: str, deadline: Deadline) -> AfterPowerPreempt:
    """Preempt `peer`'s key on every LUN and read the evidence back; never raises."""
    try:
        answer = holder.preempt(peer, None, deadline)
    except HolderUnavailable as err:
        return AfterPowerPreempt(peer, False, error=f"holder unavailable: {err}")
    except HolderError as err:
        return AfterPowerPreempt(peer, False, error=f"holder refused: {err}")
    if answer.get("fenced") is True:
        return AfterPowerPreempt(peer, True, answer=answer)
    return AfterPowerPreempt(peer, False, tuple(storage_shortfall(answer)), answer=answer)
