"""Which configured node this machine is: --node, else $STONEWALL_NODE, else the host name."""
from __future__ import annotations

import socket
from typing import Mapping

from stonewall.config.model import ClusterConfig, Node


NODE_ENV = "STONEWALL_NODE"


class UnknownLocalNode(Exception):
    """This machine matches no configured node."""


def local_node_name(cli_value: str | None, environ: Mapping[str, str]) -> str:
    """--node, else $STONEWALL_NODE, else the short host name (not checked against a
    configuration: the hook runs before one is read)."""
    return cli_value or environ.get(NODE_ENV) or socket.gethostname().split(".", 1)[0]


def local_node(config: ClusterConfig, cli_value: str | None,
               environ: Mapping[str, str]) -> Node:
    """The node this process acts as."""
    name = local_node_name(cli_value, environ)
    try:
        return config.node(name)
    except KeyError:
        known = ", ".join(n.name for n in config.nodes)
        raise UnknownLocalNode(f"node {name!r} is not in {config.source} (nodes: {known}); "
                               "use --node or STONEWALL_NODE") from None
