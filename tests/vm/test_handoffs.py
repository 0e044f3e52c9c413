"""The permits a destination's holder keeps for live migrations (holder/handoffs.py): one
migration of a guest at a time, each permit admits one `migrate begin` and one `prepare
begin`, the handoff claim only after both, and nothing outlives its lifetime."""
from __future__ import annotations

import pytest

from stonewall.holder.handoffs import Direction, Handoff, HandoffRefused, Handoffs, Stage
from stonewall.holder.protocol import BadRequest, parse_request
from stonewall.wire import WireFormatError

from ..sim_clock import SimClock


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def destination(clock: SimClock) -> Handoffs:
    return Handoffs("node-b", clock)


def test_a_permit_admits_one_migrate_begin_then_one_prepare_begin_then_the_claim(
        destination: Handoffs) -> None:
    issued = destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)
    assert (issued.source, issued.destination, issued.stage) == ("node-a", "node-b",
                                                                 Stage.ISSUED)
    with pytest.raises(HandoffRefused, match="was not admitted"):
        destination.for_claim("web1-disk", "node-a")
    assert destination.admit("web1", "migrate").stage is Stage.ADMITTED
    with pytest.raises(HandoffRefused, match="used already"):
        destination.admit("web1", "migrate")  # a second incoming migration on one permit
    assert destination.admit("web1", "prepare").stage is Stage.PREPARED
    with pytest.raises(HandoffRefused, match="used already"):
        destination.admit("web1", "prepare")  # a `virsh start` after the migration's prepare
    assert destination.for_claim("web1-disk", "node-a").guest == "web1"


def test_the_claim_is_refused_for_another_source_or_another_lun(
        destination: Handoffs) -> None:
    destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)
    destination.admit("web1", "migrate")
    destination.admit("web1", "prepare")
    with pytest.raises(HandoffRefused, match="from node-a, not from node-c"):
        destination.for_claim("web1-disk", "node-c")
    with pytest.raises(HandoffRefused, match="no incoming migration covers LUN db1-disk"):
        destination.for_claim("db1-disk", "node-a")


def test_a_prepare_without_a_permit_is_refused(destination: Handoffs) -> None:
    with pytest.raises(HandoffRefused, match="holds no permit"):
        destination.admit("web1", "prepare")


def test_a_second_migration_of_the_guest_is_refused_while_one_is_in_flight(
        destination: Handoffs) -> None:
    destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)
    with pytest.raises(HandoffRefused, match="already migrating \\(node-a → node-b\\)"):
        destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)
    destination.close("web1")
    destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)


def test_a_permit_expires(destination: Handoffs, clock: SimClock) -> None:
    destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)
    clock.sleep(29.9)
    assert destination.current()[0].expires_in == pytest.approx(0.1)
    clock.sleep(0.1)
    assert destination.current() == ()
    with pytest.raises(HandoffRefused, match="expired"):
        destination.admit("web1", "migrate")


def test_an_outgoing_note_admits_nothing(clock: SimClock) -> None:
    source = Handoffs("node-a", clock)
    noted = source.open("web1", "node-b", Direction.OUTGOING, ("web1-disk",), 30)
    assert noted.describe() == "migrating (node-a → node-b)"
    with pytest.raises(HandoffRefused, match="holds no permit"):
        source.admit("web1", "migrate")


def test_a_hook_record_is_ready_for_the_claim_once_migrate_begin_admitted_it(
        destination: Handoffs) -> None:
    destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30, by_hook=True)
    destination.admit("web1", "migrate")
    assert destination.for_claim("web1-disk", "node-a").by_hook


@pytest.mark.parametrize("ttl", [0, -1, 601])
def test_a_permit_lives_briefly(destination: Handoffs, ttl: float) -> None:
    with pytest.raises(HandoffRefused, match="a permit lives between"):
        destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), ttl)


def test_a_guest_does_not_migrate_to_itself(destination: Handoffs) -> None:
    with pytest.raises(HandoffRefused, match="does not migrate to the node it runs on"):
        destination.open("web1", "node-b", Direction.INCOMING, ("web1-disk",), 30)


def test_a_handoff_crosses_the_socket_as_the_same_value(destination: Handoffs) -> None:
    handoff = destination.open("web1", "node-a", Direction.INCOMING, ("web1-disk",), 30)
    assert Handoff.from_json(handoff.to_jsonable()) == handoff
    bad = {**handoff.to_jsonable(), "stage": "resumed"}
    with pytest.raises(WireFormatError, match="unknown handoff stage"):
        Handoff.from_json(bad)


def test_the_protocol_checks_the_handoff_arguments() -> None:
    good = (b'{"op": "open_handoff", "timeout": 5, "args": {"guest": "web1", "peer": "node-a",'
            b' "direction": "incoming", "luns": ["web1-disk"], "ttl": 30}}')
    assert parse_request(good).args["ttl"] == 30
    with pytest.raises(BadRequest, match="'ttl' must be a float"):
        parse_request(good.replace(b'"ttl": 30', b'"ttl": true'))
    with pytest.raises(BadRequest, match="missing argument 'luns'"):
        parse_request(good.replace(b', "luns": ["web1-disk"]', b''))
