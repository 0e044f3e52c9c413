"""The opt-in wait-t-safe level against tgtd: one LUN of the resource is unreachable, so the
storage level cannot verify, but the peer's key is gone from the arbiter LUN, which the
peer's watchdog checks: after T_safe it has reset itself, and DRBD gets 5 ("peer is
unreachable, assumed dead"), which outdates the peer only while our disk is UpToDate."""
from __future__ import annotations

from typing import Any

import pytest

from stonewall.eventlog import read_events
from stonewall.lab.identities import ARRAY_IQN
from stonewall.lab.tgtd import Tgtd
from stonewall.config.timing import t_safe

from ..lab_fixtures import LUNS
from .drbd_calls import drbd9_env, lab_config_extra
from .test_fence_peer_storage import fence, key_of, luns_holding

PEER_DOWN = 5  # DRBD's P_DOWN
# The smallest timing the config accepts comfortably: T_safe = 0.6 + 1.0 + 0.2 = 1.8 s.
WATCHDOG = {"interval": 0.2, "io_deadline": 0.2, "check_deadline": 0.6, "timeout": 1.0,
            "grace": 0.5, "margin": 0.2}


@pytest.fixture
def lab_extra(tgtd: Tgtd) -> dict[str, Any]:
    extra = lab_config_extra(fencing=[{"level": "storage", "timeout": 4},
                                      {"level": "wait-t-safe", "timeout": 10}])
    # The LUNs a join registers (a guest LUN needs its node's data path: not here).
    luns = [{"name": lun.name, "role": lun.role, "order": lun.order,
             "iscsi": {"target": ARRAY_IQN, "lun": lun.lun,
                       "portals": list(tgtd.portals)}} for lun in LUNS if lun.role != "guest"]
    # A LUN on a target the array does not have: every path of it is down.
    luns.append({"name": "ghost", "role": "shared",
                 "iscsi": {"target": "iqn.2026-11.lab.stonewall:gone", "lun": 1,
                           "portals": list(tgtd.portals)}})
    extra["luns"] = luns
    extra["drbd"].append({"name": "rt", "luns": ["arbiter0", "ghost"],
                          "peers": {0: "node-a", 1: "node-b"}})
    extra["watchdog"] = WATCHDOG
    return extra


def test_partial_storage_fence_then_t_safe_exits_5(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "rt"))
    assert run.exit_code == PEER_DOWN, run.stderr
    assert "t-safe-elapsed" in run.stderr and "exit 5 (PEER_DOWN)" in run.stderr
    assert "arbiter0" not in luns_holding(observer(), key_of(lab, "node-a"))
    storage, waited = read_events(lab.config("node-b").paths.event_log)[-1]["details"]["levels"]
    assert (storage["verified"], waited["verified"]) == (False, True)
    assert "ghost: no path answered" in storage["reason"]
    assert waited["t_safe"] == t_safe(lab.config("node-b").watchdog) == pytest.approx(1.8)
    assert waited["duration"] >= waited["wait"] > 0
