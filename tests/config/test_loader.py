"""Loading cluster.yaml: the example, defaults, and every kind of problem with its line."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stonewall.config.errors import ConfigError, ConfigUnreadable
from stonewall.config.keys import derive_key
from stonewall.config.loader import DEFAULT_CONFIG_PATH, load_config, resolve_config_path
from stonewall.config.model import (
    FenceLevelKind,
    LunRole,
    Portal,
    StartPolicy,
    Transport,
    WatchdogSettings,
)
from stonewall.storage.scsi.types import ReservationType

from .conftest import ProblemsOf, WriteConfig


# --- the example and defaults ---------------------------------------------------------------

def test_the_example_file_loads_with_every_section(example_path: str) -> None:
    config = load_config(example_path)
    assert config.source == example_path
    assert config.cluster == "prod1"
    assert [n.name for n in config.nodes] == ["kvm-a", "kvm-b"]
    assert [n.key for n in config.nodes] == [derive_key("prod1", 1), derive_key("prod1", 2)]
    assert config.node("kvm-a").ipmi.address == "198.51.100.11"
    assert config.node("kvm-b").power_delay == 5
    assert [lun.name for lun in config.luns_in_arbiter_order()][:2] == ["arbiter0", "arbiter1"]
    arbiter = config.lun("arbiter0")
    assert (arbiter.transport, arbiter.has_data_path, len(arbiter.iscsi.portals)) == (
        Transport.ISCSI, False, 2)
    web = config.lun("web1-disk")
    assert (web.transport, web.has_data_path, web.wwid) == (
        Transport.SG, True, "3600a098038304437415d4b6a59684a51")
    assert [str(p) for p in web.iscsi.portals] == ["192.0.2.101:3260"]  # its control path
    assert web.reservation is ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS
    assert config.lun("db1-disk").reservation is ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS
    assert config.lun("arbiter1").reservation is ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
    (r0,) = config.drbd_resources
    assert (r0.name, r0.luns, r0.minors, r0.peers) == ("r0", ("arbiter0", "arbiter1"), (0,),
                                                       {0: "kvm-a", 1: "kvm-b"})
    assert [(g.name, g.home, g.start_policy) for g in config.guests] == [
        ("web1", "kvm-a", StartPolicy.AFTER_POWER_OFF_OR_T_SAFE),
        ("db1", "kvm-b", StartPolicy.AFTER_POWER_OFF_OR_T_SAFE)]
    assert [level.kind for level in config.fencing] == [FenceLevelKind.STORAGE, FenceLevelKind.POWER]
    assert config.watchdog == WatchdogSettings(interval=1, io_deadline=2, check_deadline=5,
                                               timeout=10, grace=5, margin=2)


def test_the_drbd_over_san_example_loads(example_path: str) -> None:
    config = load_config(str(Path(example_path).with_name("drbd-over-san.yaml")))
    assert all(lun.has_data_path for lun in config.luns)
    assert config.drbd_resources[0].luns == ("arbiter0", "r0-backing-a", "r0-backing-b")


def test_absent_optional_keys_take_the_documented_defaults(write_config: WriteConfig,
                                                           minimal: str) -> None:
    config = load_config(write_config(minimal))
    lun = config.lun("arbiter0")
    assert (lun.transport, lun.order, lun.reservation) == (
        Transport.ISCSI, 100, ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
    assert lun.iscsi.portals == (Portal("127.0.0.1", 3260),)
    assert config.libvirt_uri == "qemu:///system"
    assert config.paths.state_dir == "/var/lib/stonewall"
    assert config.watchdog == WatchdogSettings()
    assert (config.drbd_resources, config.guests) == ((), ())
    node = config.node("kvm-a")
    assert (node.ipmi, node.initiator, node.addresses, node.power_delay) == (None, None, (), 0.0)


def test_an_explicit_key_wins_in_hex_or_decimal_and_quoted_or_not(write_config: WriteConfig) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - {name: kvm-a, id: 1, key: 0x5357aaaa00000001}
          - {name: kvm-b, id: 2, key: "0x5357AAAA00000002"}
          - {name: kvm-c, id: 3, key: 12345}
          - {name: kvm-d, id: 4}
        luns:
          - {name: d0, role: shared, transport: sg, wwid: 360014051234567890123456789abcdef}
        fencing: [{level: storage, timeout: 10}]
        """)
    assert [n.key for n in load_config(path).nodes] == [
        0x5357AAAA00000001, 0x5357AAAA00000002, 12345, derive_key("lab", 4)]


