"""The Linux PR ioctls (IOC_PR_*) on a dm-multipath map, measured against tgtd: what a PR OUT
backend on them would get (the decision against one: README, "Kernel tier")."""
from __future__ import annotations

from stonewall.lab.kernel.cluster import KernelCluster, node_key

KEY_A, KEY_B = node_key("node-a"), node_key("node-b")
WE_RO = 5  # SPC-4 type; pr_ioctl maps it to Linux's PR_WRITE_EXCLUSIVE_REG_ONLY (3)
CHECK_CONDITION, RESERVATION_CONFLICT = 0x02, 0x18


def ioctl(cluster: KernelCluster, node: str, call: str, **arguments: object) -> dict:
    return cluster.agent(node).call("pr_ioctl", arguments={"device": "/dev/dm-0",
                                                           "call": call, **arguments})


def register_paths(cluster: KernelCluster, node: str) -> None:
    for path in ("/dev/sda", "/dev/sdb"):
        cluster.agent(node).pr("sgio", path, "register", 0, node_key(node),
                               ignore_existing=True)


def test_pr_ioctls_on_a_multipath_map_against_tgtd(cluster: KernelCluster):
    # REGISTER: the kernel always sets APTPL and tgtd refuses it: CHECK CONDITION, returned
    # as a positive value (a SCSI result), and no key is registered on any path.
    refused = ioctl(cluster, "node-a", "register", key=0, new_key=KEY_A)
    assert refused["return"] > 0 and refused["status"] == CHECK_CONDITION, refused
    assert cluster.keys() == []
    # There is no read side on 6.1: PR IN has to be SG_IO (or sg_persist) anyway.
    assert ioctl(cluster, "node-a", "read_keys")["errno"] in ("ENOTTY", "EINVAL")

    # With the paths registered by SG_IO, RESERVE and PREEMPT through the map work: each goes
    # down one path of the map (its current path), not every path.
    register_paths(cluster, "node-a")
    register_paths(cluster, "node-b")
    assert ioctl(cluster, "node-a", "reserve", key=KEY_A, rtype=WE_RO)["return"] == 0
    assert cluster.reservation() == (KEY_A, WE_RO)
    assert ioctl(cluster, "node-b", "preempt", key=KEY_B, new_key=KEY_A,
                 rtype=WE_RO)["return"] == 0
    assert sorted(cluster.keys()) == [KEY_B, KEY_B]
    assert cluster.reservation() == (KEY_B, WE_RO)
    # The fenced node's next RESERVE: a positive return, the SCSI status and nothing else
    # (no sense: the UNIT ATTENTION 2A/03 that SG_IO shows is not visible here).
    outcomes = [ioctl(cluster, "node-a", "reserve", key=KEY_A, rtype=WE_RO) for _ in range(3)]
    assert all(o["return"] > 0 for o in outcomes), outcomes
    assert outcomes[-1]["status"] == RESERVATION_CONFLICT, outcomes
    print("\nPR ioctls on dm-0 against tgtd:", {"register": refused,
                                                 "fenced_reserve": outcomes})
