"""`stonewall multipath show|resolve|wwid|conf`: what this host's discovery sees, and the
multipath.conf lines that keep new paths registered (docs/multipath.md).

Exit status: 0 done; 1 the LUN or WWID could not be resolved; 2 usage or configuration
error; 3 the discovery source is unavailable here; 4 multipathd failed, timed out or
printed something unreadable.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from stonewall.clock import Deadline
from stonewall.config.errors import ConfigError
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.loader import load_config, resolve_config_path
from stonewall.config.model import Lun, LunRole, Transport
from stonewall.storage.multipath.errors import (DiscoveryUnavailable, InvalidWwid,
                                                LunResolutionError, MultipathError)
from stonewall.storage.multipath.multipathd import MultipathdRunner, discover_multipathd
from stonewall.storage.multipath.resolve import LunPaths, resolve_lun_paths
from stonewall.storage.multipath.sysfs import discover_sysfs
from stonewall.storage.multipath.types import Discovery, FcLink, IscsiLink, PathDevice
from stonewall.storage.multipath.udev import discover_udev
from stonewall.storage.multipath.wwid import parse_wwid

EXIT_OK = 0
EXIT_UNRESOLVED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_MULTIPATHD = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `multipath show`, `multipath resolve` and `multipath wwid`."""
    multipath = subparsers.add_parser(
        "multipath", help="show multipath maps, path devices and LUN resolution",
        description="Show what stonewall discovers about dm-multipath maps and SCSI paths.")
    actions = multipath.add_subparsers(dest="multipath_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="list maps, their paths, and SCSI disks in no map",
                              description="List multipath maps with their path devices, and "
                                          "SCSI disks that are in no map.")
    _source_options(show)
    show.set_defaults(func=show_command)
    resolve = actions.add_parser(
        "resolve", help="map a configured sg LUN to its map and path devices",
        description="Resolve an sg-transport LUN (from the configuration with --lun, or given "
                    "by --wwid/--alias) to its map device and the path devices PR commands "
                    "go to.")
    wanted = resolve.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--lun", help="name of a LUN in the configuration file")
    wanted.add_argument("--wwid", help="a WWID in any spelling (see `multipath wwid`)")
    resolve.add_argument("--alias", help="a multipath alias (with --wwid: must agree with it)")
    _source_options(resolve)
    resolve.set_defaults(func=resolve_command)
    wwid = actions.add_parser("wwid", help="normalise WWID spellings",
                              description="Print the multipath spelling of each WWID given in "
                                          "any spelling (naa., eui., t10., 0x, wwn-0x, scsi-, "
                                          "dm-uuid-mpath-, /dev/disk/by-id/...).")
    wwid.add_argument("spellings", nargs="+", metavar="WWID")
    wwid.add_argument("--json", action="store_true", help="print JSON")
    wwid.set_defaults(func=wwid_command)
    conf = actions.add_parser(
        "conf", help="print multipath.conf lines: this node's key on every sg LUN's map",
        description="Print a multipath.conf `multipaths` section that sets this node's "
                    "reservation key on the map of every sg LUN, so multipathd registers a "
                    "path that appears later before it adds it to the map (it registers only "
                    "while the key is still registered on the map's other paths). stonewall's "
                    "service registers such paths too, and checks afterwards that the key was "
                    "not preempted meanwhile.")
    conf.add_argument("--node", help="this node's name (default: $STONEWALL_NODE, else the "
                                     "host name)")
    conf.set_defaults(func=conf_command)


