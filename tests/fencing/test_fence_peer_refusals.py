"""fence-peer refuses what it cannot tie to a configured resource, peer and node, with the
status that keeps DRBD's I/O frozen (1), and touches no key on the target."""
from __future__ import annotations

import os

import pytest

from stonewall.eventlog import read_events

from .drbd_calls import drbd9_env, run_handler_string
from .test_fence_peer_storage import FROZEN, fence, key_of, luns_holding

ALL_LUNS = {"arbiter0", "arbiter1", "data0", "web1-disk"}  # web1-disk: node-a runs web1


@pytest.fixture
def both_holders(lab):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    return lab


@pytest.mark.parametrize("change, message", [
    ({"DRBD_PEER_NODE_ID": "one"}, "DRBD_PEER_NODE_ID='one'"),
    ({"DRBD_PEER_NODE_ID": "0", "DRBD_MY_NODE_ID": "0"}, "the peer cannot be this node"),
    ({"DRBD_PEER_ADDRESS": "127.0.1"}, "expected an IPv4 address"),
    ({"DRBD_RESOURCE": ""}, "DRBD_RESOURCE is not set"),
    ({"DRBD_RESOURCE": "r0 r1"}, "not usable"),
    ({"UP_TO_DATE_NODES": "3"}, "hexadecimal node mask"),
    ({"DRBD_PEERS": "node-a"}, "mixes DRBD 9 variables"),
])
def test_malformed_environment_keeps_io_frozen(both_holders, observer, programs, change,
                                               message):
    lab = both_holders
    env = {**drbd9_env("node-b", "node-a", "r0"), **change}
    run = fence(lab, programs, "node-b", env)
    assert run.exit_code == FROZEN
    assert "HandlerEnvError" in run.stderr or "InvalidResourceNameError" in run.stderr
    assert message in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS


def test_unexpected_arguments_keep_io_frozen(both_holders, observer, programs):
    lab = both_holders
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a"), "fence-peer")
    assert run.exit_code == FROZEN and "unexpected arguments" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS


def test_unknown_resource_keeps_io_frozen(both_holders, observer, programs):
    lab = both_holders
    run = fence(lab, programs, "node-b", drbd9_env("node-b", "node-a", "r9"))
    assert run.exit_code == FROZEN
    assert "UnknownResourceError" in run.stderr and "'r9'" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS
    # No --node, and the resource that would map DRBD_MY_NODE_ID is unknown: no actor.
    [record] = read_events(lab.config("node-b").paths.event_log)
    assert (record["actor"], record["target"], record["outcome"]) == (None, None, "refused")
    assert record["details"]["resource"] == "r9"
    assert record["details"]["error"] == "UnknownResourceError"


def test_a_peer_node_id_of_5000_digits_is_one_refusal_line_and_one_event(
        both_holders, observer, programs):
    lab = both_holders
    env = {**drbd9_env("node-b", "node-a", "r0"), "DRBD_PEER_NODE_ID": "1" * 5000}
    run = fence(lab, programs, "node-b", env, "--node node-b")
    assert run.exit_code == FROZEN
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("stonewall-drbd: fence-peer: refused, HandlerEnvError: "
                                 "DRBD_PEER_NODE_ID='11111111")
    assert "not a number of 5000 digits -> exit 1" in run.stderr
    [record] = read_events(lab.config("node-b").paths.event_log)
    assert (record["source"], record["actor"], record["outcome"]) == (
        "drbd fence-peer", "node-b", "refused")
    assert record["details"]["exit"] == FROZEN
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS


@pytest.mark.parametrize("names, refusal", [
    # drbd.conf's `on` names swapped against the peers map {0: node-a, 1: node-b}
    ({"DRBD_NODE_ID_0": "node-b", "DRBD_NODE_ID_1": "node-a"}, "DrbdNameMismatchError"),
    # a byte that is not UTF-8 in the peer's name (as os.environ carries it)
    ({"DRBD_NODE_ID_0": os.fsdecode(b"node-\xe1")}, "HandlerEnvError"),
])
def test_drbd_conf_names_that_do_not_match_the_peers_map_keep_io_frozen(
        both_holders, observer, programs, names, refusal):
    lab = both_holders
    run = fence(lab, programs, "node-b", {**drbd9_env("node-b", "node-a", "r0"), **names})
    assert run.exit_code == FROZEN and f"refused, {refusal}" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS
    [record] = read_events(lab.config("node-b").paths.event_log)
    assert (record["outcome"], record["details"]["error"]) == ("refused", refusal)


def test_drbd_naming_another_node_as_us_is_refused(both_holders, observer, programs):
    lab = both_holders
    # On node-b, an environment in which DRBD says we are node-a and the peer is node-b.
    env = {**drbd9_env("node-a", "node-b", "r0")}
    run = fence(lab, programs, "node-b", env, "--node node-b")
    assert run.exit_code == FROZEN and "UnknownLocalNode" in run.stderr
    # Without --node the handler believes DRBD; the holder's answer names node-b, not the
    # node-a DRBD says we are, so the client refuses it before it counts.
    run = fence(lab, programs, "node-b", env)
    assert run.exit_code == FROZEN and "the holder serves node-b, not node-a" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-b")) == ALL_LUNS - {"web1-disk"}
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS


def test_missing_configuration_keeps_io_frozen(lab, programs, tmp_path):
    for command in (f"{programs['fence-peer']} --config {tmp_path / 'absent.yaml'}",
                    f"{programs['fence-peer']}"):  # the default /etc/stonewall/cluster.yaml
        env = {**drbd9_env("node-b", "node-a", "r0"),
               "STONEWALL_CONFIG": str(tmp_path / "also-absent.yaml")}
        run = run_handler_string(command, env)
        assert run.exit_code == FROZEN
        assert "ConfigUnreadable" in run.stderr and "absent.yaml" in run.stderr


def test_invalid_configuration_keeps_io_frozen(lab, programs, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster: lab\nnodes: []\n")
    run = run_handler_string(f"{programs['fence-peer']} --config {broken}",
                             drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FROZEN and "ConfigError" in run.stderr


def test_unknown_option_keeps_io_frozen(programs):
    run = run_handler_string(f"{programs['fence-peer']} --frobnicate",
                             drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == FROZEN and "unrecognized arguments" in run.stderr