def test_the_file_wide_transport_is_the_default_and_a_lun_may_override_it(
        write_config: WriteConfig) -> None:
    path = write_config("""\
        cluster: lab
        transport: sg
        nodes: [{name: kvm-a, id: 1}]
        luns:
          - {name: d0, role: shared, alias: mpatha}
          - {name: d1, role: arbiter, transport: iscsi, reservation: 5,
             iscsi: {target: "iqn.2026-11.org.example:a", lun: 0, portals: ["[::1]:3261", "127.0.0.2"]}}
        fencing: [{level: storage, timeout: 10}]
        """)
    config = load_config(path)
    assert config.lun("d0").transport is Transport.SG
    d1 = config.lun("d1")
    assert d1.transport is Transport.ISCSI
    assert d1.reservation is ReservationType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY
    assert d1.iscsi.portals == (Portal("::1", 3261), Portal("127.0.0.2", 3260))


# --- structural problems: each names its line, key path and what was expected ---------------

def test_a_value_out_of_range_names_line_key_and_range(write_config: WriteConfig,
                                                       problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - name: kvm-a
            id: 1
          - name: kvm-b
            id: 0
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
        fencing: [{level: storage, timeout: 10}]
        """)
    assert problems_of(path) == [(6, "nodes[1].id", "0 is out of range; expected an integer 1..65535")]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:6: nodes[1].id: 0 is out of range; expected an integer 1..65535"


def test_every_problem_in_the_file_is_reported_at_once(write_config: WriteConfig,
                                                       problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: Lab_1
        transprot: iscsi
        nodes:
          - name: kvm-a
            id: two
            adresses: [192.0.2.1]
        luns:
          - name: a0
            role: arbitrer
            reservation: wex
            order: -1
            iscsi: {target: "iqn.2026-11.org.example:a", lun: 1, portals: []}
        fencing:
          - {level: stroage, timeout: 0}
        watchdog: {interval: yes, allow_standin: 1}
        """)
    assert problems_of(path) == [
        (1, "cluster", "'Lab_1' is not valid; expected a name of lowercase letters, digits and "
                       "'-', starting with a letter or digit, at most 63 characters"),
        (2, "transprot", "unknown key (did you mean 'transport'?)"),
        (5, "nodes[0].id", "'two' is not an integer; expected an integer 1..65535"),
        (6, "nodes[0].adresses", "unknown key (did you mean 'addresses'?)"),
        (9, "luns[0].role", "'arbitrer' is not known (did you mean 'arbiter'?); expected one of: "
                            "arbiter, guest, shared"),
        (10, "luns[0].reservation", "unknown reservation type 'wex'; expected one of we, ea, "
                                    "we-ro, ea-ro, we-ar, ea-ar"),
        (11, "luns[0].order", "-1 is out of range; expected an integer 0..1000000"),
        (12, "luns[0].iscsi.portals", "got an empty list; expected a list, each item HOST:PORT "
                                      "(at least 1)"),
        (14, "fencing[0].level", "'stroage' is not known (did you mean 'storage'?); expected one "
                                 "of: storage, power, wait-t-safe, agent, fabric"),
        (14, "fencing[0].timeout", "0 is out of range; expected a number of seconds > 0"),
        (15, "watchdog.allow_standin", "'1' is not a boolean; expected true or false"),
        (15, "watchdog.interval", "'yes' is not a number; expected a number of seconds > 0"),
    ]


