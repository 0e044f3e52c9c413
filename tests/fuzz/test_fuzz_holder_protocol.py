"""Fuzzing the holder's JSON-lines protocol: the server side reads any line as one validated
request or a BadRequest, before any I/O; the client reads any answer as a result or as one of
its own error types (HolderUnavailable, HolderError), never as something else."""
from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stonewall.clock import Deadline
from stonewall.config.keys import derive_key
from stonewall.config.model import ClusterConfig, Node, Paths
from stonewall.holder.api import HolderFailure
from stonewall.holder.client import HolderClient
from stonewall.holder.protocol import (
    MAX_LINE, MAX_TIMEOUT, OPERATIONS, BadRequest, Request, parse_request)

from . import budget

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
argument_values = st.one_of(json_scalars, st.lists(json_scalars, max_size=3),
                            st.lists(st.text(max_size=8), max_size=3))


@st.composite
def near_requests(draw: st.DrawFn) -> dict[str, object]:
    """A request that is valid or one change away from it."""
    op = draw(st.one_of(st.sampled_from(sorted(OPERATIONS)), st.text(max_size=8)))
    spec = OPERATIONS.get(op, {})
    args = {name: draw(argument_values) for name in spec if draw(st.booleans())}
    if draw(st.booleans()):
        args[draw(st.text(max_size=8))] = draw(argument_values)
    request: dict[str, object] = {"op": op, "args": args}
    if draw(st.integers(0, 5)):
        request["timeout"] = draw(st.one_of(st.floats(-1, 200), st.integers(-1, 200),
                                            json_scalars))
    return request


def encoded(document: object) -> bytes:
    return json.dumps(document).encode() + b"\n"


lines = st.one_of(
    st.binary(max_size=200),
    json_values.map(encoded),
    near_requests().map(encoded),
    # nesting deeper than the JSON decoder's recursion limit, within MAX_LINE
    st.integers(1, 30_000).map(lambda depth: b"[" * depth + b"]" * depth + b"\n"),
    st.integers(1, 30_000).map(lambda depth: b'{"op": "state", "args": ' + b'{"a":' * depth
                               + b"1" + b"}" * depth + b', "timeout": 1}\n'),
    st.just(b" " * (MAX_LINE + 1)),
    st.sampled_from([b'{"op": "verify", "args": {"node": "a", "present": 1}, "timeout": 1}',
                     b'{"op": "write", "args": {"lun": "a", "lba": true, "data": ""}, '
                     b'"timeout": 1}',
                     b'{"op": "state", "timeout": NaN}', b'{"op": "state", "timeout": 1e999}',
                     b'{"op": "state", "timeout": 1' + b"0" * 5000 + b"}"]))


def _exactly(value: object, kind: type) -> bool:
    # bool is an int subclass in Python, but `true` is no block address.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


@budget.pure(500)
@given(line=lines)
def test_any_line_is_one_validated_request_or_a_bad_request(line: bytes) -> None:
    try:
        request = parse_request(line)
    except BadRequest:
        return
    assert isinstance(request, Request)
    assert request.op in OPERATIONS
    assert math.isfinite(request.timeout) and 0 < request.timeout <= MAX_TIMEOUT
    spec = OPERATIONS[request.op]
    assert set(request.args) <= set(spec)
    for name, (kind, required) in spec.items():
        if required or name in request.args:
            value = request.args[name]
            assert _exactly(value, kind), (name, value)
            if kind is list:
                assert all(isinstance(item, str) for item in value)


class OneAnswerServer:
    """A socket at the holder's path that answers each connection with the bytes it is
    given (the holder as a broken or hostile peer would answer), then closes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answer = b""
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(MAX_LINE)
                    conn.sendall(self.answer)
                except OSError:
                    pass  # the client gave up first

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[OneAnswerServer]:
    server = OneAnswerServer(tmp_path / "holder.sock")
    server.config = ClusterConfig(
        source="fuzz", cluster="fuzz", nodes=(Node("node-a", 1, derive_key("fuzz", 1)),),
        luns=(), paths=Paths(runtime_dir=str(tmp_path)))
    yield server
    server.close()


answers = st.one_of(
    st.binary(max_size=300),
    json_values.map(encoded),
    st.fixed_dictionaries({"ok": json_scalars}, optional={
        "result": json_values, "error": json_values, "message": json_values}).map(encoded),
    st.integers(1, 30_000).map(lambda depth: b"[" * depth + b"]" * depth + b"\n"),
    st.sampled_from([b"", b"\n", b'{"ok": true}', b'{"ok": true, "result": 1',
                     b'{"ok": false}\n', b"\xff\xfe{}\n", b'{"ok": 1e999}\n']))


@budget.pure(150)
@given(answer=answers)
def test_any_answer_is_a_result_or_one_of_the_clients_errors(answering: OneAnswerServer,
                                                              answer: bytes) -> None:
    answering.answer = answer
    client = HolderClient(answering.config, "node-a")
    try:
        client.state(Deadline.after(5))
    except HolderFailure as error:
        assert str(error)
