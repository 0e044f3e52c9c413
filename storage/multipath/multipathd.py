"""multipathd's view: the one seam that runs `multipathd <command>`, and the parsers of
what it prints (`show maps json`, `show paths raw format …`).

The multipathd client (multipath-tools uxclnt.c) exits 1 with no output when it cannot
connect, exits 1 after printing the reply when the daemon answers `fail`, and prints
`timeout receiving packet` when the daemon does not answer in time. So on exit status 1
with nothing printed we look at the daemon's control socket ourselves to tell "not
running" from other failures.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stonewall.clock import Deadline
from stonewall.process import ProcessError, ProgramNotFound, run_process
from stonewall.storage.multipath.errors import (MultipathdFailed, MultipathdNotRunning,
                                                MultipathdTimeout, MultipathOutputError,
                                                MultipathToolsMissing,
                                                UnsupportedJsonVersion)
from stonewall.storage.multipath.types import (Discovery, FcLink, IscsiLink, Link,
                                               MultipathMap, PathDevice)
from stonewall.storage.multipath.wwid import multipath_wwid

# Where the client connects (libmpathcmd): the pathname socket first (multipath-tools
# 0.10 and later), then the abstract one ('@' = Linux abstract namespace).
CONTROL_SOCKETS = ("/run/multipathd.socket", "@/org/kernel/linux/storage/multipathd")
# print.c PRINT_JSON_MAJOR_VERSION: 0 from 0.7 up to 0.14 at least. A new major version
# means a changed schema, which we refuse rather than misread.
SUPPORTED_JSON_MAJOR = 0
# Separator of our `show paths raw format`: no field but the WWID (last) can contain it.
_FIELD_SEPARATOR = "|"
PATHS_FORMAT = _FIELD_SEPARATOR.join(("%d", "%i", "%t", "%T", "%o", "%m", "%w"))
_UNDEFINED = ("", "[undef]", "undef", "#:#:#:#")


class MultipathdRunner:
    """Runs one multipathd client command; the only place that starts the binary."""

    def __init__(self, binary: str = "multipathd",
                 control_sockets: Sequence[str] = CONTROL_SOCKETS) -> None:
        self.binary = binary
        self.control_sockets = tuple(control_sockets)

    def run(self, words: Sequence[str], deadline: Deadline) -> str:
        """The daemon's reply to `words` (e.g. ['show', 'maps', 'json']).
        Raises MultipathToolsMissing, MultipathdNotRunning, MultipathdTimeout,
        MultipathdFailed."""
        command = [self.binary, *words]
        if deadline.expired():
            raise MultipathdTimeout(f"{' '.join(command)}: deadline passed before it started")
        try:
            done = run_process(command, deadline)
        except ProgramNotFound:
            raise MultipathToolsMissing(f"{self.binary} not found: install the Debian package "
                                        "multipath-tools") from None
        except ProcessError as error:
            raise MultipathToolsMissing(f"{self.binary} cannot be executed: {error}") from None
        if done.timed_out:
            raise MultipathdTimeout(f"{' '.join(command)} did not finish before its "
                                    "deadline")
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace").strip()
        # Clients before 0.9 exit 0 even after a timeout or a 'fail' reply.
        if out.startswith("timeout receiving packet"):
            raise MultipathdTimeout(f"{' '.join(command)}: multipathd did not answer in time")
        if done.returncode == 0 and out.strip() != "fail":
            return out
        if not out.strip() and not self.daemon_listening():
            said = f" ({err})" if err else ""
            raise MultipathdNotRunning(
                f"multipathd is not running: nothing accepts connections on "
                f"{' or '.join(self.control_sockets)}{said}")
        detail = out.strip() or err or "no output"
        raise MultipathdFailed(f"{' '.join(command)} exited {done.returncode}: {detail}")

    def daemon_listening(self) -> bool:
        """True if one of the control sockets accepts a connection."""
        for name in self.control_sockets:
            address = "\0" + name[1:] if name.startswith("@") else name
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                try:
                    probe.connect(address)
                except OSError:
                    continue
                return True
        return False


def discover_multipathd(runner: MultipathdRunner, deadline: Deadline) -> Discovery:
    """multipathd's maps (with dm and checker state per path) and its orphan paths."""
    maps = parse_maps_json(runner.run(["show", "maps", "json"], deadline))
    paths = parse_paths_raw(runner.run(["show", "paths", "raw", "format", PATHS_FORMAT],
                                       deadline))
    return Discovery.build("multipathd", list(maps),
                           [record.path for record in paths if record.map_name is None])


