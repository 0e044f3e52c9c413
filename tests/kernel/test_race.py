"""The fence race between the two guests: each node's DRBD fence-peer handler fences the other
at the same moment (a split of the replication link seen from both sides). Exactly one wins:
its key alone is left on the LUN, it keeps running and writing; the loser's handler does
not report a fence, its own service finds its key gone and the i6300esb resets it."""
from __future__ import annotations

import threading

from stonewall.lab.kernel.cluster import (
    MAP, RING, WATCHDOG, FenceRun, KernelCluster, node_key)


def test_exactly_one_node_survives_the_fence_race(cluster: KernelCluster, record_property):
    for node in ("node-a", "node-b"):
        cluster.start_service(node)
        cluster.agent(node).call("writer_start", device=MAP, guest=f"{node}-guest",
                                 first_lba=0 if node == "node-a" else RING, ring=RING,
                                 interval=0.1)
    runs: dict[str, FenceRun] = {}

    def fence(fencer: str, victim: str) -> None:
        runs[fencer] = cluster.fence_peer(fencer, victim)

    racers = [threading.Thread(target=fence, args=pair)
              for pair in (("node-a", "node-b"), ("node-b", "node-a"))]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=180)
    assert set(runs) == {"node-a", "node-b"}

    winners = [name for name, run in runs.items() if run.exit_code == 4]
    assert len(winners) == 1, {name: (run.exit_code, run.output) for name, run in runs.items()}
    winner = winners[0]
    loser = "node-b" if winner == "node-a" else "node-a"
    assert runs[loser].exit_code == 1, runs[loser].output  # not fenced: DRBD keeps I/O frozen
    assert sorted(cluster.keys()) == [node_key(winner)] * 2
    refused = cluster.agent(loser).call("writer_status", guest=f"{loser}-guest")
    assert refused["error_count"] and {e["errno"] for e in refused["errors"]} == {"EBADE"}

    bound = WATCHDOG["check_deadline"] + WATCHDOG["timeout"]
    guest = cluster.guests[loser]
    assert guest.wait_exit(bound + 30) == 0, guest.console_text()[-2000:]
    watchdog = guest.event("WATCHDOG")
    assert watchdog is not None and watchdog.data["action"] == "reset"
    assert cluster.guests[winner].running()
    survivor = cluster.agent(winner).call("writer_status", guest=f"{winner}-guest")
    assert not survivor["errors"], survivor["errors"]
    assert {s.node for s in cluster.stamps(0 if winner == "node-a" else RING)} == {winner}
    record_property("race_winner", winner)
    print(f"\nkernel tier race: {winner} won; {loser}: {runs[loser].output.strip()[-300:]}")
