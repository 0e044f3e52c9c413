"""unfence-peer and split-brain, run as DRBD runs them, against node holders on tgtd.

unfence-peer never brings a fenced node's key back (only that node's own holder can, after a
reboot); split-brain names the storage owner from the target's keys and the commands that
discard the OTHER node's changes, and changes nothing."""
from __future__ import annotations

from stonewall.eventlog import read_events

from ..drbdsetup_standin import install, path_with, split_brain_status
from .drbd_calls import HandlerRun, drbd9_env, drbd84_env, run_handler_string
from .test_fence_peer_storage import FENCED_BY_STORAGE, fence, key_of, luns_holding

ALL_LUNS = {"arbiter0", "arbiter1", "data0", "web1-disk"}  # web1-disk: node-a runs web1


def call(lab, programs, handler: str, me: str, env: dict[str, str], extra: str = ""
         ) -> HandlerRun:
    return run_handler_string(f"{programs[handler]} --config {lab.configs[me]} {extra}".strip(),
                              env)


def split_brain_env(me: str, peer: str) -> dict[str, str]:
    """split-brain is a device helper: no UP_TO_DATE_NODES (reference/drbd.md 4)."""
    env = drbd9_env(me, peer, "r0")
    del env["UP_TO_DATE_NODES"]
    return {**env, "DRBD_CSTATE": "StandAlone", "DRBD_BACKING_DEV": "/dev/vg/r0"}


def fenced_a(lab, programs) -> None:
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    assert fence(lab, programs, "node-b",
                 drbd9_env("node-b", "node-a", "r0")).exit_code == FENCED_BY_STORAGE


