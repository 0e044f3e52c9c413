"""The reservation key scheme: derivation vectors, formatting, parsing, naming keys."""
from __future__ import annotations

import hashlib

import pytest

from stonewall.config.keys import derive_key, describe_key, format_key, parse_key
from stonewall.config.loader import load_config


@pytest.mark.parametrize(("cluster", "node_id", "key"), [
    ("prod1", 1, 0x5357750F7EDA0001),
    ("prod1", 2, 0x5357750F7EDA0002),
    ("prod2", 1, 0x5357D30C129A0001),
    ("lab", 65535, 0x5357A51146D3FFFF),
])
def test_derived_keys_match_the_published_vectors(cluster: str, node_id: int, key: int) -> None:
    assert derive_key(cluster, node_id) == key


def test_a_derived_key_is_sw_then_four_hash_bytes_then_the_node_id() -> None:
    raw = derive_key("prod1", 0x0102).to_bytes(8, "big")
    assert raw[:2] == b"SW"
    assert raw[2:6] == hashlib.sha256(b"prod1").digest()[:4]
    assert raw[6:] == b"\x01\x02"


def test_clusters_sharing_a_san_get_different_keys_for_the_same_node_id() -> None:
    assert derive_key("prod1", 1) != derive_key("prod2", 1)


def test_keys_are_never_zero_and_unique_over_every_node_id() -> None:
    keys = {derive_key("prod1", node_id) for node_id in range(1, 65536)}
    assert len(keys) == 65535 and 0 not in keys


@pytest.mark.parametrize("node_id", [0, -1, 65536])
def test_node_ids_outside_1_to_65535_have_no_key(node_id: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        derive_key("prod1", node_id)


def test_an_empty_cluster_name_has_no_key() -> None:
    with pytest.raises(ValueError, match="cluster name"):
        derive_key("", 1)


def test_format_key_prints_sixteen_hex_digits_as_sg_persist_does() -> None:
    assert format_key(0x5357750F7EDA0001) == "0x5357750f7eda0001"
    assert format_key(1) == "0x0000000000000001"


@pytest.mark.parametrize(("text", "key"), [
    ("0x5357750f7eda0001", 0x5357750F7EDA0001),
    ("0X5357750F7EDA0001", 0x5357750F7EDA0001),
    ("  0x1 ", 1),
    ("42", 42),
    ("0xffffffffffffffff", 2**64 - 1),
])
def test_parse_key_reads_hex_and_decimal(text: str, key: int) -> None:
    assert parse_key(text) == key
    assert parse_key(format_key(key)) == key


@pytest.mark.parametrize(("text", "reason"), [
    ("0", "is 0"),
    ("0x0000000000000000", "is 0"),
    ("0x10000000000000000", "does not fit in 8 bytes"),
    ("-1", "is not a number"),
    ("0x", "is not a number"),
    ("0x12g4", "is not a number"),
    ("kvm-a", "is not a number"),
    ("1_000", "is not a number"),
    ("", "is not a number"),
])
def test_parse_key_refuses_zero_oversized_and_garbage(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_key(text)


def test_describe_key_names_the_node_or_calls_the_key_foreign(example_path: str) -> None:
    config = load_config(example_path)
    assert describe_key(config, derive_key("prod1", 2)) == "kvm-b"
    assert describe_key(config, derive_key("prod2", 2)) == "foreign 0x5357d30c129a0002"
    assert describe_key(config, derive_key("prod1", 3)) == "foreign 0x5357750f7eda0003"
