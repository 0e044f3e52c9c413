"""`stonewall multipath ...` on the reference host tree: output and exit statuses."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from .mpath_host_tree import HostTree, build_reference_host
from stonewall.handlers import multipath_cmd

CONFIG = """\
cluster: lab
transport: sg
nodes:
  - name: kvm-a
    id: 1
  - name: kvm-b
    id: 2
luns:
  - name: vmstore
    role: shared
    wwid: naa.620000007355abb3b8950167b5790928
    alias: mpatha
  - name: wrong-alias
    role: shared
    wwid: 3600140500000000000000000000000aa
    alias: 3600507670880813290000000000003f4
fencing:
  - level: storage
    timeout: 30
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stonewall")
    parser.add_argument("--config")  # the global option cli.py provides
    multipath_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def host(tmp_path: Path) -> HostTree:
    return build_reference_host(tmp_path / "host")


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(CONFIG)
    return str(path)


def test_show_lists_maps_paths_and_plain_disks(host: HostTree,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run("multipath", "show", "--sysfs-root", str(host.sys)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("map mpatha  wwid 3620000007355abb3b8950167b5790928  dm-0  "
                        "/dev/mapper/mpatha")
    assert lines[5] == ("  sdi  2:0:1:2  sg6  down  offline  fc rport-2:0-3 "
                        "wwnn 0x20000024ff7a0003 wwpn 0x21000024ff7a0003")
    assert lines[7] == ("  sdb  7:0:0:0  sg2  up  running  iscsi session1 "
                        "iqn.1986-03.com.ibm:2145.v7k60.node1 192.0.2.10:3260")
    assert lines[-1] == "disk sda  0:0:0:0  sg0  up  running  wwid 1ATA_QEMU_HARDDISK_QM00001"


def test_show_json(host: HostTree, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("multipath", "show", "--sysfs-root", str(host.sys), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["device"], len(m["paths"])) for m in shown["maps"]] == [
        ("mpatha", "/dev/mapper/mpatha", 4),
        ("3600507670880813290000000000003f4",
         "/dev/mapper/3600507670880813290000000000003f4", 2)]
    assert shown["maps"][1]["paths"][0]["link"] == {
        "transport": "iscsi", "session": "session1",
        "target": "iqn.1986-03.com.ibm:2145.v7k60.node1", "address": "192.0.2.10",
        "port": 3260}


def test_resolve_a_configured_lun(host: HostTree, config: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--config", config, "multipath", "resolve", "--lun", "vmstore",
               "--sysfs-root", str(host.sys), "--json") == 0
    resolved = json.loads(capsys.readouterr().out)
    assert (resolved["map_device"], [p["device"] for p in resolved["paths"]]) == (
        "/dev/mapper/mpatha", ["/dev/sg5", "/dev/sg7", "/dev/sg8", "/dev/sg6"])


def test_resolve_refuses_an_alias_of_another_wwid(host: HostTree, config: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--config", config, "multipath", "resolve", "--lun", "wrong-alias",
               "--sysfs-root", str(host.sys)) == multipath_cmd.EXIT_UNRESOLVED
    assert ("alias '3600507670880813290000000000003f4' is the map of WWID "
            "3600507670880813290000000000003f4, but the configuration says WWID "
            "3600140500000000000000000000000aa") in capsys.readouterr().err


def test_resolve_unknown_names_and_missing_config(host: HostTree, config: str,
                                                  tmp_path: Path) -> None:
    assert run("multipath", "resolve", "--wwid", "naa.600140500000000000000000000000aa",
               "--sysfs-root", str(host.sys)) == multipath_cmd.EXIT_UNRESOLVED
    assert run("--config", config, "multipath", "resolve", "--lun", "nope",
               "--sysfs-root", str(host.sys)) == multipath_cmd.EXIT_USAGE
    assert run("--config", str(tmp_path / "absent.yaml"), "multipath", "resolve", "--lun",
               "vmstore", "--sysfs-root", str(host.sys)) == multipath_cmd.EXIT_USAGE


def test_unavailable_sources_exit_3(tmp_path: Path) -> None:
    assert run("multipath", "show", "--sysfs-root", str(tmp_path)) == \
        multipath_cmd.EXIT_UNAVAILABLE


@pytest.mark.skipif(shutil.which("multipathd") is None, reason="multipath-tools not installed")
def test_with_multipathd_when_no_daemon_runs_exit_3(host: HostTree) -> None:
    assert run("multipath", "show", "--sysfs-root", str(host.sys), "--with-multipathd") == \
        multipath_cmd.EXIT_UNAVAILABLE


def test_wwid_prints_the_multipath_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("multipath", "wwid", "naa.6001405abcdef0000000000000000001",
               "wwn-0x6001405abcdef0000000000000000001") == 0
    assert capsys.readouterr().out.splitlines() == [
        "36001405abcdef0000000000000000001\tnaa\tnaa.6001405abcdef0000000000000000001",
        "0x6001405abcdef0000000000000000001\tuntyped\twwn-0x6001405abcdef0000000000000000001"]
    assert run("multipath", "wwid", "6001405abcdef0000000000000000001") == \
        multipath_cmd.EXIT_UNRESOLVED


def test_conf_sets_this_nodes_key_on_every_data_path_map(config: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--config", config, "multipath", "conf", "--node", "kvm-b") == 0
    out = capsys.readouterr().out
    assert out.count("multipath {") == 2
    assert "        wwid naa.620000007355abb3b8950167b5790928\n        alias mpatha\n" in out
    assert out.count("reservation_key 0x5357") == 2 and "0002\n" in out  # kvm-b's key
    assert run("--config", config, "multipath", "conf", "--node", "kvm-z") == 2
    assert "node 'kvm-z' is not in" in capsys.readouterr().err