def test_an_unknown_key_far_from_any_name_lists_the_known_ones(write_config: WriteConfig,
                                                               problems_of: ProblemsOf,
                                                               minimal: str) -> None:
    path = write_config(minimal + "watchdog: {colour: blue}\n")
    assert problems_of(path) == [(11, "watchdog.colour", "unknown key; expected one of: device, "
                                  "allow_standin, interval, io_deadline, check_deadline, timeout, "
                                  "grace, margin")]


def test_a_duplicate_yaml_key_is_an_error_naming_both_lines(write_config: WriteConfig,
                                                            problems_of: ProblemsOf,
                                                            minimal: str) -> None:
    path = write_config(minimal + "cluster: lab2\n")
    assert problems_of(path) == [(11, "cluster", "duplicate key; first given at line 1")]


def test_a_missing_required_key_says_what_belongs_there(write_config: WriteConfig,
                                                        problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - name: kvm-a
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
        """)
    assert problems_of(path) == [
        (None, "fencing", "required key is missing; expected a list, each item a mapping with keys "
                          "level, timeout, devices, also_after_storage (at least 1)"),
        (3, "nodes[0].id", "required key is missing; expected an integer 1..65535"),
    ]


def test_a_section_of_the_wrong_shape_says_what_shape_was_expected(write_config: WriteConfig,
                                                                   problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes: {name: kvm-a, id: 1}
        luns:
          - [d0, shared]
        fencing: [{level: storage, timeout: 10}]
        """)
    (nodes, luns) = problems_of(path)
    assert nodes[:2] == (2, "nodes") and nodes[2].startswith("got a mapping; expected a list")
    assert luns[:2] == (4, "luns[0]") and luns[2].startswith("got a list; expected a mapping with keys name, role")


@pytest.mark.parametrize(("text", "line", "words"), [
    # Noticed at the end of the file; reported where the '[' opened, the line to edit.
    ("cluster: lab\nnodes:\n  - name: [kvm-a\n", 3, "expected ',' or ']'"),
    ("cluster: lab\n\tnodes: []\n", 2, "found character '\\t' that cannot start any token"),
    ("cluster: lab\nnodes: *undefined\n", 2, "found undefined alias 'undefined'"),
    ("cluster: lab\n---\ncluster: other\n", 2, "expected a single document in the stream"),
])
def test_broken_yaml_is_reported_with_the_parsers_line(write_config: WriteConfig,
                                                       problems_of: ProblemsOf,
                                                       text: str, line: int, words: str) -> None:
    ((problem_line, key, message),) = problems_of(write_config(text))
    assert (problem_line, key) == (line, "")
    assert message.startswith("YAML syntax: ") and words in message


def test_an_empty_file_says_what_it_should_hold(write_config: WriteConfig,
                                                problems_of: ProblemsOf) -> None:
    ((line, key, message),) = problems_of(write_config("# nothing yet\n"))
    assert (line, key) == (None, "")
    assert message.startswith("the file holds no settings; expected a mapping with keys cluster")


def test_a_file_of_another_type_is_refused_at_line_1(write_config: WriteConfig,
                                                     problems_of: ProblemsOf) -> None:
    ((line, key, message),) = problems_of(write_config("- cluster\n- lab\n"))
    assert (line, key) == (1, "") and message.startswith("got a list; expected a mapping")


def test_yaml_1_1_words_are_not_taken_for_numbers_or_flags(write_config: WriteConfig,
                                                           problems_of: ProblemsOf,
                                                           minimal: str) -> None:
    path = write_config(minimal + "watchdog: {timeout: .inf, margin: ~, allow_standin: maybe}\n")
    assert problems_of(path) == [
        (11, "watchdog.allow_standin", "'maybe' is not a boolean; expected true or false"),
        (11, "watchdog.margin", "got an empty value; expected a number of seconds >= 0"),
        (11, "watchdog.timeout", ".inf is not a finite number; expected a number of seconds > 0"),
    ]


