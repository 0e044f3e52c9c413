"""Parser of the topology text of `multipath -ll` / `multipath -l` (the same text as
`multipathd show topology`), for hosts or bug reports where only that text exists.

Format (multipath-tools print.h, reference/multipath.md 3.5):
    ALIAS (WWID) dm-N VENDOR,PRODUCT        header; no '(WWID)' when ALIAS is the WWID
    size=… features='…' hwhandler='…' wp=rw
    |-+- policy='…' prio=N status=…          one line per path group
    | |- H:C:T:L sdX MAJ:MIN dm_st chk_st dev_st
    | `- …                                   one line per path
"""
from __future__ import annotations

import re

from stonewall.storage.multipath.errors import MultipathOutputError
from stonewall.storage.multipath.types import MultipathMap, PathDevice
from stonewall.storage.multipath.wwid import multipath_wwid

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # bold header when stdout is a tty
# re.ASCII: device numbers are ASCII digits; `\d` would also take other scripts' digits.
_HEADER = re.compile(r"(?P<name>\S+)(?: \((?P<wwid>[^)]+)\))? (?P<dm>dm-\d+|undef)(?: (?P<vp>.*))?",
                     re.ASCII)
# Tree drawing is made of ' |`-+' (some captures replace '`' by "'"). chk_st may contain a
# space ('i/o pending'), so it is whatever lies between dm_st and the last word.
_PATH = re.compile(r"[ |`'+-]*(?P<hcil>\d+:\d+:\d+:\d+|#:#:#:#)\s+(?P<dev>\S+)\s+\d+:\d+\s+"
                   r"(?P<dm_st>\S+)\s+(?P<chk_st>.+?)\s+(?P<dev_st>\S+)", re.ASCII)
_GROUP = re.compile(r"[ |`'+-]*policy=")


def parse_multipath_ll(text: str) -> tuple[MultipathMap, ...]:
    """The maps and paths in `multipath -ll` output. Raises MultipathOutputError on a line
    that fits none of the documented shapes."""
    maps: list[MultipathMap] = []
    header: re.Match[str] | None = None
    paths: list[PathDevice] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _ANSI.sub("", raw).rstrip()
        if not line or line.startswith("size=") or _GROUP.match(line):
            continue
        path = _PATH.fullmatch(line)
        if path:
            if header is None:
                raise MultipathOutputError(f"multipath -ll line {number}: a path before any "
                                           f"map header: {raw!r}")
            paths.append(PathDevice(
                name=path["dev"],
                hctl=None if path["hcil"].startswith("#") else path["hcil"],
                device_state=path["dev_st"],
                dm_state=None if path["dm_st"] == "undef" else path["dm_st"],
                checker_state=None if path["chk_st"] == "undef" else path["chk_st"]))
            continue
        next_header = _HEADER.fullmatch(line)
        if next_header is None:
            raise MultipathOutputError(f"multipath -ll line {number}: not a map header, "
                                       f"path group or path: {raw!r}")
        if header is not None:
            maps.append(_map(header, paths))
        header, paths = next_header, []
    if header is not None:
        maps.append(_map(header, paths))
    return tuple(maps)


def _map(header: re.Match[str], paths: list[PathDevice]) -> MultipathMap:
    # print.c prints '(WWID)' only when the alias differs from it.
    wwid = multipath_wwid(header["wwid"] or header["name"])
    if wwid is None:
        raise MultipathOutputError(f"multipath -ll: map {header['name']!r} has no WWID")
    return MultipathMap(name=header["name"], wwid=wwid,
                        dm_name=None if header["dm"] == "undef" else header["dm"],
                        paths=tuple(paths))
