"""The holder's fence records (holder/fence_records.py) against tgtd: which LUNs held the
victim's key when this node preempted it, kept in the state directory and answered to another
process over the socket; merged across preempts of one fence, new when the victim joined
again, silent after a reboot of the fencer, refused (not guessed) when damaged."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from stonewall.clock import Deadline
from stonewall.holder.api import HolderRefused, HolderUntrusted
from stonewall.holder.client import HolderClient
from stonewall.holder.fence_records import FenceRecords, PreemptRecord, merge
from stonewall.holder.protocol import BadRequest, encode, parse_request
from stonewall.lab.tgtd import Tgtd
from stonewall.storage.reports import LunCheck, LunFence, PreemptReport, VerifyReport
from stonewall.wire import WireFormatError

from ..lab_fixtures import Lab, running_lab
from ..sim_clock import SimClock

EVERY_LUN = ("arbiter0", "arbiter1", "data0", "web1-disk")  # arbiter first, then config order


def soon() -> Deadline:
    return Deadline.after(10)


@pytest.fixture
def lab(tgtd: Tgtd, tmp_path: Path) -> Iterator[Lab]:
    """node-a runs web1 (registered on web1-disk); both holders joined."""
    with running_lab(tgtd, tmp_path / "lab", guest_runs={"web1-disk": "node-a"}) as started:
        for node in ("node-a", "node-b"):
            started.start_holder(node)
        yield started


def records_file(lab: Lab, node: str) -> Path:
    return Path(lab.config(node).paths.state_dir) / "fence-records.json"


def test_the_fencer_records_where_the_victims_key_was_and_another_process_reads_it(lab):
    assert lab.client("node-a").fence_record("node-b", soon()) is None  # nobody was fenced
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    record = lab.client("node-b").fence_record("node-a", soon())  # from the holder process
    key_a = lab.config("node-b").node("node-a").key
    assert (record.victim, record.key, record.boot_id) == ("node-a", key_a, "node-b-boot-1")
    assert record.held == EVERY_LUN  # web1-disk: node-a ran web1
    assert record.cleared == EVERY_LUN
    assert json.loads(records_file(lab, "node-b").read_text())["records"] == [
        record.to_jsonable()]

    again = lab.client("node-b").preempt("node-a", None, soon())  # every key already absent
    assert {f.action for f in again.preempt.luns} == {"already absent"}
    assert {f.found for f in again.preempt.luns} == {False}
    kept = lab.client("node-b").fence_record("node-a", soon())
    assert kept.held == EVERY_LUN and kept.first_at == record.first_at
    assert kept.last_at >= record.last_at

    lab.holders["node-b"].stop()  # a restart of the service in the same boot keeps it
    lab.start_holder("node-b")
    assert lab.client("node-b").fence_record("node-a", soon()) == kept
    with pytest.raises(HolderRefused, match="unknown node 'node-z'"):
        lab.client("node-b").fence_record("node-z", soon())


def test_a_guest_lun_the_victim_was_not_registered_on_is_not_held(tgtd, tmp_path):
    with running_lab(tgtd, tmp_path / "lab") as lab:  # node-a runs no guest
        for node in ("node-a", "node-b"):
            lab.start_holder(node)
        fence = lab.client("node-b").preempt("node-a", None, soon())
        assert fence.fenced
        found = {f.lun: f.found for f in fence.preempt.luns}
        assert found == {"arbiter0": True, "arbiter1": True, "data0": True, "web1-disk": False}
        record = lab.client("node-b").fence_record("node-a", soon())
        assert record.held == ("arbiter0", "arbiter1", "data0")
        assert "web1-disk" in record.cleared


def test_preempts_of_one_fence_merge_into_one_record(lab):
    # e.g. fence-peer's resource LUNs first, the after-power preempt of every LUN later
    assert lab.client("node-b").preempt("node-a", ["arbiter0", "arbiter1"], soon()).fenced
    first = lab.client("node-b").fence_record("node-a", soon())
    assert first.held == ("arbiter0", "arbiter1")
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    merged = lab.client("node-b").fence_record("node-a", soon())
    assert merged.held == EVERY_LUN and merged.first_at == first.first_at


def test_a_victim_that_joined_again_in_a_new_boot_starts_a_new_record(lab):
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    old = lab.client("node-b").fence_record("node-a", soon())
    lab.holders["node-a"].stop()
    lab.reboot("node-a", "node-a-boot-2")
    lab.guest_runs.clear()  # its new life runs no guest
    lab.start_holder("node-a")
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    new = lab.client("node-b").fence_record("node-a", soon())
    assert new.held == ("arbiter0", "arbiter1", "data0")  # web1 ran in its earlier life
    assert new.first_at > old.first_at


def test_after_a_reboot_of_the_fencer_its_old_record_answers_nothing(lab):
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced
    lab.holders["node-b"].stop()
    lab.reboot("node-b", "node-b-boot-2")
    lab.start_holder("node-b")
    assert records_file(lab, "node-b").exists()
    assert lab.client("node-b").fence_record("node-a", soon()) is None


def test_a_damaged_record_file_is_refused_and_the_next_fence_writes_a_good_one(lab):
    records_file(lab, "node-b").parent.mkdir(parents=True, exist_ok=True)
    records_file(lab, "node-b").write_text('{"records": [{"victim": "node-a"}]}')
    with pytest.raises(HolderRefused,
                       match="fence records cannot be read: .*None is not a reservation key"):
        lab.client("node-b").fence_record("node-a", soon())
    assert lab.client("node-b").preempt("node-a", None, soon()).fenced  # the fence goes on
    assert lab.client("node-b").fence_record("node-a", soon()).held == EVERY_LUN


def test_the_client_refuses_a_record_of_another_node_or_key(lab):
    record = PreemptRecord("node-b", lab.config("node-a").node("node-b").key, "boot", 1.0, 1.0,
                           ("arbiter0",), ("arbiter0",))
    key_a = f"0x{lab.config('node-a').node('node-a').key:016x}"

    def answering(result: object) -> HolderClient:
        line = encode({"ok": True, "node": "node-a", "key": key_a, "result": result})
        return HolderClient(lab.config("node-a"), "node-a", transport=lambda _line, _t: line)

    with pytest.raises(HolderUntrusted, match="fence record of 'node-b'"):
        answering(record).fence_record("node-a", soon())
    assert answering(record).fence_record("node-b", soon()) == record
    wrong_key = PreemptRecord("node-b", 0x1234, "boot", 1.0, 1.0, (), ())
    with pytest.raises(HolderUntrusted, match="with key 0x0000000000001234"):
        answering(wrong_key).fence_record("node-b", soon())
    with pytest.raises(HolderUntrusted, match="malformed answer to fence_record"):
        answering({"victim": "node-b"}).fence_record("node-b", soon())


# -- the merge rules and the file, without a SAN -----------------------------------------------
def fence(found: dict[str, bool | None], cleared: tuple[str, ...]) -> tuple[PreemptReport,
                                                                             VerifyReport]:
    preempt = PreemptReport([LunFence(lun, "preempt" if seen else "already absent", "p0", True,
                                      found=seen) for lun, seen in found.items()])
    checks = tuple(LunCheck(lun, lun in cleared, 1, ()) for lun in found)
    return preempt, VerifyReport(tuple(found), checks)


def test_a_lun_whose_keys_could_not_be_read_is_not_held():
    preempt, verification = fence({"arbiter0": True, "web1-disk": None}, ("arbiter0",))
    record = merge(None, "node-a", 1, "boot-1", 5.0, preempt, verification, {"arbiter0"})
    assert record.held == ("arbiter0",) and record.cleared == ("arbiter0",)


def test_a_lost_race_records_nothing(tmp_path):
    records = FenceRecords(str(tmp_path), "boot-1", SimClock())
    preempt, verification = fence({"arbiter0": True}, ())
    preempt.lost_race = True
    assert records.note("node-a", 1, preempt, verification, {"arbiter0"}) is None
    assert not (tmp_path / "fence-records.json").exists()


def test_a_record_of_another_key_is_not_answered(tmp_path):
    records = FenceRecords(str(tmp_path), "boot-1", SimClock())
    preempt, verification = fence({"arbiter0": True}, ("arbiter0",))
    assert records.note("node-a", 1, preempt, verification, {"arbiter0"}) is not None
    assert records.of("node-a", 1) is not None
    assert records.of("node-a", 2) is None  # the configuration gave node-a another key since


def test_an_unwritable_state_directory_does_not_fail_the_note(tmp_path, caplog):
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")
    records = FenceRecords(str(blocked), "boot-1", SimClock())
    preempt, verification = fence({"arbiter0": True}, ("arbiter0",))
    assert records.note("node-a", 1, preempt, verification, {"arbiter0"}) is None
    assert "take guests by home only" in caplog.text


def test_a_fence_record_request_names_its_victim():
    with pytest.raises(BadRequest, match="fence_record: missing argument 'victim'"):
        parse_request(b'{"op": "fence_record", "args": {}, "timeout": 1}')
    with pytest.raises(BadRequest, match="argument 'victim' must be a str"):
        parse_request(b'{"op": "fence_record", "args": {"victim": 1}, "timeout": 1}')


@pytest.mark.parametrize("bad, message", [
    ({"victim": "node-a", "key": "node-a", "boot_id": "b", "first_at": 1, "last_at": 1,
      "held": [], "cleared": []}, "not a reservation key"),
    ({"victim": "node-a", "key": 1, "boot_id": "b", "first_at": True, "last_at": 1,
      "held": [], "cleared": []}, "not a boolean"),
    ({"victim": "node-a", "key": 1, "boot_id": "b", "first_at": 1, "last_at": 1,
      "held": [3], "cleared": []}, "list of strings"),
])
def test_a_malformed_record_is_refused(bad, message):
    with pytest.raises(WireFormatError, match=message):
        PreemptRecord.from_json(bad)
