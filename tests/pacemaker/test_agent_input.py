"""How fence_stonewall reads a request: Pacemaker's stdin lines and people's options."""
from __future__ import annotations

import os

import pytest

from stonewall.clock import Deadline
from stonewall.handlers.fence_agent_params import (
    DEFAULT_TIMEOUT, MAX_STDIN_BYTES, AgentUsageError, parse_stdin_lines, read_request,
    read_stdin)


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


def test_the_action_value_is_case_insensitive_but_names_are_not_as_in_fence_agents() -> None:
    # fence-agents 4.12.1 fencing.py: check_input() lower-cases the action; the stdin reader
    # matches names as written, so `ACTION=off` is an unknown option there too.
    assert read_request([], "action=OFF\nplug=node2\n").action == "off"
    assert read_request(["-o", "Status", "-n", "node2"], None).action == "status"
    with pytest.raises(AgentUsageError, match="no action given"):
        read_request([], "ACTION=off\nplug=node2\n")
    assert read_request([], "ACTION=off\naction=status\n").ignored == ("ACTION",)


def test_unknown_keys_are_reported_by_name_and_pacemakers_own_keys_are_not() -> None:
    request = read_request([], "action=list\nfrobnicate=1\npcmk_host_list=node1 node2\n"
                               "pcmk_off_timeout=30\npasswd=s3cret\n")
    assert request.ignored == ("frobnicate", "passwd")


def test_fence_agents_standard_options_on_the_command_line_and_on_stdin() -> None:
    argv = read_request(["-o", "off", "-n", "node2", "-v", "-D", "/tmp/agent.log",
                         "--delay", "5"], None)
    stdin = read_request([], "action=off\nplug=node2\nverbose=1\ndebug_file=/tmp/agent.log\n"
                             "delay=5\n")
    assert argv == stdin
    assert (argv.verbose, argv.debug_file, argv.delay) == (True, "/tmp/agent.log", 5.0)
    assert read_request(["-o", "off", "-vv"], None).verbose
    quiet = read_request([], "action=off\nverbose=no\n")
    assert (quiet.verbose, quiet.debug_file, quiet.delay) == (False, None, 0.0)


@pytest.mark.parametrize(("text", "words"), [
    ("action=off\nverbose=maybe\n", "not a boolean"),
    ("action=off\ndelay=-1\n", "out of range"),
    ("action=off\ndelay=soon\n", "not a number"),
    ("action=off\ndelay=inf\n", "out of range"),
])
def test_bad_standard_options_are_refused(text: str, words: str) -> None:
    with pytest.raises(AgentUsageError, match=words):
        read_request([], text)


def test_an_argument_with_a_newline_is_refused_in_one_line() -> None:
    with pytest.raises(AgentUsageError) as caught:
        read_request(["-o", "off", "--frob\nnicate"], None)
    assert "\n" not in str(caught.value)


def _pipe_with(data: bytes, close: bool = True):
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    if close:
        os.close(write_end)
    return os.fdopen(read_end, "rb"), write_end


def test_stdin_is_read_whole_up_to_the_limit_and_refused_beyond_it_never_cut() -> None:
    # A line the limit would cut to another valid target: plug=node23 -> plug=node2.
    head = b"action=off\n#"
    head += b"#" * (MAX_STDIN_BYTES - len(b"plug=node2") - len(head) - 1) + b"\n"
    text = head + b"plug=node23\n"
    assert text[:MAX_STDIN_BYTES].endswith(b"\nplug=node2")  # what reading up to the limit saw
    stream, _ = _pipe_with_thread(text)
    with pytest.raises(AgentUsageError, match=f"longer than {MAX_STDIN_BYTES} bytes"):
        read_stdin(stream, Deadline.after(5))
    exact = b"action=off\nplug=node2\n"
    stream, _ = _pipe_with(exact)
    assert read_stdin(stream, Deadline.after(5)) == exact.decode()


def _pipe_with_thread(data: bytes):
    """A pipe whose writer (a thread) writes more than the pipe buffer holds, then closes."""
    import threading

    read_end, write_end = os.pipe()

    def write() -> None:
        try:
            os.write(write_end, data)
        except BrokenPipeError:
            pass  # the reader refused and closed its end
        finally:
            os.close(write_end)

    threading.Thread(target=write, daemon=True).start()
    return os.fdopen(read_end, "rb"), write_end


def test_stdin_that_is_not_utf8_or_never_ends_is_refused() -> None:
    stream, _ = _pipe_with(b"action=off\nplug=node\xff2\n")
    with pytest.raises(AgentUsageError, match="not UTF-8"):
        read_stdin(stream, Deadline.after(5))
    stream, writer = _pipe_with(b"action=off\n", close=False)
    try:
        with pytest.raises(AgentUsageError, match="did not end"):
            read_stdin(stream, Deadline.after(0.2))
    finally:
        os.close(writer)
