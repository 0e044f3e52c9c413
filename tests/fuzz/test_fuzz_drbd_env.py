"""Fuzzing DRBD's handler environment (8.4 and 9 forms, the usermode helper's argv): every
environment is either a checked HandlerEnv tied to one configured peer, or one clear refusal.
Through the real fence-peer program a refused environment exits 1 with one line on stderr,
leaves a "refused" record and touches no key on the SAN."""
from __future__ import annotations

import os

from hypothesis import assume, given
from hypothesis import strategies as st

from stonewall.eventlog import read_events
from stonewall.storage.drbd.env import (
    HANDLER_NAMES, NODE_ID_LIMIT, HandlerEnvError, check_resource_name, parse_handler_env)
from stonewall.storage.drbd.resolve import ResolveError, resolve_fence_target

from ..drbd.test_env import V84_FENCE_PEER, V9_FENCE_PEER
from ..drbd.test_resolve import CONFIG, V9_ON_KVM_A
from ..fencing.drbd_calls import drbd9_env, drbd84_env, kernel_only_env, run_handler_string
from ..fencing.test_fence_peer_storage import FROZEN, key_of, luns_holding
from . import budget
from .support import assert_one_line

PROGRAM = "/usr/sbin/stonewall-drbd-fence-peer"
VARIABLES = sorted({*V9_FENCE_PEER, *V84_FENCE_PEER, "DRBD_VOLUME", "DRBD_PEERS",
                    "DRBD_PEER", "DRBD_NODE_ID_2", "DRBD_MINOR_7"} - {"HOME", "TERM", "PATH"})

# Values an attacker or a broken drbdadm could hand over: numbers of any length (CPython
# refuses int() beyond 4300 digits), signs and blanks, non-ASCII digits, bytes that are not
# UTF-8 (os.environ carries them as lone surrogates), masks, addresses, long names.
numbers = st.one_of(st.integers(-5, 2**70).map(str),
                    st.integers(1, 6000).map(lambda n: "7" * n),
                    st.sampled_from(["", " 1", "1 ", "+1", "-0", "0x1", "١", "1e3", "01"]))
masks = st.one_of(st.integers(0, 2**70).map(lambda n: f"0x{n:08X}"),
                  st.sampled_from(["0x", "0xFFFFFFFFFFFFFFFF", "0XG", "3", "0x" + "F" * 17]))
addresses = st.sampled_from(["192.0.2.12", "192.0.2.11", "fd00::11", "127.0.1", "::",
                             "192.0.2.12:7789", "[fd00::11]", "kvm-b", ""])
names = st.one_of(st.sampled_from(["kvm-a", "kvm-b", "kvm-c", "kvm-a kvm-b", "kvm-\udcff",
                                   "kvm-b\n", "k" * 300, "r0 r1", "r/0", ""]),
                  st.text(max_size=30))
values = st.one_of(numbers, masks, addresses, names,
                   st.sampled_from(["ipv4", "ipv6", "ssocks", "sdp", "IPV4", "af_inet"]))
variable_names = st.one_of(
    st.sampled_from(VARIABLES),
    st.builds(lambda prefix, suffix: prefix + suffix,
              st.sampled_from(["DRBD_NODE_ID_", "DRBD_MINOR_", "DRBD_BACKING_DEV_"]),
              st.one_of(numbers, st.text(max_size=5))))


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    """A real environment (9 through drbdadm, 9 kernel only, 8.4) with a few changes."""
    env = dict(draw(st.sampled_from([V9_FENCE_PEER, V84_FENCE_PEER, V9_ON_KVM_A])))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(variable_names)
        if draw(st.booleans()) and name in env:
            del env[name]
        else:
            env[name] = draw(values)
    return env


