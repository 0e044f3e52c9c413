"""A DRBD pair on local disks: no shared LUNs, fenced by power and agent levels only."""
from __future__ import annotations

from .conftest import WriteConfig
from .test_config_cmd import run

NODES = """\
        cluster: lab
        nodes:
          - name: kvm-a
            id: 1
            ipmi: {address: 192.0.2.1, username: admin, password_file: /etc/stonewall/bmc-a.pw}
          - name: kvm-b
            id: 2
            ipmi: {address: 192.0.2.2, username: admin, password_file: /etc/stonewall/bmc-b.pw}
        luns: []
        drbd:
          - {name: r0, peers: {0: kvm-a, 1: kvm-b}}
"""


def test_a_cluster_without_luns_fenced_by_power_is_valid_and_check_says_what_it_gives_up(
        write_config: WriteConfig) -> None:
    path = write_config(NODES + "        fencing: [{level: power, timeout: 20}]\n")
    result = run("--config", path, "config", "check", "--skip-secrets")
    assert (result.returncode, result.stderr) == (0, "")
    assert "note: no shared LUNs: the SAN cannot arbitrate a fence race" in result.stdout
    assert "the watchdog service refuses to start" in result.stdout


def test_without_luns_storage_and_t_safe_levels_are_refused(write_config: WriteConfig,
                                                           problems_of) -> None:
    path = write_config(NODES + "        fencing: [{level: storage, timeout: 5}, "
                                "{level: wait-t-safe, timeout: 30}]\n")
    assert problems_of(path) == [
        (12, "fencing", "a cluster without shared LUNs needs a power or agent level: "
                          "nothing else can prove its peer fenced"),
        (12, "fencing[0].level", "the storage level needs shared LUNs, and luns is empty; a "
                                 "cluster without shared LUNs fences by power and agent "
                                 "levels only"),
        (12, "fencing[1].level", "the wait-t-safe level needs shared LUNs, and luns is empty; "
                                 "a cluster without shared LUNs fences by power and agent "
                                 "levels only"),
    ]
