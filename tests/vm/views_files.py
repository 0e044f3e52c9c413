"""A views source for tests: LUN views kept as JSON state files, one per LUN.

It stands where production reads the SAN through the node's holder; the hook and `vm list`
take it through the same `read_views(lun_names, deadline)` callable. A LUN without a file has
no view. A FIFO in place of a file makes the reader block, like a hung storage read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from stonewall.clock import Deadline
from stonewall.storage.scsi.responses import Reservation
from stonewall.storage.scsi.types import ReservationType
from stonewall.storage.view import LunView, PathView


def write_views(directory: Path, views: Iterable[LunView]) -> None:
    """Store `views` as <lun>.json files under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for view in views:
        paths = [{
            "path": p.path,
            "keys": None if p.keys is None else [f"0x{k:016x}" for k in p.keys],
            "reservation": None if p.reservation is None else {
                "generation": p.reservation.generation,
                "holder": None if p.reservation.holder is None else f"0x{p.reservation.holder:016x}",
                "type": None if p.reservation.type is None else int(p.reservation.type)},
            "error": p.error,
        } for p in view.paths]
        (directory / f"{view.lun}.json").write_text(json.dumps({"lun": view.lun, "paths": paths}))


def state_file_views(directory: Path):
    """read_views(lun_names, deadline) over the state files in `directory`."""

    def read_views(luns: Sequence[str], deadline: Deadline) -> Mapping[str, LunView]:
        views = {}
        for lun in luns:
            path = directory / f"{lun}.json"
            if path.exists():
                views[lun] = _view(json.loads(path.read_text()))
        return views

    return read_views


def _view(document: dict) -> LunView:
    return LunView(document["lun"], tuple(PathView(
        p["path"],
        None if p["keys"] is None else tuple(int(k, 16) for k in p["keys"]),
        None if p["reservation"] is None else Reservation(
            p["reservation"]["generation"],
            None if p["reservation"]["holder"] is None else int(p["reservation"]["holder"], 16),
            None if p["reservation"]["type"] is None else ReservationType(p["reservation"]["type"])),
        p["error"]) for p in document["paths"]))
