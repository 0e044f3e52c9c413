"""Each decision reaches the journal once, with fields to search by: the native journal
protocol, received on a real unix datagram socket bound by the test and parsed here."""
from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from stonewall.log import decision_fields, decision_handlers


def parse_entry(data: bytes) -> list[tuple[str, str]]:
    """The fields of one native-protocol datagram, in order (systemd's journal-native docs)."""
    fields, position = [], 0
    while position < len(data):
        end = data.index(b"\n", position)
        line = data[position:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            position = end + 1
        else:
            name = line
            (length,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + length]
            assert data[end + 9 + length:end + 10 + length] == b"\n"
            position = end + 10 + length
        fields.append((name.decode(), value.decode()))
    return fields


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[socket.socket]:
    """A datagram socket standing where journald's would be."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(tmp_path / "journal.sock"))
    receiver.settimeout(5)
    yield receiver
    receiver.close()


def _logger(name: str, handlers: list[logging.Handler]) -> logging.Logger:
    logger = logging.Logger(name)  # not the process-wide registry: each test builds its own
    for handler in handlers:
        logger.addHandler(handler)
    return logger


def _received(receiver: socket.socket) -> list[list[tuple[str, str]]]:
    entries = []
    receiver.setblocking(False)
    while True:
        try:
            entries.append(parse_entry(receiver.recv(1 << 20)))
        except BlockingIOError:
            return entries


def _journal_stream(stream) -> dict[str, str]:
    status = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}


def test_under_systemd_a_fence_decision_reaches_the_journal_once_with_its_fields(
        tmp_path: Path, journal: socket.socket) -> None:
    with open(tmp_path / "stderr", "w+") as stderr:  # the stream systemd gave the service
        handlers = decision_handlers("stonewall-drbd", _journal_stream(stderr), stderr,
                                     journal_socket=journal.getsockname())
        log = _logger("fence", handlers)

        log.info("fence-peer r0 peer kvm-b: kvm-b fenced-by-storage -> exit 4",
                 extra=decision_fields(peer="kvm-b", luns=["arbiter0", "data0"],
                                       outcome="fenced"))

        entries = _received(journal)
        stderr.seek(0)
        assert stderr.read() == ""  # stderr is the journal too: the line went once
    assert len(entries) == 1
    fields = entries[0]
    assert ("MESSAGE", "fence-peer r0 peer kvm-b: kvm-b fenced-by-storage -> exit 4") in fields
    assert ("SYSLOG_IDENTIFIER", "stonewall-drbd") in fields and ("PRIORITY", "6") in fields
    # What `journalctl STONEWALL_PEER=kvm-b` and `STONEWALL_LUN=data0` match on.
    assert [f for f in fields if f[0].startswith("STONEWALL_")] == [
        ("STONEWALL_PEER", "kvm-b"), ("STONEWALL_LUN", "arbiter0"), ("STONEWALL_LUN", "data0"),
        ("STONEWALL_OUTCOME", "fenced")]


def test_a_handler_run_by_drbdadm_writes_stderr_for_its_caller_and_the_journal_once(
        tmp_path: Path, journal: socket.socket) -> None:
    with open(tmp_path / "stderr", "w+") as stderr:  # drbdadm's pipe, not the journal
        log = _logger("handler", decision_handlers("stonewall-drbd", {}, stderr,
                                                   journal_socket=journal.getsockname()))

        log.error("fence-peer r0 peer kvm-b: kvm-b NOT fenced (failed) -> exit 1",
                  extra=decision_fields(peer="kvm-b", outcome="failed"))

        stderr.seek(0)
        assert stderr.read() == ("stonewall-drbd: fence-peer r0 peer kvm-b: kvm-b NOT fenced "
                                 "(failed) -> exit 1\n")
    [entry] = _received(journal)
    assert ("PRIORITY", "3") in entry and ("STONEWALL_OUTCOME", "failed") in entry


def test_an_inherited_journal_stream_that_is_not_our_stderr_is_not_the_journal(
        tmp_path: Path, journal: socket.socket) -> None:
    # A program the service starts inherits $JOURNAL_STREAM but may have another stderr.
    with open(tmp_path / "service-stderr", "w") as service, \
            open(tmp_path / "child-stderr", "w+") as child:
        log = _logger("child", decision_handlers("stonewall", _journal_stream(service), child,
                                                 journal_socket=journal.getsockname()))
        log.info("decided")
        child.seek(0)
        assert child.read() == "stonewall: decided\n"
    assert len(_received(journal)) == 1


def test_a_multi_line_message_uses_the_length_prefixed_form(
        tmp_path: Path, journal: socket.socket) -> None:
    with open(tmp_path / "stderr", "w+") as stderr:
        log = _logger("multi", decision_handlers("stonewall", _journal_stream(stderr), stderr,
                                                 journal_socket=journal.getsockname()))
        log.info("split brain on r0\nto keep kvm-a's data: drbdadm ...")
    [entry] = _received(journal)
    assert ("MESSAGE", "split brain on r0\nto keep kvm-a's data: drbdadm ...") in entry


def test_without_a_journal_socket_the_line_still_reaches_stderr_once(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w+") as stderr:
        log = _logger("none", decision_handlers(
            "stonewall", _journal_stream(stderr), stderr,
            journal_socket=str(tmp_path / "no-journal.sock"),
            syslog_socket=str(tmp_path / "no-syslog.sock")))
        log.info("decided")
        stderr.seek(0)
        assert stderr.read() == "stonewall: decided\n"


def test_a_journal_that_stopped_listening_gets_the_line_on_stderr_instead(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    gone.bind(str(path))
    with open(tmp_path / "stderr", "w+") as stderr:
        log = _logger("gone", decision_handlers("stonewall", _journal_stream(stderr), stderr,
                                                journal_socket=str(path)))
        gone.close()  # the socket file stays, nobody reads it: ECONNREFUSED

        log.info("fenced")

        stderr.seek(0)
        assert stderr.read() == "stonewall: fenced\n"
