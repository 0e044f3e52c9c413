"""The kernel tier's fence: node-b fences node-a through stonewall's DRBD fence-peer handler on
the `sg` transport (SG_IO backend), while node-a's guest writer writes stamped blocks through
its dm-multipath map; then node-a's own service sees its key gone, stops petting, and the
real i6300esb resets it. On the way, a path of node-a leaves and comes back (a new I_T
nexus) once while it owns the LUN and once after it was fenced. Every figure printed here is
a measurement of this run (README, "Kernel tier")."""
from __future__ import annotations

import re
import time

from stonewall.lab.kernel.cluster import (
    MAP, RING, WATCHDOG, KernelCluster, KeyWatch, map_paths, node_key)
from stonewall.lab.stamps import Stamp, check_after_fence

KEY_A, KEY_B = node_key("node-a"), node_key("node-b")
RING_A, RING_B = 0, RING  # each writer's LBAs


def wait_until(predicate, timeout: float, what: str, period: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g}s"
        time.sleep(period)


def set_multipathd_key(cluster: KernelCluster, node: str) -> None:
    # multipath.conf has `reservation_key file`: multipathd registers a path that appears
    # (or returns) with this key before it carries I/O, but only while the key is still
    # registered on the LUN (libmpathpersist's check); nothing else registers a new path.
    result = cluster.run(node, "multipathd", "setprkey", "map", "mpatha", "key",
                         f"0x{node_key(node):x}")
    assert result["rc"] == 0 and "ok" in result["stdout"], result


def replace_path(cluster: KernelCluster, node: str, index: int) -> None:
    """Hot-unplug path `index` and plug it back: the kernel loses the path device and
    gets a new one, and the target sees a new I_T nexus (a new iSCSI session)."""
    guest = cluster.guests[node]
    guest.unplug_path(index)
    wait_until(lambda: len(map_paths(cluster, node)) == 1, 30, f"{node}: path {index} gone")
    guest.plug_path(index)
    wait_until(lambda: [p for p in map_paths(cluster, node) if p["dm_st"] == "active"
                        and p["chk_st"] == "ready"][1:], 60, f"{node}: path {index} back")


def writer_errors_since(status: dict, count_before: int) -> int:
    return status["error_count"] - count_before


