"""Which configured node this machine is: --node, else $STONEWALL_NODE, else the host name."""
from __future__ import annotations

import socket
from typing import Mapping

from stonewall.config.model import ClusterConfig, Node


class UnknownLocalNode(Exception):
    """This machine matches no configured node."""


def local_node(config: ClusterConfig, cli_value: str | None,
               environ: Mapping[str, str]) -> Node:
    """The node this process acts as."""
    name = cli_value or environ.get("STONEWALL_NODE") or socket.gethostname().split(".")[0]
    try:
        return config.node(name)
    except KeyError:
        known = ", ".join(n.name for n in config.nodes)
        raise UnknownLocalNode(f"node {name!r} is not in {config.source} (nodes: {known}); "
                               "use --node or STONEWALL_NODE") from None
