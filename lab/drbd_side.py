"""DRBD's side of a handler call, for the lab, the tests and the benchmarks: the environment
the kernel's usermode helper and drbdadm give a DRBD 9 fence-peer/unfence-peer handler
(reference/drbd.md sections 0-1)."""
from __future__ import annotations

from typing import Mapping

# What the kernel's usermode helper always passes (drbd_khelper()).
KERNEL_HELPER_BASE = {"HOME": "/", "TERM": "linux", "PATH": "/sbin:/usr/sbin:/bin:/usr/bin"}


def drbd9_handler_env(resource: str, minor: str, my_id: int, peer_id: int,
                      names: Mapping[int, str], my_address: str | None = None,
                      peer_address: str | None = None) -> dict[str, str]:
    """The DRBD 9 environment (kernel + drbdadm) of a connection handler on node `my_id`
    about `peer_id`; `names` maps DRBD node ids to node names."""
    env = {**KERNEL_HELPER_BASE,
           "DRBD_RESOURCE": resource, "DRBD_CONF": "/etc/drbd.conf",
           "DRBD_MY_NODE_ID": str(my_id), "DRBD_PEER_NODE_ID": str(peer_id),
           "DRBD_CSTATE": "Connecting", "DRBD_MINOR": minor, "DRBD_VOLUME": "0",
           "DRBD_MINOR_0": minor, "DRBD_LL_DISK": f"/dev/vg/{resource}",
           # fence-peer: the kernel always sets our own bit
           "UP_TO_DATE_NODES": f"0x{1 << my_id:08X}"}
    if my_address is not None:
        env.update({"DRBD_MY_ADDRESS": my_address, "DRBD_MY_AF": "ipv4"})
    if peer_address is not None:
        env.update({"DRBD_PEER_ADDRESS": peer_address, "DRBD_PEER_AF": "ipv4"})
    env.update({f"DRBD_NODE_ID_{node_id}": name for node_id, name in names.items()})
    return env
