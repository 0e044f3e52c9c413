"""multipathd: the runner against the real client binary, and the parsers against the
reference's verbatim output."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stonewall.clock import Deadline
from stonewall.storage.multipath.errors import (MultipathdNotRunning, MultipathdTimeout,
                                                MultipathOutputError, MultipathToolsMissing,
                                                UnsupportedJsonVersion)
from stonewall.storage.multipath.multipathd import (PATHS_FORMAT, MultipathdRunner,
                                                    discover_multipathd, parse_maps_json,
                                                    parse_paths_raw)
from stonewall.storage.multipath.types import IscsiLink, PathState

FIXTURES = Path(__file__).parent / "fixtures"
STANDIN = Path(__file__).parent / "mpath_daemon_standin.py"
MAPS_JSON = (FIXTURES / "multipathd-show-maps-json-v0.1.json").read_text()
needs_multipathd = pytest.mark.skipif(shutil.which("multipathd") is None,
                                      reason="multipath-tools is not installed")


# ---- parsing ------------------------------------------------------------------------
def test_reference_json_gives_the_map_and_its_failed_iscsi_path() -> None:
    (mpathp,) = parse_maps_json(MAPS_JSON)
    assert (mpathp.name, str(mpathp.wwid), mpathp.dm_name, mpathp.suspended) == (
        "mpathp", "360050768029b8168e000000000006247", "dm-3", False)
    (sdb,) = mpathp.paths
    assert (sdb.name, sdb.dm_state, sdb.checker_state, sdb.device_state) == (
        "sdb", "failed", "faulty", "running")
    assert sdb.state is PathState.DOWN, "transport up but dm failed it: not usable"
    assert sdb.link == IscsiLink(session=None, target="iqn.1986-03.com.ibm:2145.v7k60.node1")
    assert sdb.hctl is None and sdb.sg is None, "the JSON schema has neither"


def test_a_new_json_major_version_is_refused() -> None:
    newer = json.loads(MAPS_JSON) | {"major_version": 1}
    with pytest.raises(UnsupportedJsonVersion, match="major_version 1"):
        parse_maps_json(json.dumps(newer))


@pytest.mark.parametrize("text, complaint", [
    ("", "not JSON"),
    ("fail\n", "not JSON"),
    ("[]", "not an object"),
    ('{"maps": []}', "major_version"),
    ('{"major_version": 0, "minor_version": 1, "maps": {}}', "not a list"),
    ('{"major_version": 0, "minor_version": 1, "maps": [{"name": "m"}]}', "uuid"),
    ('{"major_version": 0, "minor_version": 1, "maps": [{"name": "m", "uuid": "3600", '
     '"path_groups": [{"paths": [{"dm_st": "active"}]}]}]}', "'dev'"),
])
def test_malformed_json_is_a_typed_error(text: str, complaint: str) -> None:
    with pytest.raises(MultipathOutputError, match=complaint):
        parse_maps_json(text)


def test_raw_paths_lines_with_orphans_and_a_checker_state_with_a_space() -> None:
    records = parse_paths_raw(
        "sdf|2:0:0:2|active|ready|running|mpatha|3620000007355abb3b8950167b5790928\n"
        "sdi|2:0:1:2|failed|i/o pending|offline|mpatha|3620000007355abb3b8950167b5790928\n"
        "sda|0:0:0:0|undef|undef|unknown|[orphan]|\n"
        "nvme0n1|#:#:#:#|undef|undef|unknown|[offline]|\n")
    assert [(r.path.name, r.map_name, r.path.state) for r in records] == [
        ("sdf", "mpatha", PathState.UP), ("sdi", "mpatha", PathState.DOWN),
        ("sda", None, PathState.UNKNOWN), ("nvme0n1", None, PathState.UNKNOWN)]
    assert records[1].path.checker_state == "i/o pending"
    assert records[2].path.wwid is None and records[3].path.hctl is None


def test_raw_paths_line_with_missing_fields_is_refused() -> None:
    with pytest.raises(MultipathOutputError, match="line 1"):
        parse_paths_raw("sdf 2:0:0:2 active ready running\n")


# ---- the runner, real binary ----------------------------------------------------------
@needs_multipathd
def test_real_multipathd_client_without_a_daemon_says_not_running() -> None:
    runner = MultipathdRunner()
    if runner.daemon_listening():
        pytest.skip("a multipathd is running on this machine")
    with pytest.raises(MultipathdNotRunning, match="multipathd is not running"):
        runner.run(["show", "maps", "json"], Deadline.after(20))
    with pytest.raises(MultipathdNotRunning):
        discover_multipathd(runner, Deadline.after(20))


def test_missing_binary_names_the_package(tmp_path: Path) -> None:
    runner = MultipathdRunner(binary=str(tmp_path / "multipathd"))
    with pytest.raises(MultipathToolsMissing, match="multipath-tools"):
        runner.run(["show", "maps", "json"], Deadline.after(5))


def test_an_expired_deadline_starts_nothing() -> None:
    with pytest.raises(MultipathdTimeout, match="before it started"):
        MultipathdRunner().run(["show", "maps", "json"], Deadline.after(0))


def test_control_socket_probe_sees_pathname_and_abstract_listeners(tmp_path: Path) -> None:
    pathname = str(tmp_path / "multipathd.socket")
    abstract = f"@/stonewall-test/{tmp_path.name}"
    assert not MultipathdRunner(control_sockets=(pathname, abstract)).daemon_listening()
    for name in (pathname, abstract):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind("\0" + name[1:] if name.startswith("@") else name)
            listener.listen(1)
            assert MultipathdRunner(control_sockets=(name,)).daemon_listening()


# ---- the runner, real client against a stand-in daemon in a private netns -------------
@pytest.fixture(scope="module")
def private_network() -> None:
    if shutil.which("multipathd") is None:
        pytest.skip("multipath-tools is not installed")
    try:
        subprocess.run(["unshare", "--net", "true"], check=True, capture_output=True,
                       timeout=10)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"no private network namespace here: {error}")


def against_standin(mode: str, deadline_seconds: float) -> dict[str, Any]:
    done = subprocess.run(["unshare", "--net", sys.executable, str(STANDIN), mode,
                           str(deadline_seconds)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.usefixtures("private_network")
def test_real_client_brings_back_the_daemon_reply_verbatim() -> None:
    outcome = against_standin("maps-json", 10)
    assert outcome["received"] == ["show maps json \n"]
    assert outcome["reply"] == MAPS_JSON
    assert parse_maps_json(outcome["reply"])[0].name == "mpathp"


@pytest.mark.usefixtures("private_network")
def test_discovery_sends_our_paths_format_and_keeps_orphans_as_disks() -> None:
    outcome = against_standin("discover", 10)
    assert outcome["received"] == ["show maps json \n",
                                   f"show paths raw format {PATHS_FORMAT} \n"]
    discovery = outcome["discovery"]
    assert [m["name"] for m in discovery["maps"]] == ["mpathp"]
    assert [(d["name"], d["hctl"]) for d in discovery["disks"]] == [("sda", "0:0:0:0")]


@pytest.mark.usefixtures("private_network")
def test_a_fail_reply_is_a_failed_command() -> None:
    outcome = against_standin("fail", 10)
    assert (outcome["error"], outcome["message"]) == (
        "MultipathdFailed", "multipathd show maps json exited 1: fail")


@pytest.mark.usefixtures("private_network")
def test_our_deadline_ends_a_command_the_daemon_never_answers() -> None:
    outcome = against_standin("silent", 1)
    assert outcome["error"] == "MultipathdTimeout"
    assert "before its deadline" in outcome["message"]


@pytest.mark.slow
@pytest.mark.usefixtures("private_network")
def test_the_clients_own_reply_timeout_is_a_timeout_too() -> None:
    # uxsock_timeout defaults to 4000 ms (libmpathcmd DEFAULT_REPLY_TIMEOUT); the client
    # then prints 'timeout receiving packet' and exits 1.
    outcome = against_standin("silent", 20)
    assert outcome["error"] == "MultipathdTimeout"
    assert "did not answer in time" in outcome["message"]