@dataclass(frozen=True)
class PathRecord:
    """One line of `show paths raw format PATHS_FORMAT`."""

    path: PathDevice
    map_name: str | None  # None for an orphan (in no map)


def parse_paths_raw(text: str) -> tuple[PathRecord, ...]:
    """Parse `multipathd show paths raw format PATHS_FORMAT` output."""
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(_FIELD_SEPARATOR, 6)
        if len(fields) != 7:
            raise MultipathOutputError(f"show paths line {number}: expected 7 fields "
                                       f"separated by {_FIELD_SEPARATOR!r}: {line!r}")
        dev, hcil, dm_st, chk_st, dev_st, map_name, uuid = (f.strip() for f in fields)
        records.append(PathRecord(
            path=PathDevice(name=dev, hctl=_defined(hcil), device_state=_defined(dev_st),
                            wwid=multipath_wwid(uuid), dm_state=_defined(dm_st),
                            checker_state=_defined(chk_st)),
            # print.c: '[orphan]' (no map), '[offline]' (0.14: waits to come online)
            map_name=None if map_name.startswith("[") else map_name))
    return tuple(records)


def parse_maps_json(text: str) -> tuple[MultipathMap, ...]:
    """Parse `multipathd show maps json` (schema in reference/multipath.md 3.3)."""
    try:
        document = json.loads(text)
    except ValueError as error:  # JSONDecodeError, or an integer of 4301+ digits
        raise MultipathOutputError(f"show maps json: not JSON ({error})") from None
    except RecursionError:  # ~2000 nested brackets exhaust the decoder
        raise MultipathOutputError("show maps json: nested too deeply") from None
    if not isinstance(document, dict):
        raise MultipathOutputError("show maps json: top level is not an object")
    major, minor = document.get("major_version"), document.get("minor_version")
    if type(major) is not int or type(minor) is not int:  # bool is an int subclass
        raise MultipathOutputError("show maps json: major_version/minor_version missing")
    if major != SUPPORTED_JSON_MAJOR:
        raise UnsupportedJsonVersion(f"show maps json: major_version {major}.{minor}; "
                                     f"this stonewall reads major_version {SUPPORTED_JSON_MAJOR}")
    maps = document.get("maps")
    if not isinstance(maps, list):
        raise MultipathOutputError("show maps json: 'maps' is not a list")
    return tuple(_map_from_json(entry) for entry in maps)


def _map_from_json(entry: Any) -> MultipathMap:
    name, uuid = _field(entry, "name"), _field(entry, "uuid")
    wwid = multipath_wwid(uuid)
    if wwid is None:
        raise MultipathOutputError(f"show maps json: map {name!r} has an empty uuid")
    paths = [_path_from_json(path, name)
             for group in _list_field(entry, "path_groups", name)
             for path in _list_field(group, "paths", name)]
    dm_state = entry.get("dm_st")
    return MultipathMap(name=name, wwid=wwid, dm_name=_defined(entry.get("sysfs", "")),
                        paths=tuple(paths),
                        suspended=None if dm_state in (None, "undef") else dm_state == "suspend")


def _path_from_json(entry: Any, map_name: str) -> PathDevice:
    return PathDevice(
        name=_field(entry, "dev", map_name),
        hctl=None,  # not in the JSON schema
        device_state=_defined(entry.get("dev_st", "")),
        dm_state=_defined(entry.get("dm_st", "")),
        checker_state=_defined(entry.get("chk_st", "")),
        link=_link_from_json(entry),
    )


def _link_from_json(entry: dict[str, Any]) -> Link | None:
    # print.c: target_wwnn is the target IQN on iSCSI, the WWNN on FC; '[undef]' otherwise.
    target = _defined(entry.get("target_wwnn", ""))
    if target is None:
        return None
    if target.startswith(("iqn.", "eui.", "naa.")):
        return IscsiLink(session=None, target=target)
    return FcLink(rport=None, node_name=target,
                  port_name=_defined(entry.get("target_wwpn", "")))


def _field(entry: Any, key: str, where: str = "") -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get(key), str):
        place = f" in map {where!r}" if where else ""
        raise MultipathOutputError(f"show maps json: string field {key!r} missing{place}")
    return entry[key]


def _list_field(entry: Any, key: str, map_name: str) -> list[Any]:
    value = entry.get(key, []) if isinstance(entry, dict) else None
    if not isinstance(value, list):
        raise MultipathOutputError(f"show maps json: {key!r} of map {map_name!r} is not a list")
    return value


def _defined(value: object) -> str | None:
    text = str(value).strip()
    return None if text in _UNDEFINED else text