def test_unfence_does_not_let_a_node_in_its_fenced_boot_write_again(lab, observer, programs):
    fenced_a(lab, programs)
    # The resync finished; DRBD calls unfence-peer on both sides.
    for me, peer in (("node-b", "node-a"), ("node-a", "node-b")):
        run = call(lab, programs, "unfence-peer", me, drbd9_env(me, peer, "r0"))
        assert run.exit_code in (0, 1), run.stderr
    run = call(lab, programs, "unfence-peer", "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == 1 and "only after a reboot" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}
    assert read_events(lab.config("node-b").paths.event_log)[-1]["outcome"] == "still-fenced"


def test_unfence_after_the_peer_rebooted_and_joined_reports_it_registered(
        lab, observer, programs):
    fenced_a(lab, programs)
    lab.holders["node-a"].stop()
    lab.reboot("node-a", "node-a-boot-2")
    lab.start_holder("node-a")  # a new boot: its holder joins again
    run = call(lab, programs, "unfence-peer", "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == 0 and "registered on every LUN" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS


def test_unfence_without_a_fence_is_a_no_op(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = call(lab, programs, "unfence-peer", "node-a", drbd9_env("node-a", "node-b", "r0"))
    assert run.exit_code == 0, run.stderr
    assert luns_holding(observer(), key_of(lab, "node-b")) == ALL_LUNS - {"web1-disk"}


def test_split_brain_names_the_owner_and_the_commands_and_changes_nothing(
        lab, observer, programs):
    fenced_a(lab, programs)
    run = call(lab, programs, "split-brain", "node-a", split_brain_env("node-a", "node-b"))
    assert run.exit_code == 0, run.stderr
    assert "node-b owns the storage" in run.stderr
    assert "not resolved automatically" in run.stderr
    record = read_events(lab.config("node-a").paths.event_log)[-1]
    assert record["outcome"] == "owner-found" and record["details"]["resolved"] is False
    assert record["details"]["commands"] == {
        "node-a": ["drbdadm disconnect r0", "drbdadm secondary r0",
                   "drbdadm connect --discard-my-data r0"],
        "node-b": ["drbdadm disconnect r0", "drbdadm connect r0"]}
    # Exactly one side is told to discard its data.
    assert sum("--discard-my-data" in " ".join(lines)
               for lines in record["details"]["commands"].values()) == 1
    assert luns_holding(observer(), key_of(lab, "node-a")) == {"web1-disk"}
    assert luns_holding(observer(), key_of(lab, "node-b")) == ALL_LUNS - {"web1-disk"}


def test_split_brain_on_drbd_84_uses_its_command_syntax(lab, programs):
    fenced_a(lab, programs)
    env = {**drbd84_env("node-a", "r0"), "DRBD_MINOR": "0", "DRBD_VOLUME": "0"}
    run = call(lab, programs, "split-brain", "node-b", env, "--node node-b")
    assert run.exit_code == 0, run.stderr
    assert "drbdadm -- --discard-my-data connect r0" in run.stderr


def test_split_brain_without_a_fence_is_ambiguous_and_resolves_nothing(lab, observer, programs):
    lab.start_holder("node-a")
    lab.start_holder("node-b")
    run = call(lab, programs, "split-brain", "node-b", split_brain_env("node-b", "node-a"))
    assert run.exit_code == 1
    assert "ambiguous" in run.stderr and "neither was fenced" in run.stderr
    assert "choose ONE node" in run.stderr
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS
    assert luns_holding(observer(), key_of(lab, "node-b")) == ALL_LUNS - {"web1-disk"}


def test_split_brain_without_a_holder_is_ambiguous(lab, programs):
    run = call(lab, programs, "split-brain", "node-b", split_brain_env("node-b", "node-a"))
    assert run.exit_code == 1 and "cannot read the LUNs" in run.stderr


def test_unfence_without_a_holder_cannot_tell_and_changes_nothing(lab, observer, programs):
    lab.start_holder("node-a")
    run = call(lab, programs, "unfence-peer", "node-b", drbd9_env("node-b", "node-a", "r0"))
    assert run.exit_code == 1 and "cannot read the peer's registration" in run.stderr
    assert read_events(lab.config("node-b").paths.event_log)[-1]["outcome"] == "unknown"
    assert luns_holding(observer(), key_of(lab, "node-a")) == ALL_LUNS


def test_split_brain_corroborates_with_drbds_own_view(lab, observer, programs, tmp_path):
    # node-a was fenced and is the one whose changes are discarded; DRBD on node-a (a
    # drbdsetup stand-in replaying a real status document) is Primary and StandAlone.
    fenced_a(lab, programs)
    install(tmp_path / "drbd-bin", split_brain_status("r0", my_id=0, peer_id=1))
    env = {**split_brain_env("node-a", "node-b"), "PATH": path_with(tmp_path / "drbd-bin")}
    run = call(lab, programs, "split-brain", "node-a", env)
    assert run.exit_code == 0, run.stderr
    assert "node-b owns the storage" in run.stderr
    assert "DRBD here: r0: Primary, disk UpToDate; node-b StandAlone" in run.stderr
    assert "node-a is Primary here: stop what uses the device" in run.stderr
    record = read_events(lab.config("node-a").paths.event_log)[-1]
    assert record["details"]["drbd"].startswith("DRBD here: r0: Primary")
    assert luns_holding(observer(), key_of(lab, "node-b")) == ALL_LUNS - {"web1-disk"}


def test_split_brain_says_when_drbd_reports_the_peer_connected_again(lab, programs, tmp_path):
    fenced_a(lab, programs)
    install(tmp_path / "drbd-bin", split_brain_status("r0", my_id=1, peer_id=0,
                                                      role="Secondary", connection="Connected"))
    env = {**split_brain_env("node-b", "node-a"), "PATH": path_with(tmp_path / "drbd-bin")}
    run = call(lab, programs, "split-brain", "node-b", env)
    assert run.exit_code == 0, run.stderr
    assert "DRBD reports node-a connected again" in run.stderr
    assert "is Primary here" not in run.stderr  # node-b keeps its data


def test_split_brain_without_drbds_view_decides_on_the_san_alone(lab, programs, tmp_path):
    fenced_a(lab, programs)
    env = {**split_brain_env("node-a", "node-b"), "PATH": str(tmp_path / "no-drbd-here")}
    run = call(lab, programs, "split-brain", "node-a", env)
    assert run.exit_code == 0 and "node-b owns the storage" in run.stderr
    assert "DRBD's view here unavailable (drbdsetup is not installed)" in run.stderr