def test_portals_addresses_and_paths_are_checked_for_form(write_config: WriteConfig,
                                                          problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        paths: {state_dir: var/lib/stonewall}
        nodes:
          - {name: kvm-a, id: 1, addresses: [kvm-b.example], initiator: kvm-a}
        luns:
          - name: a0
            role: arbiter
            iscsi: {target: "iqn.2026-11.org.example:a", lun: 1, portals: ["127.0.0.1:99999", "[::1"]}
        fencing: [{level: storage, timeout: 10}]
        watchdog: {device: watchdog0}
        """)
    assert problems_of(path) == [
        (2, "paths.state_dir", "'var/lib/stonewall' is not valid; expected an absolute path"),
        (4, "nodes[0].addresses[0]", "'kvm-b.example' is not an IP address; expected an IPv4 or "
                                     "IPv6 address without port"),
        (4, "nodes[0].initiator", "'kvm-a' is not valid; expected an iSCSI name starting with iqn., "
                                  "eui. or naa."),
        (8, "luns[0].iscsi.portals[0]", "portal '127.0.0.1:99999' is not valid; expected HOST or "
                                        "HOST:PORT with a port 1..65535 ([ADDRESS]:PORT for IPv6)"),
        (8, "luns[0].iscsi.portals[1]", "portal '[::1' is not valid; expected HOST or HOST:PORT "
                                        "with a port 1..65535 ([ADDRESS]:PORT for IPv6)"),
        (10, "watchdog.device", "watchdog device 'watchdog0' is not valid; expected an absolute "
                                "device path or standin:/absolute/socket/path"),
    ]


def test_ipmi_needs_exactly_one_password_source(write_config: WriteConfig,
                                                problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - name: kvm-a
            id: 1
            ipmi: {address: 127.0.0.1, username: admin, password_file: /etc/a.pw, password_env: A_PW}
          - name: kvm-b
            id: 2
            ipmi: {address: 127.0.0.1, username: admin}
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
        fencing: [{level: storage, timeout: 10}]
        """)
    assert problems_of(path) == [
        (5, "nodes[0].ipmi", "needs exactly one of password_file, password_env or password (2 given)"),
        (8, "nodes[1].ipmi", "needs exactly one of password_file, password_env or password (0 given)"),
    ]


def test_drbd_peer_node_ids_may_not_repeat_in_any_spelling(write_config: WriteConfig,
                                                           problems_of: ProblemsOf,
                                                           minimal: str) -> None:
    path = write_config(minimal + "drbd:\n  - {name: r0, luns: [arbiter0], peers: {1: kvm-a, 0x1: kvm-b, 40: kvm-b}}\n")
    assert problems_of(path) == [
        (12, "drbd[0].peers.0x1", "duplicate key 1"),
        (12, "drbd[0].peers.40", "40 is out of range; expected an integer 0..31"),
    ]


# --- cross-section rules ---------------------------------------------------------------------

def test_duplicate_node_names_ids_keys_initiators_and_addresses_are_errors(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - {name: kvm-a, id: 1, initiator: "iqn.2026-11.org.example:a", addresses: [192.0.2.1]}
          - {name: kvm-a, id: 2, initiator: "iqn.2026-11.org.example:a", addresses: [192.0.2.1]}
          - {name: kvm-c, id: 3, key: 0x5357aaaa00000001}
          - {name: kvm-d, id: 4, key: 0x5357aaaa00000001}
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
        fencing: [{level: storage, timeout: 10}]
        """)
    assert problems_of(path) == [
        (4, "nodes[1].addresses[0]", "duplicate address 192.0.2.1; already used by nodes[0].addresses[0]"),
        (4, "nodes[1].initiator", "duplicate initiator name iqn.2026-11.org.example:a; already used "
                                  "by nodes[0].initiator"),
        (4, "nodes[1].name", "duplicate node name kvm-a; already used by nodes[0].name"),
        (6, "nodes[3].key", "duplicate reservation key 0x5357aaaa00000001; already used by nodes[2].key"),
    ]


def test_a_duplicate_node_id_is_reported_once_not_again_as_a_duplicate_derived_key(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - {name: kvm-a, id: 7}
          - {name: kvm-b, id: 7}
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
        fencing: [{level: storage, timeout: 10}]
        """)
    assert problems_of(path) == [(4, "nodes[1].id", "duplicate node id 7; already used by nodes[0].id")]


