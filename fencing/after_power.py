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

from dataclasses import dataclass
from typing import Any

from stonewall.clock import Deadline
from stonewall.holder.api import (Holder, HolderFailure, HolderRefused, HolderUnavailable,
                                  StorageFenceOutcome)


@dataclass(frozen=True)
class AfterPowerPreempt:
    """Whether the powered-off peer's key is verified gone on every LUN, and what is left."""

    peer: str
    done: bool
    left: tuple[str, ...] = ()  # one phrase per LUN still to do
    error: str = ""  # the holder could not be asked, or refused
    answer: StorageFenceOutcome | None = None

    def describe(self) -> str:
        if self.done:
            return f"{self.peer}'s key preempted and verified gone on every LUN"
        what = self.error or "; ".join(self.left) or "the holder did not prove it"
        return (f"{self.peer} is off, but its key is not verified gone everywhere ({what}); "
                f"left to do: `stonewall vm takeover {self.peer} --power-off-verified` "
                "preempts it again")

    def details(self) -> dict[str, Any]:
        answer = self.answer.to_jsonable() if self.answer is not None else {}
        return {"left": list(self.left), "error": self.error,
                "preempt": answer.get("preempt"), "verification": answer.get("verification")}


def preempt_after_power(holder: Holder, peer: str, deadline: Deadline) -> AfterPowerPreempt:
    """Preempt `peer`'s key on every LUN and read the evidence back; never raises for the
    holder's sake (fenced is recomputed from the per-LUN evidence: StorageFenceOutcome.fenced)."""
    try:
        answer = holder.preempt(peer, None, deadline)
    except HolderUnavailable as err:
        return AfterPowerPreempt(peer, False, error=f"holder unavailable: {err}")
    except HolderRefused as err:
        return AfterPowerPreempt(peer, False, error=f"holder refused: {err}")
    except HolderFailure as err:
        return AfterPowerPreempt(peer, False, error=f"holder not trusted: {err}")
    if answer.fenced:
        return AfterPowerPreempt(peer, True, answer=answer)
    return AfterPowerPreempt(peer, False, tuple(answer.shortfall()), answer=answer)
