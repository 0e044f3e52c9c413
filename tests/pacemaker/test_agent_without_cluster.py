"""fence_stonewall before any cluster runs: metadata (as Pacemaker's tools and an unprivileged
user ask for it), validate-all, list, and every action that needs the holder failing safe
when the holder is not running."""
from __future__ import annotations

import stonewall

import io
import logging
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from stonewall.config.loader import load_config
from stonewall.eventlog import read_events
from stonewall.handlers.fence_agent import AgentServices, covered_luns
from stonewall.handlers.fence_agent import run_agent as agent_run
from stonewall.handlers.fence_agent_params import MAX_STDIN_BYTES, AgentUsageError, read_request
from stonewall.lab.pacemaker import in_agent_sandbox, missing_prerequisites
from stonewall.lab.cluster import LabCluster
from stonewall.lab.tgtd import Tgtd
from .support import LUNS, NODES, run_agent, stdin_lines
from .test_eventlog import FixedClock

SCHEMA = Path("/usr/share/cluster/relaxng/metadata.rng")  # Debian fence-agents


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """node1's configuration, over a tgtd that was never started: its portals are addresses
    nobody listens on, so these actions must not need the SAN."""
    array = Tgtd(tmp_path / "tgtd")
    array.portals = ["127.0.0.1:9", "127.0.0.1:10"]
    return LabCluster(tmp_path / "lab", array, nodes=NODES, luns=LUNS).write_config("node1")


def events_of(config_path: Path) -> list[dict]:
    return read_events(str(config_path.parent / "events.jsonl"))


@pytest.fixture
def sandbox(tmp_path: Path):
    missing = missing_prerequisites()
    if missing:
        pytest.skip(f"Pacemaker lab needs: {', '.join(missing)}")
    return lambda *argv: in_agent_sandbox(tmp_path / "sandbox", list(argv))


def test_metadata_validates_against_the_fence_agents_schema(tmp_path: Path) -> None:
    if shutil.which("xmllint") is None or not SCHEMA.exists():
        pytest.skip("needs xmllint (libxml2-utils) and fence-agents' metadata.rng")
    result = run_agent(stdin_lines(action="metadata"))
    assert result.returncode == 0 and result.stderr == ""
    document = tmp_path / "metadata.xml"
    document.write_text(result.stdout)
    lint = subprocess.run(["xmllint", "--noout", "--relaxng", str(SCHEMA), str(document)],
                          capture_output=True, text=True, timeout=30)
    assert lint.returncode == 0, lint.stderr


def test_metadata_declares_automatic_unfencing_on_the_target_and_no_reboot() -> None:
    root = ET.fromstring(run_agent(argv=("-o", "metadata")).stdout)
    actions = {action.get("name"): action.attrib for action in root.iter("action")}
    assert actions["on"] == {"name": "on", "on_target": "1", "automatic": "1"}
    assert "reboot" not in actions
    assert set(actions) == {"on", "off", "status", "monitor", "list", "metadata", "validate-all"}
    parameters = {p.get("name"): p.attrib for p in root.iter("parameter")}
    assert parameters["plug"]["obsoletes"] == "port" and parameters["port"]["deprecated"] == "1"
    assert {"nodename", "config", "luns"} <= set(parameters)
    assert not any(name.startswith("pcmk_") for name in parameters)
    assert all(p["required"] == "0" for p in parameters.values())


def test_metadata_as_an_unprivileged_user_with_no_parameters_touches_nothing(tmp_path: Path) -> None:
    # Pacemaker's controller runs it as hacluster; `nobody` has even less. A config path
    # that does not exist and an event log it could not write must not matter.
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_agent(stdin_lines(action="metadata", config=str(tmp_path / "absent.yaml")),
                       user="nobody")
    assert result.returncode == 0, result.stderr
    assert ET.fromstring(result.stdout).get("name") == "fence_stonewall"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_stonith_admin_reads_the_metadata_without_a_cluster(sandbox) -> None:
    result = sandbox("stonith_admin", "--metadata", "--agent", "fence_stonewall")
    assert result.returncode == 0, result.output
    root = ET.fromstring(result.stdout)
    on = next(a for a in root.iter("action") if a.get("name") == "on")
    assert on.get("on_target") == "1" and on.get("automatic") == "1"


