"""A normalised view of a ClusterConfig for people and tools (`stonewall config check`).

The summary is plain JSON data: defaults filled in, keys in hex, LUNs in arbiter order,
guests in start order, and T_safe worked out. It never holds a secret, only where it comes from.
"""
from __future__ import annotations

from typing import Any

from stonewall.config.keys import derive_key, format_key
from stonewall.config.model import ClusterConfig, FenceLevel, IpmiSettings, Lun, Node, Secret, Transport
from stonewall.config.rules import WITHOUT_LUNS
from stonewall.config.timing import t_safe


def summarise(config: ClusterConfig) -> dict[str, Any]:
    """The configuration as JSON-ready data."""
    watchdog = config.watchdog
    return {
        "source": config.source,
        "cluster": config.cluster,
        "libvirt_uri": config.libvirt_uri,
        "paths": vars(config.paths).copy(),
        "nodes": [_node(config.cluster, node) for node in config.nodes],
        "luns": [_lun(lun) for lun in config.luns_in_arbiter_order()],
        "drbd": [{"name": r.name, "luns": list(r.luns), "minors": list(r.minors),
                  "peers": {str(node_id): name for node_id, name in sorted(r.peers.items())}}
                 for r in config.drbd_resources],
        "guests": [{"name": g.name, "luns": list(g.luns), "home": g.home, "order": g.order,
                    "start_policy": g.start_policy.value}
                   for g in sorted(config.guests, key=lambda g: (g.order, g.name))],
        "fencing": [_level(level) for level in config.fencing],
        "watchdog": {**vars(watchdog), "t_safe": t_safe(watchdog)},
    }


def _level(level: FenceLevel) -> dict[str, Any]:
    return {"level": level.kind.value, "timeout": level.timeout,
            **({"devices": level.devices} if level.devices else {}),
            **({"also_after_storage": True} if level.also_after_storage else {})}


def _node(cluster: str, node: Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "id": node.id,
        "key": format_key(node.key),
        "key_source": "derived" if node.key == derive_key(cluster, node.id) else "configured",
        "initiator": node.initiator,
        "addresses": list(node.addresses),
        "power_delay": node.power_delay,
        "ipmi": _ipmi(node.ipmi) if node.ipmi else None,
    }


def _ipmi(ipmi: IpmiSettings) -> dict[str, Any]:
    return {"address": ipmi.address, "port": ipmi.port, "username": ipmi.username,
            "password": _secret_source(ipmi.password), "privilege": ipmi.privilege,
            "cipher_suite": ipmi.cipher_suite, "timeout": ipmi.timeout,
            "poll_interval": ipmi.poll_interval}


def _secret_source(secret: Secret) -> str:
    if secret.file:
        return f"file {secret.file}"
    return f"environment {secret.env}" if secret.env else "inline"


def _lun(lun: Lun) -> dict[str, Any]:
    if lun.transport is Transport.ISCSI and lun.iscsi:
        location = {"target": lun.iscsi.target, "lun": lun.iscsi.lun,
                    "paths": [str(portal) for portal in lun.iscsi.portals]}
    else:  # kernel devices: the paths are whatever multipath finds for this WWID / alias
        location = {"wwid": lun.wwid, "alias": lun.alias,
                    "paths": [f"/dev/mapper/{lun.alias}"] if lun.alias else [],
                    "control_paths": [str(p) for p in lun.iscsi.portals] if lun.iscsi else []}
    return {"name": lun.name, "role": lun.role.value, "order": lun.order,
            "transport": lun.transport.value, "reservation": lun.reservation.short, **location}


def _seconds(value: float) -> str:
    return f"{value:g}s"


def render_text(summary: dict[str, Any]) -> str:
    """The summary as the aligned text `stonewall config check` prints."""
    lines = [f"{summary['source']}: valid",
             f"cluster {summary['cluster']}  libvirt {summary['libvirt_uri']}",
             "paths " + "  ".join(f"{k} {v}" for k, v in summary["paths"].items()),
             "", "nodes:"]
    for node in summary["nodes"]:
        ipmi = node["ipmi"]
        power = (f"ipmi {ipmi['address']}:{ipmi['port']} user {ipmi['username']} password "
                 f"from {ipmi['password']}" if ipmi else "no ipmi")
        lines.append(f"  {node['name']}  id {node['id']}  key {node['key']} ({node['key_source']})"
                     f"  initiator {node['initiator'] or '-'}  addresses "
                     f"{', '.join(node['addresses']) or '-'}  {power}"
                     f"  power_delay {_seconds(node['power_delay'])}")
    lines += ["", "luns (arbiter order):"]
    for rank, lun in enumerate(summary["luns"], 1):
        where = (f"{lun['target']} lun {lun['lun']}" if lun["transport"] == "iscsi"
                 else f"wwid {lun['wwid'] or '-'} alias {lun['alias'] or '-'}")
        lines.append(f"  {rank}. {lun['name']}  {lun['role']}  order {lun['order']}  "
                     f"{lun['transport']}  reservation {lun['reservation']}  {where}  paths "
                     f"{', '.join(lun['paths']) or 'found by multipath'}"
                     + (f"  control path {', '.join(lun['control_paths'])}"
                        if lun.get("control_paths") else ""))
    lines += ["", "drbd:"] + ([
        f"  {r['name']}  luns {', '.join(r['luns'])}  minors "
        f"{', '.join(map(str, r['minors'])) or '-'}  peers "
        f"{' '.join(f'{i}={n}' for i, n in r['peers'].items()) or '-'}"
        for r in summary["drbd"]] or ["  -"])
    lines += ["", "guests (start order):"] + ([
        f"  {g['name']}  home {g['home'] or '-'}  order {g['order']}  start_policy "
        f"{g['start_policy']}  luns {', '.join(g['luns']) or '-'}"
        for g in summary["guests"]] or ["  -"])
    if not summary["luns"]:
        lines += ["", f"note: {WITHOUT_LUNS}"]
    lines += ["", "fencing:"] + [
        f"  {rank}. {level['level']}{' ' + level['devices'] if 'devices' in level else ''}"
        f" (timeout {_seconds(level['timeout'])})"
        f"{', also after storage' if level.get('also_after_storage') else ''}"
        for rank, level in enumerate(summary["fencing"], 1)]
    wd = summary["watchdog"]
    lines += ["", "watchdog:",
              f"  device {wd['device']}  stand-in {'allowed' if wd['allow_standin'] else 'not allowed'}",
              "  " + ", ".join(f"{k} {_seconds(wd[k])}" for k in
                               ("interval", "io_deadline", "check_deadline", "timeout", "grace", "margin")),
              f"  T_safe = check_deadline + timeout + margin = {_seconds(wd['check_deadline'])} + "
              f"{_seconds(wd['timeout'])} + {_seconds(wd['margin'])} = {_seconds(wd['t_safe'])}"]
    return "\n".join(lines)
