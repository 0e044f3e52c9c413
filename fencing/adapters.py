"""The production adapters of the fencing topology: this node's holder, its peers' BMCs,
the real sleeper and the per-peer lock under `paths.runtime_dir`.

Nothing here imports pyghmi or libvirt: IPMI runs in a worker process (stonewall.power.ipmi),
so a fence handler stays small and starts fast.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from stonewall.clock import Clock, Deadline
from stonewall.config.model import ClusterConfig, Node
from stonewall.config.secrets import SecretError, read_secret
from stonewall.fencing.agent_level import agent_group_off
from stonewall.fencing.lock import peer_lock
from stonewall.fencing.topology import FenceAdapters, PowerAdapterError, PowerOff
from stonewall.holder.client import HolderClient
from stonewall.power.errors import IpmiSettingsError
from stonewall.power.fence import PowerFenceResult, power_off_verified
from stonewall.power.ipmi import IpmiClient


def ipmi_power_off(clock: Clock, environ: Mapping[str, str]) -> PowerOff:
    """A verified IPMI power-off of any configured node (its `ipmi` settings and secret)."""

    def power_off(node: Node, deadline: Deadline) -> PowerFenceResult:
        settings = node.ipmi
        if settings is None:
            raise PowerAdapterError(f"{node.name} has no ipmi settings")
        try:
            client = IpmiClient(settings, read_secret(settings.password, environ))
        except (SecretError, IpmiSettingsError) as err:
            raise PowerAdapterError(f"{node.name}: {err}") from err
        return power_off_verified(client, deadline, clock, settings.poll_interval)

    return power_off


def node_adapters(config: ClusterConfig, clock: Clock, environ: Mapping[str, str], *,
                  node: str | None = None) -> FenceAdapters:
    """Adapters acting as the node whose configuration `config` is; `node` names it when the
    caller knows (the holder must then serve that node)."""
    runtime_dir = config.paths.runtime_dir
    return FenceAdapters(
        storage=HolderClient(config, node),
        power_off=ipmi_power_off(clock, environ),
        sleep=clock.sleep,
        serialise=partial(peer_lock, runtime_dir, clock=clock),
        agent_off=agent_group_off(clock, environ),
    )
