"""The 8-byte reservation key of each node.

Derived key layout (big-endian, 8 bytes):  "SW" | sha256(cluster)[0:4] | node id (2 bytes).
- Stable: a function of the cluster name and node id only, so it survives reboots and
  reinstalls, and `status` on any node maps it back to a name.
- Unique in a cluster because node ids are, and never 0 (the prefix is not 0); SPC-4 treats
  key 0 as "no key" in REGISTER, so it must never be a node's key.
- Two clusters sharing a SAN differ in the 4 hash bytes, so a key of another cluster is
  reported as foreign instead of being mistaken for one of ours.
"""
from __future__ import annotations

import hashlib
import re

from stonewall.config.model import ClusterConfig

KEY_PREFIX = b"SW"  # 0x53 0x57
MAX_KEY = 2**64 - 1
MAX_NODE_ID = 0xFFFF
_KEY_TEXT = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def derive_key(cluster: str, node_id: int) -> int:
    """The derived reservation key of node `node_id` (1..65535) in cluster `cluster`."""
    if not cluster:
        raise ValueError("a cluster name is needed to derive a key")
    if not 1 <= node_id <= MAX_NODE_ID:
        raise ValueError(f"node id {node_id} is out of range; expected an integer 1..{MAX_NODE_ID}")
    cluster_hash = hashlib.sha256(cluster.encode("utf-8")).digest()[:4]
    return int.from_bytes(KEY_PREFIX + cluster_hash + node_id.to_bytes(2, "big"), "big")


def format_key(key: int) -> str:
    """0x and 16 lowercase hex digits, as sg_persist prints keys whose top byte is not 0."""
    return f"0x{key:016x}"


def parse_key(text: str) -> int:
    """A key from '0x'-prefixed hex or decimal digits; ValueError unless it is 1..2**64-1."""
    cleaned = text.strip()
    if not _KEY_TEXT.fullmatch(cleaned):
        raise ValueError(f"reservation key {text!r} is not a number; expected 0x followed by "
                         "hex digits, or decimal digits")
    key = int(cleaned, 16 if cleaned[:2].lower() == "0x" else 10)
    if key == 0:
        raise ValueError(f"reservation key {text!r} is 0, which SPC-4 reads as 'no key'; "
                         "expected a non-zero key")
    if key > MAX_KEY:
        raise ValueError(f"reservation key {text!r} does not fit in 8 bytes; expected at most "
                         f"{format_key(MAX_KEY)}")
    return key


def describe_key(config: ClusterConfig, key: int) -> str:
    """The name of the node that registers `key`, or 'foreign 0x...'."""
    node = config.node_by_key(key)
    return node.name if node else f"foreign {format_key(key)}"
