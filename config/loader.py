"""Load cluster.yaml into a validated ClusterConfig, or raise ConfigError listing every problem.

Order of work: read the file (ConfigUnreadable), compose the YAML node tree (syntax errors
carry the parser's line), load every section against the schema, assemble nodes and LUNs,
run the cross-section checks, then refuse an inline password in a file others can read.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from stonewall.config.document import DOCUMENT
from stonewall.config.errors import ConfigError, ConfigProblem, ConfigUnreadable
from stonewall.config.keys import derive_key
from stonewall.config.model import ClusterConfig, Lun, LunRole, Node
from stonewall.config.rules import check_sections
from stonewall.config.schema import INVALID, ProblemLog
from stonewall.config.secrets import exposure
from stonewall.storage.scsi.types import ReservationType
from stonewall.config.yaml_advice import error_line, syntax_advice

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
        key_lines=log.lines,
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


# libyaml's composer recurses once per nesting level: 40,000 nested '[' in a file crashed it
# with SIGSEGV (measured, PyYAML 6.0 on Debian 12), and the pure loader raises RecursionError
# from ~330 levels. No configuration nests flow collections more than a few levels deep.
MAX_FLOW_NESTING = 64
_FLOW_BRACKETS = re.compile(rb"[\[\]{}]")


def _flow_nesting(data: bytes) -> int:
    """How deep `[`/`{` nest in `data`, counted over every bracket (quoted ones too: an upper
    bound, cheap because only brackets are visited)."""
    if data.count(b"[") + data.count(b"{") <= MAX_FLOW_NESTING:
        return 0
    depth = deepest = 0
    for bracket in _FLOW_BRACKETS.finditer(data):
        depth = depth + 1 if bracket.group() in (b"[", b"{") else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def _compose(data: bytes, log: ProblemLog) -> yaml.Node | None:
    """The document's node tree; None (with the problem logged) when there is none."""
    if _flow_nesting(data) > MAX_FLOW_NESTING:
        log.add("", f"lists and mappings written with [ ] or {{ }} nest more than "
                    f"{MAX_FLOW_NESTING} levels deep; no setting nests that deep")
        return None
    try:
        try:
            root = yaml.compose(data, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            root = yaml.compose(data, Loader=yaml.SafeLoader)
    except RecursionError:  # block nesting (indentation) that the pure loader cannot follow
        log.add("", "the settings nest too deeply to be read; no setting nests that deep")
        return None
    except yaml.MarkedYAMLError as err:
        # Only the parser's own words: its snippet of the line could show an inline password.
        words = "; ".join(part for part in (err.context, err.problem) if part)
        log.add("", f"YAML syntax: {words}; fix: {syntax_advice(words)}", error_line(err))
        return None
    except yaml.reader.ReaderError as err:  # bytes that are not UTF-8, control characters
        what = "byte" if err.encoding != "unicode" else "character"
        log.add("", f"not a YAML text: {what} {err.character:#04x} at position {err.position}: "
                    f"{err.reason}; expected UTF-8 text")
        return None
    except yaml.YAMLError as err:  # anything else the parser refuses, on one line
        log.add("", f"not a YAML text: {' '.join(str(err).split())}")
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
    """LUNs with their transport (their own, else the file-wide default) and reservation
    type (their own, else the role's default)."""
    if loaded is INVALID or default_transport is INVALID:
        return INVALID
    return tuple(Lun(**{"reservation": default_reservation(fields["role"]), **fields,
                        "transport": fields["transport"] or default_transport})
                 for fields in loaded)


def default_reservation(role: LunRole) -> ReservationType:
    """Write Exclusive – All Registrants for guest LUNs: every path of the owner writes, an
    unregistered node cannot, and the reservation lasts while any registrant remains (DESIGN
    section 3). Registrants Only elsewhere, as fence_scsi uses it."""
    if role is LunRole.GUEST:
        return ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS
    return ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY


def _check_inline_passwords(nodes: Any, status: os.stat_result, log: ProblemLog) -> None:
    reason = exposure(status)
    if nodes is INVALID or reason is None:
        return
    for i, node in enumerate(nodes):
        if node.ipmi is not None and node.ipmi.password.inline is not None:
            log.add(f"nodes[{i}].ipmi.password", "an inline password is allowed only in a "
                    f"private config file, and this one is not ({reason}); use password_file "
                    f"or password_env, or chmod 600 {log.file}")

