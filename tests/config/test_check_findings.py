"""What `config check` now finds that it used to pass or word badly: WWIDs that
`stonewall multipath wwid` refuses, one LUN under two spellings, YAML syntax with the fix
spelled out, and password_env where a DRBD handler would need it."""
from __future__ import annotations

import pytest

from .conftest import ProblemsOf, WriteConfig

LUN_A = "3600a0b800000000000000000000000aa"


def _sg_luns(*wwids: str) -> str:
    return "".join(f"  - {{name: d{i}, role: shared, transport: sg, wwid: \"{wwid}\"}}\n"
                   for i, wwid in enumerate(wwids))


def _config(luns: str) -> str:
    return ("cluster: lab\nnodes:\n  - {name: kvm-a, id: 1}\nluns:\n" + luns
            + "fencing: [{level: storage, timeout: 10}]\n")


@pytest.mark.parametrize(("wwid", "reason"), [
    ("3600a0b80000000000000000000000a", "expected 16 or 32 hex digits after the type, got "
                                        "'600a0b80000000000000000000000a' (30)"),
    ("3600a0b80000000000000000000000zz", "expected 16 or 32 hex digits"),
])
def test_a_wwid_multipath_wwid_refuses_is_refused_with_the_same_reason(
        write_config: WriteConfig, problems_of: ProblemsOf, wwid: str, reason: str) -> None:
    [(line, key, message)] = problems_of(write_config(_config(_sg_luns(wwid))))
    assert (line, key) == (5, "luns[0].wwid")
    assert reason in message and "stonewall multipath wwid" in message


def test_one_lun_in_two_spellings_is_a_duplicate(write_config: WriteConfig,
                                                 problems_of: ProblemsOf) -> None:
    spelled_naa = "naa." + LUN_A[1:]
    problems = problems_of(write_config(_config(_sg_luns(LUN_A, spelled_naa.upper()))))
    assert problems == [(6, "luns[1].wwid", f"duplicate WWID {LUN_A}; already used by "
                                            "luns[0].wwid")]


@pytest.mark.parametrize(("text", "line", "fix"), [
    ("cluster: lab\n\tnodes: []\n", 2, "replace the tab with spaces"),
    ("cluster: lab\nnodes\n", 2, "write `key: value` on one line"),
    ("cluster: lab: prod\n", 1, "quote the value"),
    ("cluster: *lab\n", 1, "put the value in quotes"),
    ('cluster: "lab\n', 1, "add the closing quote"),
    ("cluster: lab\nluns: [1, 2\n", 2, "add the ']'"),
    ("nodes:\n  - name: a\n   id: 1\n", 3, "align it with its siblings"),
])
def test_a_yaml_syntax_error_says_how_to_fix_it(write_config: WriteConfig,
                                                problems_of: ProblemsOf, text: str, line: int,
                                                fix: str) -> None:
    [(found_line, key, message)] = problems_of(write_config(text))
    assert found_line == line and key == ""
    assert message.startswith("YAML syntax: ") and "; fix: " in message and fix in message


DRBD_POWER = """\
cluster: lab
nodes:
  - {name: kvm-a, id: 1, ipmi: {address: 127.0.0.1, username: admin, password_file: /etc/x.pw}}
  - {name: kvm-b, id: 2, ipmi: {address: 127.0.0.1, username: admin, password_env: KVM_B_PW}}
luns:
  - {name: arbiter0, role: arbiter, iscsi: {target: "iqn.2026-11.org.example:a", lun: 1, portals: ["127.0.0.1:3260"]}}
drbd:
  - {name: r0, luns: [arbiter0], peers: {0: kvm-a, 1: kvm-b}}
fencing: [{level: storage, timeout: 10}, {level: power, timeout: 30}]
"""


def test_password_env_is_refused_for_a_node_a_drbd_handler_may_power_off(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    [(line, key, message)] = problems_of(write_config(DRBD_POWER))
    assert (line, key) == (4, "nodes[1].ipmi.password_env")
    assert "drbdadm starts it without the service's environment" in message
    assert "KVM_B_PW would not be set there; use password_file" in message


def test_password_env_stays_allowed_without_drbd_or_without_a_power_level(
        write_config: WriteConfig) -> None:
    from stonewall.config.loader import load_config

    no_power = DRBD_POWER.replace(", {level: power, timeout: 30}", "")
    assert load_config(write_config(no_power, name="no-power.yaml")).nodes[1].ipmi is not None
    no_drbd = DRBD_POWER.replace("drbd:\n  - {name: r0, luns: [arbiter0], peers: {0: kvm-a, "
                                 "1: kvm-b}}\n", "")
    assert load_config(write_config(no_drbd, name="no-drbd.yaml")).drbd_resources == ()
