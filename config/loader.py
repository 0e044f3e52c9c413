"""Load cluster.yaml into a validated ClusterConfig, or raise ConfigError listing every problem.

Order of work: read the file (ConfigUnreadable), compose the YAML node tree (syntax errors
carry the parser's line), load every section against the schema, assemble nodes and LUNs,
run the cross-section checks, then refuse an inline password in a file others can read.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from stonewall.config.document import DOCUMENT
from stonewall.config.errors import ConfigError, ConfigProblem, ConfigUnreadable
from stonewall.config.keys import derive_key
from stonewall.config.model import ClusterConfig, Lun, Node
from stonewall.config.rules import check_sections
from stonewall.config.schema import INVALID, ProblemLog
from stonewall.config.secrets import exposure

DEFAULT_CONFIG_PATH = "/etc/stonewall/cluster.yaml"
CONFIG_ENV = "STONEWALL_CONFIG"
_MAX_CONFIG_BYTES = 4 * 1024 * 1024  # far above any real cluster; stops a wrong path early


def resolve_config_path(cli_value: str | None, environ: Mapping[str, str]) -> str:
    """The config file to use: --config, else $STONEWALL_CONFIG, else /etc/stonewall/cluster.yaml."""
    return cli_value or environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH


def load_config(path: str) -> ClusterConfig:
    """The validated configuration in `path`; ConfigError (ConfigUnreadable) if it is not."""
    data, status = _read(path)
    log = ProblemLog(path)
    root = _compose(data, log)
    if root is None:
        raise ConfigError(log.problems)
    sections = dict(DOCUMENT.load_fields(root, "", log))
    sections["nodes"] = _nodes(sections["nodes"], sections["cluster"])
    sections["luns"] = _luns(sections["luns"], sections["transport"])
    check_sections(sections, log)
    _check_inline_passwords(sections["nodes"], status, log)
    if log.problems:
        raise ConfigError(log.problems)
    return ClusterConfig(
        source=path,
        cluster=sections["cluster"],
        nodes=sections["nodes"],
        luns=sections["luns"],
        drbd_resources=sections["drbd"],
        guests=sections["guests"],
        fencing=sections["fencing"],
        watchdog=sections["watchdog"],
        paths=sections["paths"],
        libvirt_uri=sections["libvirt_uri"],
        lab_guest_io=sections["lab_guest_io"],
    )


def problem_log_for(path: str) -> ProblemLog:
    """A ProblemLog that knows the line of every key path in `path` (already loaded once),
    for checks that run after loading and must still name the line."""
    data, _ = _read(path)
    log = ProblemLog(path)
    root = _compose(data, log)
    if root is not None:
        DOCUMENT.load_fields(root, "", log)
    log.problems.clear()
    return log


def _read(path: str) -> tuple[bytes, os.stat_result]:
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            data = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigUnreadable([ConfigProblem(path, None, "", f"cannot read: {err.strerror}")]) from None
    if len(data) > _MAX_CONFIG_BYTES:
        raise ConfigUnreadable([ConfigProblem(path, None, "", f"larger than {_MAX_CONFIG_BYTES} bytes")])
    return data, status


# libyaml's loader composes the same node tree, marks (line numbers) included, about ten times
# faster (147 -> 13 ms for a 512-LUN file, measured): every handler call loads the file. A
# file it rejects is parsed again by the pure-Python loader, whose messages say more (the
# alias name, the offending character).
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(data: bytes, log: ProblemLog) -> yaml.Node | None:
    """The document's node tree; None (with the problem logged) when there is none."""
    try:
        try:
            root = yaml.compose(data, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            root = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        # Only the parser's own words: its snippet of the line could show an inline password.
        mark = err.problem_mark or err.context_mark
        words = "; ".join(part for part in (err.context, err.problem) if part)
        log.add("", f"YAML syntax: {words}", mark.line + 1 if mark else None)
        return None
    except yaml.YAMLError as err:  # e.g. bytes that are not UTF-8 text
        log.add("", f"not a YAML text: {err}")
        return None
    if root is None:
        log.add("", f"the file holds no settings; expected {DOCUMENT.expected}")
    return root


def _nodes(loaded: Any, cluster: Any) -> Any:
    """Nodes with their keys: the configured one, else the derived one."""
    if loaded is INVALID or cluster is INVALID:
        return INVALID
    return tuple(Node(**{**fields, "key": fields["key"] or derive_key(cluster, fields["id"])})
                 for fields in loaded)


def _luns(loaded: Any, default_transport: Any) -> Any:
    """LUNs with their transport: their own, else the file-wide default."""
    if loaded is INVALID or default_transport is INVALID:
        return INVALID
    return tuple(Lun(**{**fields, "transport": fields["transport"] or default_transport})
                 for fields in loaded)


def _check_inline_passwords(nodes: Any, status: os.stat_result, log: ProblemLog) -> None:
    reason = exposure(status)
    if nodes is INVALID or reason is None:
        return
    for i, node in enumerate(nodes):
        if node.ipmi is not None and node.ipmi.password.inline is not None:
            log.add(f"nodes[{i}].ipmi.password", f"an inline password needs a private config file, "
                    f"but this one is {reason}; use password_file or password_env, or chmod 600 "
                    "the config file")