def test_stonith_admin_validate_accepts_a_good_device_and_refuses_a_bad_one(sandbox, config_path) -> None:
    good = sandbox("stonith_admin", "--validate", "--agent", "fence_stonewall",
                   "-o", f"config={config_path}", "-o", "luns=arbiter0,data0",
                   "-o", "pcmk_host_list=node1 node2")
    assert good.returncode == 0, good.output
    assert "succeeded" in good.stdout
    bad = sandbox("stonith_admin", "--validate", "--agent", "fence_stonewall",
                  "-o", f"config={config_path}", "-o", "luns=arbiter0,no-such-lun")
    assert bad.returncode != 0
    assert "no-such-lun" in bad.output


def test_validate_all_checks_parameters_and_config_but_contacts_nothing(config_path: Path) -> None:
    ok = run_agent(stdin_lines(action="validate-all", config=str(config_path),
                               drbd_resources="", guests="", port="node1"))
    assert ok.returncode == 0, ok.stderr
    assert "3 LUNs (arbiter0, arbiter1, data0)" in ok.stderr  # portals 9 and 10: nothing listens
    for bad, words in ((dict(guests="web9"), "guest 'web9'"),
                       (dict(timeout="-3"), "out of range"),
                       (dict(config="/nonexistent/cluster.yaml"), "cannot read")):
        result = run_agent(stdin_lines(action="validate-all", **{"config": str(config_path), **bad}))
        assert result.returncode == 1 and words in result.stderr, result.stderr


def test_list_prints_the_configured_node_names_one_per_line(config_path: Path) -> None:
    result = run_agent(argv=("-o", "list", "--config", str(config_path)))
    assert (result.returncode, result.stdout) == (0, "node1\nnode2\nnode3\n")


