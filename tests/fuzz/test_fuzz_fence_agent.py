"""Fuzzing fence_stonewall's two ways in, stdin lines and the command line: any input is one
validated request or one refusal line (exit 1). Run as Pacemaker runs it, a refused input
leaves no event record and no key changed on the SAN."""
from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from stonewall.eventlog import read_events
from stonewall.handlers.fence_agent_params import (
    ACTIONS, MAX_DELAY, MAX_STDIN_BYTES, MAX_TIMEOUT, PARAMETERS, AgentUsageError,
    normalise_name, parse_stdin_lines, read_request)

from ..fencing.test_fence_peer_storage import key_of, luns_holding
from . import budget
from .support import assert_one_line, python_module, run

KNOWN = [parameter.name for parameter in PARAMETERS]
# Every spelling a person or a tool might use for a name: dashes, capitals, blanks, Pacemaker's.
key_names = st.one_of(
    st.sampled_from(KNOWN),
    st.sampled_from(KNOWN).map(lambda name: name.replace("_", "-")),
    st.sampled_from(KNOWN).map(str.upper),
    st.sampled_from(["pcmk_host_list", "pcmk_off_action", "nodename ", " plug", "crm_meta_x",
                     "debug", "version", "help", "passwd"]),
    st.text(min_size=1, max_size=10).filter(lambda name: "=" not in name and "\n" not in name))
# Values with everything a line of text may carry, "\n" excepted (it ends the line).
values = st.one_of(
    st.sampled_from(["off", "OFF", "On", "status", "reboot", "meta-data", "node-a", "node-b",
                     "15", "0", "-1", "nan", "1e999", "3601", "5s", "1", "yes", "maybe",
                     "arbiter0, data0;web1-disk", "", " ", "="]),
    st.text(max_size=20).map(lambda text: text.replace("\n", "")))
separators = st.sampled_from(["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x0b",
                              "\x0c", "\r"])


@budget.pure(400)
@given(lines=st.lists(st.tuples(key_names, values), max_size=8),
       junk=st.lists(st.text(max_size=15), max_size=2))
def test_any_stdin_is_one_validated_request_or_one_refusal(lines, junk) -> None:
    text = "".join(f"{name}={value}\n" for name, value in lines) + "\n".join(junk)
    try:
        request = read_request([], text)
    except AgentUsageError as refusal:
        assert_one_line(str(refusal))
        return
    assert request.action in ACTIONS
    assert math.isfinite(request.timeout) and 0 < request.timeout <= MAX_TIMEOUT
    assert 0 <= request.delay <= MAX_DELAY
    assert not any(name.startswith("pcmk_") for name in request.ignored)
    assert set(request.ignored).isdisjoint(KNOWN)


@budget.pure(300)
@given(parameters=st.dictionaries(st.sampled_from(KNOWN), values.map(str.strip), max_size=6),
       separator=separators)
def test_a_value_never_adds_a_parameter_of_its_own(parameters, separator) -> None:
    # Characters str.splitlines() would break at, inside a value: a CIB attribute
    # `plug=node-b<U+2028>action=on` must stay one line, as fence-agents read it.
    smuggled = {name: f"{value}{separator}action=on" for name, value in parameters.items()}
    text = "".join(f"{name}={value}\n" for name, value in smuggled.items())
    assert parse_stdin_lines(text) == {normalise_name(name): value.strip()
                                       for name, value in smuggled.items()}


options = st.sampled_from(["-o", "--action", "-n", "--plug", "--port", "--nodename", "-c",
                           "--config", "--luns", "--drbd-resources", "--drbd_resources",
                           "--guests", "-t", "--timeout", "--delay", "-v", "-vv", "--verbose",
                           "-D", "--debug-file", "--frobnicate", "--plu", "-x", "--", "-"])


@budget.pure(300)
@given(argv=st.lists(st.one_of(options, values), min_size=1, max_size=8))
def test_any_command_line_is_one_validated_request_or_one_refusal(argv) -> None:
    try:
        request = read_request(argv, None)
    except AgentUsageError as refusal:
        assert_one_line(str(refusal))
        return
    assert request.action in ACTIONS and 0 < request.timeout <= MAX_TIMEOUT


def _refused(data: bytes) -> bool:
    """What the agent must refuse before it acts: too long, not UTF-8, or not a request."""
    if len(data) > MAX_STDIN_BYTES:
        return True
    try:
        read_request([], data.decode("utf-8"))
    except (UnicodeDecodeError, AgentUsageError):
        return True
    return False


@st.composite
def attacked_stdin(draw: st.DrawFn, config: str) -> bytes:
    """An `off` of node-a that would act, spoilt by one change an attacker could make."""
    lines = [b"action=off", b"plug=node-a", f"config={config}".encode()]
    change = draw(st.sampled_from(["value", "bytes", "oversize", "no-equals", "junk"]))
    if change == "value":
        lines.append(f"{draw(st.sampled_from(['action', 'timeout', 'delay', 'verbose']))}="
                     f"{draw(values)}".encode())
    elif change == "bytes":
        lines.insert(draw(st.integers(0, 3)), draw(st.binary(min_size=1, max_size=12)))
    elif change == "oversize":
        lines.insert(1, b"#" * draw(st.integers(MAX_STDIN_BYTES - 30, MAX_STDIN_BYTES + 30)))
    elif change == "no-equals":
        lines.append(draw(st.text(min_size=1, max_size=12)).replace("=", "").encode())
    else:
        lines.append(draw(st.binary(max_size=40)))
    return b"\n".join(lines) + b"\n"


@budget.process(10)
@given(data=st.data())
def test_refused_stdin_exits_1_in_one_line_and_leaves_the_san_alone(lab, observer,
                                                                     data) -> None:
    config = str(lab.configs["node-b"])
    stdin = data.draw(attacked_stdin(config))
    assume(_refused(stdin))
    if not lab.holders:
        lab.start_holder("node-a")
        lab.start_holder("node-b")
    result = run(python_module("stonewall.handlers.fence_agent"), stdin=stdin)
    assert result.exit_code == 1
    result.assert_no_traceback()
    [line] = result.stderr_lines(skip_prefix="fence_stonewall: warning: ")
    assert line.startswith("fence_stonewall: ")
    assert read_events(lab.config("node-b").paths.event_log) == []  # an off always records
    # every LUN node-a joined, and web1-disk, the LUN of the guest it runs
    assert luns_holding(observer(), key_of(lab, "node-a")) == {
        "arbiter0", "arbiter1", "data0", "web1-disk"}


@budget.process(6)
@given(argv=st.lists(st.one_of(options, values).filter(lambda word: "\0" not in word),
                     min_size=1, max_size=6))
def test_a_refused_command_line_exits_1_in_one_line(argv) -> None:
    try:
        read_request(argv, None)
    except AgentUsageError:
        pass
    else:
        assume(False)  # accepted command lines act; the lab tests cover those
    result = run(python_module("stonewall.handlers.fence_agent", *argv))
    assert result.exit_code == 1
    result.assert_no_traceback()
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("fence_stonewall: ")
