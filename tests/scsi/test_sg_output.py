"""What sg_persist and mpathpersist print, parsed: the reference's verbatim session, runs we
captured through the shim, and mpathpersist's dialect. Unknown text is an error."""
from __future__ import annotations

import pytest

from stonewall.storage.scsi.responses import Capabilities, Keys, Reservation
from stonewall.storage.scsi.sense import SenseKey, decode_sense
from stonewall.storage.scsi.sg_output import (
    SgOutputError, data_in_length, iscsi_transport_id, parse_full_status_hex,
    parse_full_status_text, parse_read_keys, parse_read_reservation,
    parse_report_capabilities, raw_sense, transport_failure)
from stonewall.storage.scsi.types import ReservationType

from .sg_lab import load_runs, run_of

A, B = 0x5354570000000001, 0x5354570000000002
WE_RO = ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
REFERENCE, CAPTURED, MPATH = ("reference-session.txt", "captured-scripted.txt",
                              "mpathpersist-format.txt")
KEYS = "sg_persist -n --in --read-keys /dev/sdx"
RESERVATION = "sg_persist -n --in --read-reservation /dev/sdx"


def reference_outputs(command: str) -> list[str]:
    return [run.stdout for run in load_runs(REFERENCE) if run.command == command and not run.exit]


def test_reference_read_keys_in_session_order():
    parsed = [parse_read_keys(text) for text in reference_outputs(KEYS)]
    assert parsed == [
        Keys(0, ()),
        Keys(3, (A, B, A)),  # one entry per registered I_T nexus, as the target ordered them
        Keys(6, (B, B, B)),
        Keys(8, ()),
    ]


def test_inquiry_header_without_n_is_skipped():
    run = run_of(REFERENCE, "sg_persist --in --read-keys /dev/sdx")
    assert "Peripheral device type" in run.stdout
    assert parse_read_keys(run.stdout) == Keys(0, ())


def test_reference_read_reservation_in_session_order():
    parsed = [parse_read_reservation(text) for text in reference_outputs(RESERVATION)]
    assert parsed == [
        Reservation(0, None, None),
        Reservation(3, A, WE_RO, 0),
        Reservation(6, B, WE_RO, 0),
        Reservation(8, None, None),
    ]


def test_reference_capabilities_are_tgtds():
    run = run_of(REFERENCE, "sg_persist -n --in --report-capabilities /dev/sdx")
    capabilities = parse_report_capabilities(run.stdout)
    assert capabilities == Capabilities(
        rlr_c=False, crh=False, sip_c=False, atp_c=False, ptpl_c=False, tmv=True,
        allow_commands=0, ptpl_a=False, types=frozenset(ReservationType))


def test_captured_capabilities_every_flag_and_no_type_mask():
    every = parse_report_capabilities(
        run_of(CAPTURED, "sg_persist -vv -n --in --report-capabilities /dev/sdx", "9d f1").stdout)
    assert (every.rlr_c, every.crh, every.sip_c, every.atp_c, every.ptpl_c, every.tmv,
            every.allow_commands, every.ptpl_a) == (True, True, True, True, True, True, 7, True)
    no_mask = parse_report_capabilities(
        run_of(CAPTURED, "sg_persist -vv -n --in --report-capabilities /dev/sdx", "TMV 0").stdout)
    assert not no_mask.tmv and no_mask.types == frozenset()


def test_captured_reservation_with_a_numbered_scope():
    run = run_of(CAPTURED, "sg_persist -vv -n --in --read-reservation /dev/sdx")
    assert parse_read_reservation(run.stdout) == Reservation(3, A, WE_RO, 1)