def conf_command(args: argparse.Namespace) -> int:
    """Run `multipath conf`; returns the exit status."""
    try:
        config = load_config(resolve_config_path(args.config, os.environ))
        node = local_node(config, args.node, os.environ)
    except (ConfigError, UnknownLocalNode) as error:
        print(f"stonewall multipath conf: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(multipath_conf(config.luns, node.key, node.name))
    return EXIT_OK


def multipath_conf(luns: tuple[Lun, ...], key: int, node: str) -> str:
    """The `multipaths` section for the sg LUNs in `luns`, with `key` on each map."""
    lines = [f"# stonewall: reservation key of {node} on its data-path maps (multipath.conf(5))",
             "multipaths {"]
    for lun in luns:
        if lun.transport is not Transport.SG:
            continue
        lines.append("    multipath {")
        if lun.wwid:
            lines.append(f"        wwid {lun.wwid}")
        if lun.alias:
            lines.append(f"        alias {lun.alias}")
        lines += [f"        reservation_key 0x{key:016x}", "    }"]
    lines.append("}")
    return "\n".join(lines)


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=("sysfs", "udev", "multipathd"), default="sysfs",
                        help="where to discover (default: sysfs)")
    parser.add_argument("--sysfs-root", default="/sys", help="sysfs mount point (default /sys)")
    parser.add_argument("--with-multipathd", action="store_true",
                        help="add multipathd's dm and checker state of each path")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds each multipathd command may take (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def show_command(args: argparse.Namespace) -> int:
    """Run `multipath show`; returns the exit status."""
    return _guarded(args, lambda discovery: _print(args, _discovery_json(discovery),
                                                   _discovery_text(discovery)))


def resolve_command(args: argparse.Namespace) -> int:
    """Run `multipath resolve`; returns the exit status."""
    if args.lun:
        try:
            lun = load_config(resolve_config_path(args.config, os.environ)).lun(args.lun)
        except ConfigError as error:
            return _fail(f"configuration: {error}", EXIT_USAGE)
        except KeyError:
            return _fail(f"no LUN named {args.lun!r} in the configuration", EXIT_USAGE)
    else:
        lun = Lun(name="command-line", role=LunRole.SHARED, transport=Transport.SG,
                  wwid=args.wwid, alias=args.alias)

    def report(discovery: Discovery) -> int:
        found = resolve_lun_paths(lun, discovery)
        return _print(args, _lun_paths_json(found), _lun_paths_text(found))

    return _guarded(args, report)


def wwid_command(args: argparse.Namespace) -> int:
    """Run `multipath wwid`; returns the exit status."""
    results, status = [], EXIT_OK
    for spelling in args.spellings:
        try:
            wwid = parse_wwid(spelling)
        except InvalidWwid as error:
            results.append({"input": spelling, "error": str(error)})
            status = EXIT_UNRESOLVED
            continue
        results.append({"input": spelling, "wwid": str(wwid),
                        "kind": wwid.kind.name.lower() if wwid.kind else "untyped"})
    if args.json:
        print(json.dumps(results, indent=2))
        return status
    for result in results:
        if "error" in result:
            print(f"stonewall multipath: {result['error']}", file=sys.stderr)
        else:
            print(f"{result['wwid']}\t{result['kind']}\t{result['input']}")
    return status


def _guarded(args: argparse.Namespace, act: Callable[[Discovery], int]) -> int:
    """Discover from the chosen source, run `act(discovery)`, map errors to exit codes."""
    if args.with_multipathd and args.source == "multipathd":
        return _fail("--with-multipathd adds to --source sysfs or udev", EXIT_USAGE)
    try:
        if args.source == "multipathd":
            discovery = discover_multipathd(MultipathdRunner(), Deadline.after(args.timeout))
        else:
            discovery = (discover_udev() if args.source == "udev"
                         else discover_sysfs(args.sysfs_root))
            if args.with_multipathd:
                discovery = discovery.with_daemon_states(
                    discover_multipathd(MultipathdRunner(), Deadline.after(args.timeout)))
        return act(discovery)
    except (LunResolutionError, InvalidWwid) as error:
        return _fail(str(error), EXIT_UNRESOLVED)
    except DiscoveryUnavailable as error:
        return _fail(str(error), EXIT_UNAVAILABLE)
    except MultipathError as error:
        return _fail(str(error), EXIT_MULTIPATHD)


def _fail(message: str, status: int) -> int:
    print(f"stonewall multipath: {message}", file=sys.stderr)
    return status


def _print(args: argparse.Namespace, as_json: Any, as_text: str) -> int:
    print(json.dumps(as_json, indent=2) if args.json else as_text)
    return EXIT_OK


def _path_json(path: PathDevice) -> dict[str, Any]:
    link = None
    if path.link is not None:
        link = {"transport": "iscsi" if isinstance(path.link, IscsiLink) else "fc",
                **dataclasses.asdict(path.link)}
    return {"name": path.name, "hctl": path.hctl, "sg": path.sg,
            "wwid": str(path.wwid) if path.wwid else None, "state": path.state.value,
            "device_state": path.device_state, "dm_state": path.dm_state,
            "checker_state": path.checker_state, "link": link}


def _discovery_json(discovery: Discovery) -> dict[str, Any]:
    return {"source": discovery.source,
            "maps": [{"name": m.name, "wwid": str(m.wwid), "dm_name": m.dm_name,
                      "device": m.device, "suspended": m.suspended,
                      "paths": [_path_json(p) for p in m.paths]} for m in discovery.maps],
            "disks": [_path_json(d) for d in discovery.disks]}


def _lun_paths_json(found: LunPaths) -> dict[str, Any]:
    return {"lun": found.lun, "wwid": str(found.wwid),
            "map": found.map.name if found.map else None, "map_device": found.map_device,
            "dm_device": found.dm_device,
            "paths": [{"device": p.device, "in_map": p.in_map, **_path_json(p.path)}
                      for p in found.paths]}


def _path_text(path: PathDevice) -> str:
    states = "/".join(s for s in (path.device_state, path.dm_state, path.checker_state) if s)
    fields = [path.name, path.hctl or "-", path.sg or "-", path.state.value, states or "-"]
    if isinstance(path.link, IscsiLink):
        portal = f" {path.link.address}:{path.link.port}" if path.link.address else ""
        fields.append(f"iscsi {path.link.session or '-'} {path.link.target or '-'}{portal}")
    elif isinstance(path.link, FcLink):
        fields.append(f"fc {path.link.rport or '-'} wwnn {path.link.node_name or '-'} "
                      f"wwpn {path.link.port_name or '-'}")
    return "  ".join(fields)


def _discovery_text(discovery: Discovery) -> str:
    lines = [f"source {discovery.source}"]
    for m in discovery.maps:
        suspended = "  SUSPENDED" if m.suspended else ""
        lines.append(f"map {m.name}  wwid {m.wwid}  {m.dm_name or '-'}  {m.device}{suspended}")
        lines += [f"  {_path_text(p)}" for p in m.paths] or ["  (no paths)"]
    for disk in discovery.disks:
        lines.append(f"disk {_path_text(disk)}  wwid {disk.wwid or '-'}")
    if not discovery.maps and not discovery.disks:
        lines.append("no multipath maps and no SCSI disks")
    return "\n".join(lines)


def _lun_paths_text(found: LunPaths) -> str:
    where = (f"map {found.map.name}  {found.map_device}  {found.dm_device or '-'}"
             if found.map else "no map (plain SCSI disks)")
    lines = [f"lun {found.lun}  wwid {found.wwid}  {where}"]
    for path in found.paths:
        outside = "" if path.in_map else "  NOT IN MAP"
        lines.append(f"  {path.device}  {_path_text(path.path)}{outside}")
    return "\n".join(lines)
