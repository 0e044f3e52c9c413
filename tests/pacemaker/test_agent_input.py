"""How fence_stonewall reads a request: Pacemaker's stdin lines and people's options."""
from __future__ import annotations

import pytest

from stonewall.handlers.fence_agent_params import (
    DEFAULT_TIMEOUT, AgentUsageError, parse_stdin_lines, read_request)


def test_pacemaker_lines_in_hash_order_become_one_request() -> None:
    # Exactly what pacemaker-fenced 2.1.5 wrote for `stonith_admin --fence node2`, plus a
    # pcmk_host_list it would not send and a device attribute we do not know.
    text = ("nodename=node2\naction=off\nport=node2\nconfig=/etc/stonewall/c.yaml\n"
            "pcmk_host_list=node1 node2\nkey=0xabc\n")
    request = read_request([], text)
    assert (request.action, request.target, request.target_source) == ("off", "node2", "port")
    assert request.config_path == "/etc/stonewall/c.yaml"
    assert request.timeout == DEFAULT_TIMEOUT and not request.scoped


def test_blank_and_comment_lines_are_skipped_and_the_last_value_wins() -> None:
    text = "\n# a comment\n   \naction=status\nplug=node1\n  plug = node3  \n"
    request = read_request([], text)
    assert (request.action, request.target) == ("status", "node3")


def test_a_value_is_split_at_the_first_equals_sign_only() -> None:
    assert parse_stdin_lines("config=/etc/a=b.yaml\n") == {"config": "/etc/a=b.yaml"}


def test_dash_and_underscore_spellings_are_the_same_name() -> None:
    on_stdin = read_request([], "action=off\nplug=node2\ndrbd-resources=r0\n")
    on_stdin_underscore = read_request([], "action=off\nplug=node2\ndrbd_resources=r0\n")
    on_argv = read_request(["-o", "off", "-n", "node2", "--drbd_resources", "r0"], None)
    on_argv_dash = read_request(["--action=off", "--plug=node2", "--drbd-resources=r0"], None)
    assert on_stdin == on_stdin_underscore == on_argv == on_argv_dash
    assert on_stdin.drbd_resources == ("r0",)


@pytest.mark.parametrize(("lines", "target", "source"), [
    ("plug=node2\nport=node3\nnodename=node1\n", "node2", "plug"),  # Pacemaker >= 3.0.1
    ("port=node3\nnodename=node1\n", "node3", "port"),  # Pacemaker <= 3.0.0 (pcmk_host_map)
    ("nodename=node1\n", "node1", "nodename"),  # pcmk_host_argument=none
    ("plug=\nnodename=node1\n", "node1", "nodename"),  # an empty plug is no plug
])
def test_target_is_plug_else_port_else_nodename(lines: str, target: str, source: str) -> None:
    request = read_request([], "action=status\n" + lines)
    assert (request.target, request.target_source) == (target, source)


def test_people_use_options_and_port_is_an_alias_of_plug() -> None:
    request = read_request(["-o", "status", "--port", "node2", "-c", "/tmp/x.yaml", "-t", "7.5",
                            "--luns", "arbiter0, data2;data3 arbiter0"], None)
    assert (request.action, request.target, request.target_source) == ("status", "node2", "plug")
    assert request.luns == ("arbiter0", "data2", "data3")  # in order, repeats dropped
    assert request.timeout == 7.5 and request.config_path == "/tmp/x.yaml"


def test_meta_data_is_the_ocf_spelling_of_metadata() -> None:
    assert read_request([], "action=meta-data\n").action == "metadata"


@pytest.mark.parametrize(("argv", "text", "words"), [
    ([], "action=reboot\nport=node2\n", "fabric fencing"),
    ([], "port=node2\n", "no action"),
    ([], "action=poweroff\n", "unknown action"),
    ([], "action=off\nthis line has no equals sign\n", "not key=value"),
    ([], "action=off\ntimeout=soon\n", "not a number"),
    ([], "action=off\ntimeout=0\n", "out of range"),
    ([], "action=off\ntimeout=nan\n", "out of range"),
    (["-o", "off", "--frobnicate"], None, "unrecognized arguments"),
    (["-o", "off", "--plu", "node2"], None, "unrecognized arguments"),  # no abbreviations
    ([], None, "no arguments"),
])
def test_bad_input_is_refused_with_a_clear_reason(argv: list[str], text: str | None,
                                                  words: str) -> None:
    with pytest.raises(AgentUsageError, match=words):
        read_request(argv, text)


def test_unknown_stdin_keys_are_ignored_but_known_ones_still_checked() -> None:
    request = read_request([], "action=list\nfrobnicate=1\ncrm_feature_set=3.16.2\n")
    assert request.action == "list"
