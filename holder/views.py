"""LUN views for the read-only commands (`status`, the libvirt hook, `vm list`): through the
node's holder when one runs (its sessions are logged in already), else through reader
sessions of our own, since PERSISTENT RESERVE IN needs no registration."""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from stonewall.clock import SYSTEM_CLOCK, Deadline
from stonewall.config.identity import UnknownLocalNode, local_node
from stonewall.config.model import ClusterConfig
from stonewall.holder.api import HolderFailure
from stonewall.holder.client import HolderClient
from stonewall.storage.view import LunView, ReadViews


def read_views(config: ClusterConfig, lun_names: list[str] | None, node_name: str | None,
               direct: bool, deadline: Deadline) -> dict[str, LunView]:
    """The LUN views, from the holder (unless `direct`) or from fresh reader sessions.

    A holder that is down, refuses or cannot be trusted only costs the fallback: what the
    reader sessions read is the SAN's own answer. Raises PathSetupError when the paths of
    a LUN cannot even be planned."""
    if not direct:
        try:
            return HolderClient(config).views(lun_names, deadline)
        except HolderFailure:
            pass
    # Imported only on this fallback: the usual answer comes from the holder, and the
    # session stack costs a `status` run tens of milliseconds of imports.
    from stonewall.storage import ownership
    from stonewall.storage.paths import KernelRoots, close_paths, plan_paths
    try:
        initiator = local_node(config, node_name, os.environ).initiator
    except UnknownLocalNode:
        initiator = f"iqn.2026-11.org.stonewall:status-{socket.gethostname()}"
    luns = config.luns_in_arbiter_order(tuple(lun_names) if lun_names else None)
    kernel = KernelRoots.of(config.paths)
    paths = plan_paths(luns, initiator, role="reader", discovery=kernel.discover,
                       dev_root=kernel.dev)
    try:
        return ownership.read_views(paths, deadline, SYSTEM_CLOCK, log_in=True)
    finally:
        close_paths(paths)


def views_source(config: ClusterConfig) -> ReadViews:
    """`read_views(lun_names, deadline)` for the libvirt hook and `vm list`."""
    def read(lun_names: Sequence[str], deadline: Deadline) -> Mapping[str, LunView]:
        return read_views(config, list(lun_names) or None, None, False, deadline)
    return read
