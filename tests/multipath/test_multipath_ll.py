"""`multipath -ll` / `-l` text, from the reference's verbatim captures."""
from __future__ import annotations

from pathlib import Path

import pytest

from stonewall.storage.multipath.errors import MultipathOutputError
from stonewall.storage.multipath.multipath_ll import parse_multipath_ll
from stonewall.storage.multipath.types import PathState

FIXTURES = Path(__file__).parent / "fixtures"


def test_fcp_map_with_two_path_groups_of_seven() -> None:
    (mpathe,) = parse_multipath_ll((FIXTURES / "multipath-l-fcp.txt").read_text())
    assert (mpathe.name, str(mpathe.wwid), mpathe.dm_name) == (
        "mpathe", "3600507640083826de000000000004793", "dm-4")
    assert len(mpathe.paths) == 14
    assert (mpathe.paths[0].hctl, mpathe.paths[0].name) == ("0:0:10:2", "sdab")
    assert (mpathe.paths[-1].hctl, mpathe.paths[-1].name) == ("3:0:7:2", "sdbu")
    # `-l` runs no checker: chk_st 'undef' is unknown, not down.
    assert {(p.dm_state, p.checker_state, p.state) for p in mpathe.paths} == {
        ("active", None, PathState.UP)}


def test_failed_paths_after_a_header() -> None:
    # The reference capture is the path-group part only; the header is the documented
    # `alias (wwid) dm-N vendor,product` line for that IBM map.
    groups = (FIXTURES / "multipath-ll-failed-groups.txt").read_text()
    header = ("mpathp (360050768029b8168e000000000006247) dm-3 IBM,2145\n"
              "size=10G features='1 queue_if_no_path' hwhandler='1 alua' wp=rw\n")
    (mpathp,) = parse_multipath_ll(header + groups)
    assert [(p.name, p.hctl, p.dm_state, p.checker_state, p.device_state, p.state)
            for p in mpathp.paths] == [
        ("sde", "39:0:0:1", "failed", "faulty", "running", PathState.DOWN),
        ("sdd", "40:0:0:1", "failed", "faulty", "running", PathState.DOWN)]


def test_paths_without_their_map_header_are_refused() -> None:
    with pytest.raises(MultipathOutputError, match="before any map header"):
        parse_multipath_ll((FIXTURES / "multipath-ll-failed-groups.txt").read_text())


def test_map_named_by_its_wwid_and_bold_tty_header() -> None:
    # print.c omits '(wwid)' when the alias is the WWID (Hi-Angel/notes-backup sample).
    text = ("\x1b[1m35000cca02d4a86a4 dm-48 HGST,HUC101812CS4204\x1b[0m\n"
            "size=1.1T features='0' hwhandler='0' wp=rw\n"
            "`-+- policy='service-time 0' prio=1 status=active\n"
            "  `- 1:0:3:0 sdx 65:112 active ready running\n")
    (only,) = parse_multipath_ll(text)
    assert (only.name, str(only.wwid), only.dm_name, [p.name for p in only.paths]) == (
        "35000cca02d4a86a4", "35000cca02d4a86a4", "dm-48", ["sdx"])


def test_an_unknown_line_is_refused() -> None:
    with pytest.raises(MultipathOutputError, match="line 2"):
        parse_multipath_ll("mpatha (3600) dm-0 A,B\nDM multipath kernel driver not loaded\n")