def test_an_explicit_key_equal_to_another_nodes_derived_key_is_an_error(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config(f"""\
        cluster: lab
        nodes:
          - {{name: kvm-a, id: 1}}
          - {{name: kvm-b, id: 2, key: {derive_key("lab", 1):#x}}}
        luns: [{{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}}]
        fencing: [{{level: storage, timeout: 10}}]
        """)
    assert problems_of(path) == [(4, "nodes[1].key", "duplicate reservation key 0x5357a51146d30001; "
                                  "already used by nodes[0].key")]


def test_lun_names_and_locations_must_be_unique_and_fit_their_transport(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes: [{name: kvm-a, id: 1}]
        luns:
          - {name: a0, role: arbiter, iscsi: {target: "iqn.2026-11.org.example:a", lun: 1, portals: [127.0.0.1]}}
          - {name: a0, role: arbiter, iscsi: {target: "iqn.2026-11.org.example:a", lun: 1, portals: [127.0.0.1]}}
          - {name: d0, role: shared}
          - {name: d1, role: shared, transport: sg}
          - {name: d2, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa", alias: mpatha}
          - {name: d3, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa", alias: mpatha}
        fencing: [{level: storage, timeout: 10}]
        """)
    assert problems_of(path) == [
        (5, "luns[1].iscsi", "duplicate iSCSI location iqn.2026-11.org.example:a LUN 1; already used "
                             "by luns[0].iscsi"),
        (5, "luns[1].name", "duplicate LUN name a0; already used by luns[0].name"),
        (6, "luns[2]", "LUN d0 uses the iscsi transport but has no iscsi: location; expected "
                       "iscsi: {target, lun, portals}"),
        (7, "luns[3]", "LUN d1 uses the sg transport but has neither wwid: nor alias:; expected at "
                       "least one of them"),
        (9, "luns[5].alias", "duplicate alias mpatha; already used by luns[4].alias"),
        (9, "luns[5].wwid", "duplicate WWID 3600a0b800000000000000000000000aa; already used by luns[4].wwid"),
    ]


def test_drbd_resources_and_guests_must_name_existing_luns_and_nodes(
        write_config: WriteConfig, problems_of: ProblemsOf, minimal: str) -> None:
    path = write_config(minimal + textwrap.dedent("""\
        drbd:
          - {name: r0, luns: [arbiter0, arbitr0], minors: [0], peers: {0: kvm-a, 1: kvm_b}}
          - {name: r0, luns: [arbiter0], minors: [0], peers: {0: kvm-a, 1: kvm-a}}
        guests:
          - {name: web1, luns: [web1-disk], home: kvma}
          - {name: web1, luns: [arbiter0]}
        """))
    assert problems_of(path) == [
        (12, "drbd[0].luns[1]", "unknown LUN 'arbitr0' (did you mean 'arbiter0'?); expected one of: arbiter0"),
        (12, "drbd[0].peers.1", "unknown node 'kvm_b' (did you mean 'kvm-b'?); expected one of: kvm-a, kvm-b"),
        (13, "drbd[1].minors[0]", "duplicate DRBD minor 0; already used by drbd[0].minors[0]"),
        (13, "drbd[1].name", "duplicate DRBD resource r0; already used by drbd[0].name"),
        (13, "drbd[1].peers.1", "duplicate peer node kvm-a; already used by drbd[1].peers.0"),
        (15, "guests[0].home", "unknown node 'kvma' (did you mean 'kvm-a'?); expected one of: kvm-a, kvm-b"),
        (15, "guests[0].luns[0]", "unknown LUN 'web1-disk'; expected one of: arbiter0"),
        (16, "guests[1].name", "duplicate guest name web1; already used by guests[0].name"),
    ]


def test_two_guests_cannot_share_a_guest_lun(write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes: [{name: kvm-a, id: 1}]
        luns:
          - {name: disk1, role: guest, transport: sg, wwid: "3600a0b800000000000000000000000aa"}
          - {name: data0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000bb"}
        fencing: [{level: storage, timeout: 10}]
        guests:
          - {name: web1, luns: [disk1, data0]}
          - {name: web2, luns: [disk1, data0]}
        """)
    # data0 is a shared LUN (e.g. a cluster file system): listing it twice is fine.
    assert problems_of(path) == [
        (9, "guests[1].luns[0]", "duplicate guest LUN disk1; already used by guests[0].luns[0]")]


def test_fencing_levels_are_known_once_each_and_wait_t_safe_comes_last(
        write_config: WriteConfig, problems_of: ProblemsOf) -> None:
    path = write_config("""\
        cluster: lab
        nodes:
          - name: kvm-a
            id: 1
            ipmi: {address: 127.0.0.1, username: admin, password_env: KVM_A_PW}
          - {name: kvm-b, id: 2}
        luns: [{name: d0, role: shared, transport: sg, wwid: "3600a0b800000000000000000000000aa"}]
        fencing:
          - {level: wait-t-safe, timeout: 20}
          - {level: storage, timeout: 10}
          - {level: power, timeout: 30}
          - {level: storage, timeout: 10}
        """)
    assert problems_of(path) == [
        (9, "fencing[0].level", "wait-t-safe must be the last level"),
        (11, "fencing[2].level", "the power level needs ipmi: settings for every node, and node "
                                 "kvm-b has none"),
        (12, "fencing[3].level", "duplicate fencing level storage; already used by fencing[1].level"),
    ]


@pytest.mark.parametrize(("watchdog", "message"), [
    ("{check_deadline: 12, timeout: 10, grace: 5}",
     "check_deadline (12s) must be less than timeout (10s)"),
    ("{interval: 2, io_deadline: 3, check_deadline: 5, grace: 5}",
     "interval (2s) + io_deadline (3s) = 5s must be less than check_deadline (5s): a healthy "
     "check that starts on time and takes its whole io_deadline would stop the petting"),
])
def test_watchdog_timing_rules_name_the_numbers(write_config: WriteConfig, problems_of: ProblemsOf,
                                                minimal: str, watchdog: str, message: str) -> None:
    path = write_config(minimal + f"watchdog: {watchdog}\n")
    assert (11, "watchdog", message) in problems_of(path)


def test_the_watchdog_stand_in_needs_the_operators_consent(write_config: WriteConfig,
                                                           problems_of: ProblemsOf,
                                                           minimal: str) -> None:
    refused = write_config(minimal + "watchdog: {device: \"standin:/run/sw.sock\"}\n")
    assert problems_of(refused) == [
        (11, "watchdog.device", "the userspace stand-in is used only with allow_standin: true; "
                                "expected a real watchdog device such as /dev/watchdog")]
    allowed = write_config(minimal + "watchdog: {device: \"standin:/run/sw.sock\", allow_standin: true}\n",
                           name="allowed.yaml")
    assert load_config(allowed).watchdog.device == "standin:/run/sw.sock"


def test_cross_section_checks_run_where_their_sections_are_sound(write_config: WriteConfig,
                                                                 problems_of: ProblemsOf,
                                                                 minimal: str) -> None:
    # nodes[1] is broken, so references to nodes are not judged (no echo of that mistake),
    # but the guest's unknown LUN is still reported in the same run.
    path = write_config(minimal.replace("id: 2", "id: 0")
                        + "guests:\n  - {name: web1, luns: [arbiterO], home: kvm-b}\n")
    assert problems_of(path) == [
        (4, "nodes[1].id", "0 is out of range; expected an integer 1..65535"),
        (12, "guests[0].luns[0]", "unknown LUN 'arbiterO' (did you mean 'arbiter0'?); expected one "
                                  "of: arbiter0"),
    ]


# --- reading the file ----------------------------------------------------------------------

def test_a_missing_file_is_unreadable_not_invalid(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    with pytest.raises(ConfigUnreadable) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"


def test_a_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigUnreadable, match="Is a directory"):
        load_config(str(tmp_path))


def test_resolve_config_path_prefers_the_option_then_the_environment_then_etc() -> None:
    env = {"STONEWALL_CONFIG": "/srv/env.yaml"}
    assert resolve_config_path("/srv/cli.yaml", env) == "/srv/cli.yaml"
    assert resolve_config_path(None, env) == "/srv/env.yaml"
    assert resolve_config_path(None, {}) == DEFAULT_CONFIG_PATH == "/etc/stonewall/cluster.yaml"
    assert resolve_config_path(None, {"STONEWALL_CONFIG": ""}) == DEFAULT_CONFIG_PATH


def test_roles_parse_to_their_enum(write_config: WriteConfig, minimal: str) -> None:
    assert load_config(write_config(minimal)).lun("arbiter0").role is LunRole.ARBITER


def test_the_manual_shows_the_example_file_verbatim(example_path: str) -> None:
    manual = (Path(example_path).parents[1] / "docs" / "config.md").read_text()
    example = Path(example_path).read_text()
    assert f"```yaml\n{example}```\n" in manual


# --- hostile files (found by tests/fuzz/test_fuzz_config.py) ---------------------------------

def test_flow_collections_nested_past_the_limit_are_refused_before_libyaml_sees_them(
        write_config: WriteConfig, problems_of: ProblemsOf, minimal: str) -> None:
    # 40,000 levels crashed libyaml's composer (SIGSEGV): the handler died without a word.
    depth = 40_000
    path = write_config(minimal + "guests: " + "[" * depth + "]" * depth + "\n")
    assert problems_of(path) == [(None, "", "lists and mappings written with [ ] or { } nest "
                                            "more than 64 levels deep; no setting nests that deep")]


def test_a_number_of_thousands_of_digits_is_a_problem_of_one_short_line(
        write_config: WriteConfig, problems_of: ProblemsOf, minimal: str) -> None:
    too_long = write_config(minimal.replace("id: 1", "id: " + "9" * 5000, 1))
    [(_, key, message)] = problems_of(too_long)
    assert key == "nodes[0].id" and "5000 characters, too many for a number" in message
    assert len(message) < 200
    too_big = write_config(minimal.replace("timeout: 10", "timeout: " + "9" * 400, 1))
    [(_, key, message)] = problems_of(too_big)
    assert key == "fencing[0].timeout" and message.startswith("999") and "not a finite" in message
    assert len(message) < 200


def test_bytes_that_are_not_utf8_are_one_line_naming_the_position(
        write_config: WriteConfig, tmp_path: Path, problems_of: ProblemsOf) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"cluster: lab\x00\n")
    path.chmod(0o600)
    assert problems_of(str(path)) == [(None, "", "not a YAML text: character 0x00 at position "
                                                 "12: special characters are not allowed; "
                                                 "expected UTF-8 text")]


def test_a_long_value_a_parser_refuses_is_cut_short_in_its_message(
        write_config: WriteConfig, problems_of: ProblemsOf, minimal: str) -> None:
    path = write_config(minimal.replace('portals: ["127.0.0.1:3260"]',
                                        f'portals: ["{"p " * 2500}"]', 1))
    [(_, key, message)] = problems_of(path)
    assert key == "luns[0].iscsi.portals[0]" and "(5000 characters)" in message
    assert len(message) < 200