def test_config_comes_from_the_environment_when_no_parameter_names_it(config_path: Path) -> None:
    result = run_agent(stdin_lines(action="list"),
                       env={"STONEWALL_CONFIG": str(config_path), "PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stdout) == (0, "node1\nnode2\nnode3\n")


@pytest.mark.parametrize(("action", "target"), [("off", "node2"), ("on", "node1"),
                                                ("status", "node2"), ("monitor", "")])
def test_without_a_running_holder_every_holder_action_fails_never_succeeds(
        config_path: Path, action: str, target: str) -> None:
    result = run_agent(stdin_lines(action=action, port=target, nodename=target,
                                   config=str(config_path), timeout="5"))
    assert result.returncode == 1
    assert "holder is not running" in result.stderr
    events = events_of(config_path)
    if action in ("off", "on"):
        assert [(e["action"], e["target"], e["outcome"]) for e in events] == [(action, target, "failed")]
        assert events[0]["source"] == "fence_stonewall" and events[0]["details"]["exit"] == 1
    else:
        assert events == []  # status and monitor run every minute: no record


def test_a_target_outside_the_configuration_is_refused_before_the_holder_is_asked(
        config_path: Path) -> None:
    result = run_agent(stdin_lines(action="off", port="node9", config=str(config_path)))
    assert result.returncode == 1
    assert "node 'node9' is not in" in result.stderr and "pcmk_host_map" in result.stderr
    [event] = events_of(config_path)
    assert (event["target"], event["outcome"]) == ("node9", "refused")


def test_off_needs_a_target(config_path: Path) -> None:
    result = run_agent(stdin_lines(action="off", config=str(config_path)))
    assert result.returncode == 1 and "needs a target" in result.stderr


def test_one_decision_is_one_stderr_line(config_path: Path) -> None:
    result = run_agent(stdin_lines(action="off", port="node2", config=str(config_path)))
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fence_stonewall: off node2: ")
    assert events_of(config_path)[0]["actor"] is None


def test_help_names_the_options_people_use() -> None:
    result = run_agent(argv=("--help",))
    assert result.returncode == 0
    for option in ("-o ACTION, --action ACTION", "-n NODENAME, --plug NODENAME", "--config",
                   "--luns", "--drbd-resources", "--guests", "--timeout"):
        assert option in result.stdout


def test_pcs_adds_provides_unfencing_from_the_metadata(sandbox, config_path, tmp_path) -> None:
    if shutil.which("pcs") is None:
        pytest.skip("needs pcs (Debian package pcs)")
    cib = tmp_path / "cib.xml"
    empty = sandbox("cibadmin", "--empty")
    cib.write_text(empty.stdout)
    created = sandbox("pcs", "-f", str(cib), "stonith", "create", "sw-storage", "fence_stonewall",
                      f"config={config_path}", "pcmk_host_list=node1 node2")
    assert created.returncode == 0, created.output
    primitive = ET.parse(cib).find(".//primitive[@id='sw-storage']")
    assert primitive is not None and primitive.get("type") == "fence_stonewall"
    meta = {n.get("name"): n.get("value") for n in primitive.findall("meta_attributes/nvpair")}
    assert meta == {"provides": "unfencing"}


def test_a_device_covers_named_luns_resources_and_guests_arbiter_first() -> None:
    example = load_config(str(Path(__file__).resolve().parents[2] / "examples" / "multipath-cluster.yaml"))
    request = read_request(["-o", "off", "-n", "kvm-b", "--luns", "db1-disk",
                            "--guests", "web1", "--drbd-resources", "r0"], None)
    # r0 arbitrates on arbiter0 and arbiter1; guest web1 lives on web1-disk.
    assert covered_luns(example, request) == ["arbiter0", "arbiter1", "db1-disk", "web1-disk"]
    assert covered_luns(example, read_request(["-o", "off"], None)) is None  # every LUN
    with pytest.raises(AgentUsageError, match="DRBD resource 'r9'"):
        covered_luns(example, read_request(["-o", "off", "--drbd-resources", "r9"], None))
    with pytest.raises(AgentUsageError, match="LUN 'lun9'"):
        covered_luns(example, read_request(["-o", "off", "--luns", "lun9"], None))


def test_version_prints_the_installed_package_version() -> None:
    result = run_agent(argv=("-V",))
    assert (result.returncode, result.stdout, result.stderr) == (
        0, stonewall.__version__ + "\n", "")


def test_unknown_keys_are_warned_about_by_name_only_and_pcmk_keys_not_at_all(
        config_path: Path) -> None:
    result = run_agent(stdin_lines(action="validate-all", config=str(config_path),
                                   frobnicate="a-secret-value", pcmk_host_list="node1 node2",
                                   pcmk_delay_max="5"))
    assert result.returncode == 0, result.stderr
    warning, decision = result.stderr.splitlines()
    assert warning == "fence_stonewall: warning: ignoring unknown parameter 'frobnicate'"
    assert decision.startswith("fence_stonewall: validate-all: parameters valid")
    assert "a-secret-value" not in result.stderr and "pcmk" not in result.stderr


def test_stdin_beyond_the_limit_is_refused_before_anything_is_tried(config_path: Path) -> None:
    # Cut at the limit, the input would end in a valid `off` of node2.
    head = f"action=off\nconfig={config_path}\n#"
    head += "#" * (MAX_STDIN_BYTES - len("plug=node2") - len(head) - 1) + "\n"
    result = run_agent(head + "plug=node23\n")
    assert result.returncode == 1
    assert result.stderr == (f"fence_stonewall: stdin is longer than {MAX_STDIN_BYTES} bytes; "
                             "refused rather than cut (Pacemaker sends a few hundred)\n")
    assert events_of(config_path) == []  # an attempted off always leaves a record


def test_debug_file_gets_every_line_and_an_unwritable_one_is_only_a_warning(
        config_path: Path, tmp_path: Path) -> None:
    debug = tmp_path / "agent-debug.log"
    result = run_agent(argv=("-o", "validate-all", "-c", str(config_path), "-D", str(debug)))
    assert result.returncode == 0
    assert debug.read_text().rstrip("\n").endswith(result.stderr.strip())
    unwritable = run_agent(stdin_lines(action="validate-all", config=str(config_path),
                                       debug_file=str(tmp_path / "no-dir" / "x.log")))
    assert unwritable.returncode == 0
    assert "warning: cannot open debug_file" in unwritable.stderr


def test_delay_waits_before_off_only_and_the_timeout_starts_after_it(config_path: Path) -> None:
    clock = FixedClock(1_764_000_000.0)
    lines: list[str] = []
    log = logging.getLogger("test-agent-delay")
    log.addHandler(_ListHandler(lines))
    log.setLevel(logging.INFO)
    log.propagate = False
    services = AgentServices({}, clock=clock)
    code = agent_run(read_request([], f"action=off\nplug=node2\nconfig={config_path}\n"
                                      "delay=12\ntimeout=3\n"), services, io.StringIO(), log)
    assert code == 1 and lines[0] == "off: waiting 12 s (delay) before fencing"
    assert "holder is not running" in lines[1]
    [event] = events_of(config_path)
    assert event["time"] == "2025-11-24T16:00:12.000+00:00"  # the attempt came after the delay
    agent_run(read_request([], f"action=status\nplug=node2\nconfig={config_path}\ndelay=12\n"),
              services, io.StringIO(), log)
    assert clock.now == 1_764_000_012.0  # status is never delayed


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