def test_captured_full_status_hex_and_text_agree():
    hexed = parse_full_status_hex(run_of(
        CAPTURED, "sg_persist -vv -n --in --read-full-status --hex /dev/sdx").stdout)
    text = parse_full_status_text(run_of(
        CAPTURED, "sg_persist -n --in --read-full-status /dev/sdx").stdout)
    assert hexed.generation == 9 and len(hexed.registrants) == 2
    holder, other = hexed.registrants
    assert (holder.key, holder.holder, holder.type, holder.all_tg_pt,
            holder.relative_target_port) == (A, True, WE_RO, False, 1)
    assert (other.key, other.holder, other.type, other.all_tg_pt) == (B, False, None, True)
    assert [(r.key, r.holder, r.type, r.all_tg_pt) for r in text.registrants] == [
        (r.key, r.holder, r.type, r.all_tg_pt) for r in hexed.registrants]
    assert text.registrants[0].relative_target_port == 1  # not printed under ALL_TG_PT
    for printed, dumped in zip(text.registrants, hexed.registrants):
        assert printed.transport_id[0] == dumped.transport_id[0] == 0x05  # iSCSI name form
        assert printed.transport_id[4:].rstrip(b"\0") == dumped.transport_id[4:].rstrip(b"\0")


def test_mpathpersist_dialect():
    keys = [parse_read_keys(run.stdout) for run in load_runs(MPATH)
            if run.command.endswith("--read-keys /dev/mapper/mpatha")]
    assert keys == [Keys(0, ()), Keys(1, (A,)), Keys(3, (A, B, A))]
    reservations = [parse_read_reservation(run.stdout) for run in load_runs(MPATH)
                    if "--read-reservation" in run.command]
    assert reservations == [Reservation(3, None, None), Reservation(3, A, WE_RO, 0)]
    capabilities = parse_report_capabilities(
        run_of(MPATH, "mpathpersist --in --report-capabilities /dev/mapper/mpatha").stdout)
    assert not capabilities.rlr_c  # mpathpersist does not print RLR_C
    assert capabilities.types == frozenset(ReservationType) - {
        ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS}


def test_mpathpersist_full_status_port_identifier():
    status = parse_full_status_text(
        run_of(MPATH, "mpathpersist --in --read-full-status /dev/mapper/mpatha").stdout)
    assert [r.key for r in status.registrants] == [A, B]
    port_id = status.registrants[1].transport_id
    assert port_id[0] == 0x45  # iSCSI, format 01b: name,i,0x<ISID>
    assert port_id[4:].rstrip(b"\0") == b"iqn.2026-11.lab.stonewall:node-b,i,0x23d000000001"
    assert int.from_bytes(port_id[2:4], "big") == len(port_id) - 4
    assert len(port_id) % 4 == 0


def test_iscsi_transport_id_minimum_length():
    assert len(iscsi_transport_id("iqn.x", False)) == 4 + 20


@pytest.mark.parametrize("text", [
    "",
    "  PR generation=0x3, 3 registered reservation keys follow:\n    0x1\n    0x2\n",
    "  PR generation=0x3, 1 registered reservation key follows:\n    0x1\n    0x2\n",
    "  PR generation=0x3, 1 registered reservation key follows:\n    key 1\n",
    "  PR generation=0x3, 1 registered reservation key follows:\n    0x11112222333344445\n",
    "sg_persist: some new message\n  PR generation=0x0, there are NO registered reservation keys\n",
    "PR in (Read keys): command not supported\n",
])
def test_unknown_or_inconsistent_key_lists_are_errors(text):
    with pytest.raises(SgOutputError):
        parse_read_keys(text)


@pytest.mark.parametrize("text", [
    "  PR generation=0x3, Reservation follows:\n    Key=0x1\n",
    "  PR generation=0x3, Reservation follows:\n    Key=0x1\n    scope: LU_SCOPE,  type: "
    "obsolete [2]\n",
    "  PR generation=0x3, Reservation follows:\n    Key=0x1\n    scope: Element scope,  "
    "type: Write Exclusive\n",
    "  PR generation=0x3, there is NO reservation held\n    Key=0x1\n",
])
def test_unknown_reservation_text_is_an_error(text):
    with pytest.raises(SgOutputError):
        parse_read_reservation(text)