argvs = st.one_of(
    st.just([PROGRAM]),
    st.builds(lambda handler, target: [PROGRAM, handler, target],
              st.sampled_from(sorted(HANDLER_NAMES) + ["fence_peer", "FENCE-PEER", ""]),
              st.one_of(st.sampled_from(["r0", "r84", "minor-0", "minor-", "minor-x"]),
                        numbers.map(lambda n: f"minor-{n}"), names)),
    st.lists(st.text(max_size=8), max_size=4).map(lambda args: [PROGRAM, *args]),
    st.just([]))


@budget.pure(400)
@given(env=environments(), argv=argvs)
def test_an_environment_is_a_checked_call_or_one_refusal(env: dict[str, str],
                                                          argv: list[str]) -> None:
    try:
        parsed = parse_handler_env(env, argv)
    except HandlerEnvError as refusal:
        assert_one_line(str(refusal))
        return
    assert check_resource_name(parsed.resource) == parsed.resource
    for node_id in (parsed.peer_node_id, parsed.my_node_id):
        assert node_id is None or 0 <= node_id < NODE_ID_LIMIT
    assert parsed.peer_node_id is None or parsed.peer_node_id != parsed.my_node_id
    assert all(0 <= node_id < NODE_ID_LIMIT for node_id in parsed.node_names)
    assert all(name.isprintable() and " " not in name
               for hosts in parsed.node_names.values() for name in hosts)
    assert parsed.up_to_date_nodes is None or max(parsed.up_to_date_nodes,
                                                  default=0) < NODE_ID_LIMIT
    try:
        target = resolve_fence_target(CONFIG, parsed)
    except ResolveError as refusal:
        assert_one_line(str(refusal))
        return
    # A resolved peer is a configured node other than us, and drbd.conf agrees on its name.
    assert target.peer in CONFIG.nodes
    if parsed.peer_node_id in parsed.node_names:
        assert target.peer.name in parsed.node_names[parsed.peer_node_id]
    if parsed.my_node_id is not None:
        assert target.resource.peers.get(parsed.my_node_id) != target.peer.name


def _usable_in_a_process(env: dict[str, str]) -> bool:
    """execve() cannot carry NUL, nor '=' in a name."""
    return all("\0" not in name + value and "=" not in name and name
               for name, value in env.items())


@st.composite
def lab_environments(draw: st.DrawFn) -> dict[str, str]:
    """What drbdadm would pass on node-b about node-a (tests/fencing's lab), changed."""
    env = dict(draw(st.sampled_from([drbd9_env("node-b", "node-a"), drbd84_env("node-a"),
                                     kernel_only_env("node-b", "node-a")])))
    lab_names = st.sampled_from(["node-a", "node-b", "node-a node-b", os.fsdecode(b"node-\xe1")])
    for _ in range(draw(st.integers(1, 3))):
        env[draw(variable_names)] = draw(st.one_of(values, lab_names))
    return env


@budget.process(10)
@given(env=lab_environments())
def test_a_refused_environment_exits_1_in_one_line_and_changes_nothing_on_the_san(
        lab, observer, programs, env: dict[str, str]) -> None:
    assume(_usable_in_a_process(env))
    try:
        parse_handler_env(env, [PROGRAM])
    except HandlerEnvError:
        pass
    else:
        assume(False)  # this test is about refused input; accepted input is fenced elsewhere
    if not lab.holders:
        lab.start_holder("node-a")
        lab.start_holder("node-b")
    events_before = len(read_events(lab.config("node-b").paths.event_log))
    run = run_handler_string(f"{programs['fence-peer']} --config {lab.configs['node-b']} "
                             "--node node-b", env)
    assert run.exit_code == FROZEN
    assert "Traceback (most recent call last)" not in run.stderr, run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith("stonewall-drbd: fence-peer: refused, ") and line.endswith("-> exit 1")
    records = read_events(lab.config("node-b").paths.event_log)[events_before:]
    assert [(r["actor"], r["outcome"]) for r in records] == [("node-b", "refused")]
    # every LUN node-a joined, and web1-disk, the LUN of the guest it runs
    assert luns_holding(observer(), key_of(lab, "node-a")) == {
        "arbiter0", "arbiter1", "data0", "web1-disk"}
