"""How a migration's source reaches the destination's holder: one small adapter.

`vm migrate` runs on the source, and every step the destination must take (hold a permit,
claim the guest's LUNs on its data path, read them back) is done by the destination's own
holder, which keeps that node's registered nexuses. The source asks it with the ordinary
holder protocol, and checks each answer as it checks its own holder's (the answer must name
the destination with the destination's key from the cluster configuration).

Two transports:
- `command_transport(argv)`: the request line on the stdin of a command, the answer on its
  stdout. In a cluster that is `ssh DEST stonewall holder relay`, the way libvirt's
  qemu+ssh reaches a peer's daemon: ssh authenticates the node, `holder relay` (handlers/
  holder_cmd.py) passes only the migration's operations to the local socket.
- no transport, with the destination's own configuration file: the destination's socket on
  this machine (the lab runs every node on one machine, each with its runtime directory).
"""
from __future__ import annotations

from typing import Sequence

from stonewall.clock import Deadline
from stonewall.config.model import ClusterConfig
from stonewall.holder.api import HolderUnavailable
from stonewall.holder.client import MAX_ANSWER, HolderClient, Transport
from stonewall.process import ProcessError, run_process

DEFAULT_PEER_COMMAND = ("ssh", "-o", "BatchMode=yes", "{node}", "stonewall", "holder", "relay")


def command_transport(argv: Sequence[str]) -> Transport:
    """A transport running `argv` once per request (stdin: the request, stdout: the answer)."""
    def exchange(line: bytes, timeout: float) -> bytes:
        try:
            done = run_process(argv, Deadline.after(timeout), stdin=line,
                               output_limit=MAX_ANSWER)
        except ProcessError as error:
            raise HolderUnavailable(f"cannot run {argv[0]}: {error}") from None
        if done.timed_out:
            raise HolderUnavailable(f"{argv[0]}: no answer from the peer's holder within "
                                    f"{timeout:.1f} s")
        if done.stdout_dropped:
            raise HolderUnavailable(f"{argv[0]}: the peer's answer is longer than "
                                    f"{MAX_ANSWER} bytes")
        if not done.ok:
            why = done.text("stderr").strip().splitlines()
            raise HolderUnavailable(f"{' '.join(argv)} exited {done.returncode}"
                                    + (f": {why[-1]}" if why else ""))
        return done.stdout
    return exchange


def peer_holder(config: ClusterConfig, destination: str, *,
                peer_config: ClusterConfig | None = None,
                command: Sequence[str] = DEFAULT_PEER_COMMAND) -> HolderClient:
    """The destination's holder: through its socket when `peer_config` (its own configuration,
    same cluster) is given, else through `command` ({node} replaced by the destination's
    first address, else its name)."""
    if peer_config is not None:
        if peer_config.cluster != config.cluster:
            raise ValueError(f"{peer_config.source} is for cluster {peer_config.cluster!r}, not "
                             f"{config.cluster!r}")
        return HolderClient(peer_config, destination)
    node = config.node(destination)
    host = node.addresses[0] if node.addresses else node.name
    return HolderClient(config, destination,
                        transport=command_transport([part.replace("{node}", host)
                                                     for part in command]))