def test_fence_stops_the_writer_on_every_path_and_the_watchdog_resets_the_node(
        cluster: KernelCluster, record_property):
    times = {}
    for node in ("node-a", "node-b"):
        times[f"{node}_service_ready_s"] = round(cluster.start_service(node), 1)
        set_multipathd_key(cluster, node)
    assert sorted(cluster.keys()) == [KEY_A, KEY_A, KEY_B, KEY_B]  # one per path (nexus)
    assert cluster.reservation() == (KEY_A, 5)  # node-a joined first: WE-RO, type 5

    a, b = cluster.agent("node-a"), cluster.agent("node-b")
    a.call("writer_start", device=MAP, guest="web1", first_lba=RING_A, ring=RING,
           interval=0.05)
    b.call("writer_start", device=MAP, guest="db1", first_lba=RING_B, ring=RING, interval=0.1)
    wait_until(lambda: len(a.call("writer_status", guest="web1")["acknowledged"]) > 20, 30,
               "node-a's writer")

    # (c) a path of node-a leaves and returns while node-a owns the LUN: multipathd registers
    # the new nexus before the path joins the map, so no write fails.
    errors_before = a.call("writer_status", guest="web1")["error_count"]
    replace_path(cluster, "node-a", 1)
    # Three of node-a's: the new nexus was registered, and the old one's registration stays
    # (SPC-4: a registration outlives its nexus's logout; tgtd keeps it, measured).
    assert sorted(cluster.keys()) == [KEY_A, KEY_A, KEY_A, KEY_B, KEY_B], \
        "the returning path's new nexus must carry node-a's registration"
    returned = len(a.call("writer_status", guest="web1")["acknowledged"])
    wait_until(lambda: len(a.call("writer_status", guest="web1")["acknowledged"]) > returned + 20,
               40, "node-a's writes after the path returned")  # round robin: both paths
    status = a.call("writer_status", guest="web1")
    assert writer_errors_since(status, errors_before) == 0, status["errors"]

    # (a) node-b fences node-a through the DRBD handler, exactly as drbdadm would call it.
    offset_a = cluster.guest_clock_offset("node-a")
    acknowledged_before = len(a.call("writer_status", guest="web1")["acknowledged"])
    with KeyWatch(cluster, KEY_A) as watch:
        fence = cluster.fence_peer("node-b", "node-a")
        wait_until(lambda: watch.first_absent, 10, "host sees node-a's key gone", 0.05)
    assert fence.exit_code == 4, fence.output  # PEER_OUTDATED: fenced by storage, verified
    assert "fenced-by-storage" in fence.output
    fence_point = watch.first_absent
    assert fence_point is not None
    assert sorted(cluster.keys()) == [KEY_B, KEY_B]  # PREEMPT removed all three of node-a's
    assert cluster.reservation() == (KEY_B, 5)

    # node-a's writes through its map now fail, on every path, with RESERVATION CONFLICT.
    errors_at_fence = a.call("writer_status", guest="web1")["error_count"]
    time.sleep(1.5)
    status = a.call("writer_status", guest="web1")
    assert writer_errors_since(status, errors_at_fence) >= 10
    assert {e["errno"] for e in status["errors"]} == {"EBADE"}  # BLK_STS_NEXUS
    kernel_log = cluster.run("node-a", "dmesg")["stdout"]
    conflicted = set(re.findall(r"sd (\d+:\d+:\d+:\d+): reservation conflict", kernel_log))
    assert len(conflicted) == 2, conflicted  # both path devices (sd H:C:T:L) were refused
    assert "critical nexus error, dev dm-0" in kernel_log
    # dm-multipath keeps both paths: a reservation conflict is no path failure, so nothing
    # is failed over, and with no failed path queue_if_no_path (off here) never comes in.
    paths = map_paths(cluster, "node-a")
    assert [p["dm_st"] for p in paths] == ["active", "active"], paths
    table = cluster.run("node-a", "dmsetup", "table", "mpatha")["stdout"]
    assert "queue_if_no_path" not in table

    # (c) a fenced node gets no registration back through a returning path: multipathd
    # finds its key gone and does not register the new nexus; nor does stonewall.
    replace_path(cluster, "node-a", 0)
    assert sorted(cluster.keys()) == [KEY_B, KEY_B]
    last = a.call("writer_status", guest="web1")  # what node-a's writer saw, before its reset
    assert not [r for r in last["acknowledged"] if r["done"] - offset_a > fence_point]

    # (b) node-a's service saw its key gone and stopped petting: the i6300esb resets it.
    guest_a = cluster.guests["node-a"]
    bound = WATCHDOG["check_deadline"] + WATCHDOG["timeout"]  # timing.py: preempt -> reset
    assert guest_a.wait_exit(bound + 15) == 0, guest_a.console_text()[-2000:]
    watchdog = guest_a.event("WATCHDOG")
    assert watchdog is not None and watchdog.data["action"] == "reset"
    shutdown = guest_a.event("SHUTDOWN")
    assert shutdown is not None and shutdown.data["reason"] == "guest-reset"
    preempt_to_reset = watchdog.at - (time.monotonic() - (time.time() - fence_point))
    assert preempt_to_reset <= bound, f"reset {preempt_to_reset:.1f}s after the preempt"
    assert cluster.guests["node-b"].running()

    # The invariant, read back from the LUN on the host.
    b_status = b.call("writer_status", guest="db1")
    stamps_a, stamps_b = cluster.stamps(RING_A), cluster.stamps(RING_B)
    on_disk_a = [s for s in stamps_a if s.node == "node-a"]
    assert on_disk_a and all(s.node == "node-a" for s in stamps_a)
    acknowledged = {r["sequence"] for r in last["acknowledged"]}
    # A write the target executed may still be on its way back (in flight when a path left):
    # on disk but not yet acknowledged. It must have been issued before the fence point.
    in_flight = [s for s in on_disk_a if s.sequence not in acknowledged]
    assert all(s.time - offset_a < fence_point for s in in_flight), (in_flight, last["errors"])
    host_stamps = [Stamp(s.time - offset_a, s.node, s.guest, s.sequence) for s in on_disk_a]
    ack_stamps = [Stamp(r["time"] - offset_a, "node-a", "web1", r["sequence"])
                  for r in last["acknowledged"]]
    assert check_after_fence("arbiter0", host_stamps, "node-a", fence_point, ack_stamps) == []
    assert any(s.node == "node-b" for s in stamps_b)
    assert not b_status["errors"], b_status["errors"]
    figures = {**times, "fence_handler_s": round(fence.ended - fence.started, 2),
               "preempt_to_reset_s": round(preempt_to_reset, 1), "reset_bound_s": bound,
               "writes_acknowledged_before_fence": acknowledged_before,
               "stamps_read_back": len(stamps_a) + len(stamps_b),
               "landed_but_unacknowledged": len(in_flight)}
    for name, value in figures.items():
        record_property(name, value)
    print("\nkernel tier fence:", figures)