def test_capabilities_without_a_flag_are_an_error():
    run = run_of(REFERENCE, "sg_persist -n --in --report-capabilities /dev/sdx")
    without_tmv = "".join(line for line in run.stdout.splitlines(keepends=True)
                          if "TMV" not in line)
    with pytest.raises(SgOutputError, match="TMV"):
        parse_report_capabilities(without_tmv)
    with pytest.raises(SgOutputError):
        parse_report_capabilities(run.stdout.replace("Exclusive Access: 1", "Exclusive: 1"))


def test_full_status_hex_that_skips_or_falls_short_is_an_error():
    stdout = run_of(CAPTURED, "sg_persist -vv -n --in --read-full-status --hex /dev/sdx").stdout
    lines = stdout.splitlines(keepends=True)
    with pytest.raises(SgOutputError, match="offset"):
        parse_full_status_hex("".join(lines[:2] + lines[3:]))
    with pytest.raises(SgOutputError, match="announced"):
        parse_full_status_hex("".join(lines[:-1]))


# -- stderr at -vv -----------------------------------------------------------------------
def test_raw_sense_from_a_captured_unit_attention():
    run = run_of(CAPTURED, "sg_persist -vv -n --in --read-keys /dev/sdx", "UNIT ATTENTION")
    sense = decode_sense(raw_sense(run.stderr))
    assert sense.is_(SenseKey.UNIT_ATTENTION, 0x2A, 0x03)
    assert len(raw_sense(run.stderr)) == 18


def test_no_raw_sense_without_vv():
    run = run_of(REFERENCE, "sg_persist -n --out --preempt-abort --param-rk=0x5354570000000002 "
                 "--param-sark=0x5354570000000001 --prout-type=5 /dev/sdx")
    assert run.exit == 5 and raw_sense(run.stderr) is None


def test_data_in_length_tells_an_empty_answer_from_no_keys():
    empty = run_of(CAPTURED, "sg_persist -vv -n --in --read-keys /dev/sdx", "empty answer")
    one = run_of(CAPTURED, "sg_persist -vv -n --in --read-keys /dev/sdx", "one key")
    # sg_persist prints the empty answer exactly as a real "no keys" answer...
    assert parse_read_keys(empty.stdout) == Keys(0, ())
    # ...and only the byte count at -vv tells them apart.
    assert (data_in_length(empty.stderr), data_in_length(one.stderr)) == (0, 16)
    assert all(data_in_length(run.stderr) is None for run in load_runs(REFERENCE))  # no -vv


def test_transport_failure_hidden_behind_exit_zero():
    run = run_of(CAPTURED, "sg_persist -vv -n --out --register-ignore --param-sark=0x1 "
                 "/dev/sdx", "DID_TRANSPORT_FAILFAST")
    assert run.exit == 0 and "successful" in run.stderr  # what sg_persist claims
    assert transport_failure(run.stderr) == (
        "Host_status=0x0f [DID_TRANSPORT_FAILFAST] Driver_status=0x00 [DRIVER_OK]")
    ok = run_of(CAPTURED, "sg_persist -vv -n --in --read-keys /dev/sdx", "one key")
    assert transport_failure(ok.stderr) is None


@pytest.mark.parametrize("text", [
    # found by tests/fuzz: int() of 4301+ digits raised a bare ValueError ...
    "  PR generation=0x0, " + "9" * 5000 + " registered reservation keys follow:\n",
    # ... and `\d` took other scripts' digits: "٣" was read as 3 keys
    "  PR generation=0x0, ٣ registered reservation keys follow:\n    0x1\n    0x2\n    0x3\n",
    "  PR generation=0x" + "f" * 9 + ", there are NO registered reservation keys\n",
])
def test_numbers_no_sg_persist_prints_are_an_error_not_a_guess(text):
    with pytest.raises(SgOutputError):
        parse_read_keys(text)


def test_a_huge_data_in_count_on_stderr_is_not_a_count():
    assert data_in_length("pass-through requested 8 bytes (data-in), got " + "9" * 5000
                          + " bytes\n") is None
