"""The values that cross the holder's socket: facts go over and come back equal; verdicts are
never sent and are recomputed from the facts; a malformed answer is refused, not guessed."""
from __future__ import annotations

import json

import pytest

from stonewall.holder.api import StorageFenceOutcome, HolderState, JoinOutcome, PathState
from stonewall.holder.protocol import encode
from stonewall.storage.reports import (
    LunCheck, LunFence, PathOutcome, PreemptReport, Report, VerifyReport)
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.scsi.types import ReservationType
from stonewall.storage.view import LunView, PathView
from stonewall.wire import WireFormatError

LUNS = ("arbiter0", "data0")


def outcome(checks: tuple[LunCheck, ...]) -> StorageFenceOutcome:
    preempt = PreemptReport([LunFence(lun, "preempt", "127.0.0.1:3260", True) for lun in LUNS])
    return StorageFenceOutcome("node-a", LUNS, preempt, VerifyReport(LUNS, checks))


def proven(lun: str) -> LunCheck:
    return LunCheck(lun, True, 2, ())


def over_the_socket(value):
    """What the receiving side rebuilds from the line the holder writes."""
    return type(value).from_json(json.loads(encode({"result": value}))["result"])


def test_every_value_comes_back_equal():
    view = LunView("arbiter0", (PathView("p0", (1, 2), Reservation(5, 2, ReservationType(5))),
                                PathView("p1", None, None, "TransportError: gone")))
    join = JoinOutcome(Report([PathOutcome("data0", "p0", True, "registered")]),
                       Report([PathOutcome("data0", "-", False, "no path answered")]))
    state = HolderState("node-b", 0x5357000000000002, "boot-1", False, True,
                        (PathState("data0", "p0", True, True, None),))
    for value in (view, join, state, outcome((proven("arbiter0"), proven("data0")))):
        assert over_the_socket(value) == value


def test_no_verdict_is_sent():
    sent = json.loads(encode({"result": outcome((proven("arbiter0"), proven("data0")))}))
    fence = sent["result"]
    assert set(fence) == {"victim", "luns", "preempt", "verification"}  # no "fenced"
    assert set(fence["preempt"]) == {"luns", "lost_race", "lost_detail"}  # no "ok"
    assert set(fence["verification"]) == {"luns", "checks"}  # no "proven"
    join = JoinOutcome(Report([PathOutcome("data0", "p0", True, "registered")]), Report())
    assert set(join.to_jsonable()) == {"registered", "reserved"}  # no "ok"
    assert set(join.to_jsonable()["registered"]) == {"outcomes", "unit_attentions"}


@pytest.mark.parametrize("checks, fenced", [
    ((proven("arbiter0"), proven("data0")), True),
    ((), False),  # no evidence at all
    ((proven("arbiter0"),), False),  # data0 has no check
    ((proven("arbiter0"), LunCheck("data0", True, 0, ("p0", "p1"))), False),  # nobody answered
    ((proven("arbiter0"), LunCheck("data0", False, 2, ())), False),  # key still there
    ((proven("arbiter0"), proven("data9")), False),  # evidence for a LUN not asked about
])
def test_fenced_is_recomputed_from_the_per_lun_evidence(checks, fenced):
    assert over_the_socket(outcome(checks)).fenced is fenced


def test_a_lost_race_or_a_failed_preempt_is_never_fenced():
    evidence = (proven("arbiter0"), proven("data0"))
    lost = outcome(evidence)
    lost.preempt.lost_race = True
    failed = outcome(evidence)
    failed.preempt.luns[1] = LunFence("data0", "failed", "-", False, "TargetBusy")
    assert not over_the_socket(lost).fenced and not over_the_socket(failed).fenced
    assert over_the_socket(failed).shortfall() == ["data0: failed TargetBusy"]


@pytest.mark.parametrize("document, fragment", [
    ({"victim": "node-a", "luns": ["arbiter0"], "preempt": {"luns": [], "lost_race": "no"},
      "verification": {"luns": [], "checks": []}}, "'lost_race' must be bool"),
    ({"victim": "node-a", "luns": [1], "preempt": {"luns": [], "lost_race": False},
      "verification": {"luns": [], "checks": []}}, "list of strings"),
    ({"victim": "node-a", "luns": ["data0"], "preempt": {"luns": [], "lost_race": False},
      "verification": {"luns": ["data0"], "checks": [
          {"lun": "data0", "verdict": "yes", "paths_up": 1, "paths_down": []}]}},
     "verdict must be true, false or null"),
    ({"victim": "node-a", "luns": ["data0"], "preempt": {"luns": [], "lost_race": False},
      "verification": {"luns": ["data0"], "checks": [
          {"lun": "data0", "verdict": True, "paths_up": True, "paths_down": []}]}},
     "not a boolean"),
    ({"fenced": True, "verification": {"checks": []}}, "missing 'victim'"),
])
def test_a_malformed_answer_is_refused(document, fragment):
    with pytest.raises(WireFormatError, match=fragment):
        StorageFenceOutcome.from_json(document)
