"""Network namespaces and veth links for lab clusters, created and removed by the lab itself.

Addresses live only inside these namespaces and come from 169.254.0.0/16 (link-local, RFC
3927): never routed, never a host's address, so a lab cannot reach or shadow anything
outside it. Every namespace is deleted at the end (its veth ends go with it).
"""
from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

_CLONE_NEWNET = 0x40000000  # linux/sched.h
NETNS_DIR = "/run/netns"  # where `ip netns add` pins namespaces
_IP_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """A namespace or link could not be created, changed or removed."""


def ip(*arguments: str, timeout: float = _IP_TIMEOUT) -> str:
    """Run `ip ARGUMENTS`; its stdout, or NetnsError."""
    binary = shutil.which("ip") or "/usr/sbin/ip"
    if not os.path.exists(binary):
        raise NetnsError("ip not found: install the Debian package iproute2")
    try:
        result = subprocess.run([binary, *arguments], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NetnsError(f"ip {' '.join(arguments)}: no answer in {timeout} s") from None
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(arguments)}: {result.stderr.strip()}")
    return result.stdout


def lab_tag() -> str:
    """A short random tag that keeps parallel labs' names apart (interface names <= 15)."""
    return secrets.token_hex(3)


class Namespace:
    """One named network namespace (`ip netns add`), loopback up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.created = False

    def create(self) -> "Namespace":
        ip("netns", "add", self.name)
        self.created = True
        ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        """Remove the namespace; processes still inside keep it alive until they exit."""
        if self.created:
            self.created = False
            ip("netns", "delete", self.name)

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this namespace."""
        return [shutil.which("ip") or "/usr/sbin/ip", "netns", "exec", self.name, *argv]

    def ip(self, *arguments: str) -> str:
        return ip("-n", self.name, *arguments)

    def add_bridge(self, name: str, address: str) -> None:
        """A bridge with `address`: the shared segment that Links with `b_bridge` join."""
        self.ip("link", "add", name, "type", "bridge")
        self.ip("addr", "add", address, "dev", name)
        self.ip("link", "set", name, "up")


@dataclass(frozen=True)
class Link:
    """A veth pair between two namespaces: an address at end a, and at end b either an
    address or a port of a bridge in b."""

    a: Namespace
    a_name: str
    a_address: str  # "169.254.x.y/24"
    b: Namespace
    b_name: str
    b_address: str | None = None
    b_bridge: str | None = None

    def create(self) -> "Link":
        ip("link", "add", self.a_name, "type", "veth", "peer", "name", self.b_name)
        ip("link", "set", self.a_name, "netns", self.a.name)
        ip("link", "set", self.b_name, "netns", self.b.name)
        self.a.ip("addr", "add", self.a_address, "dev", self.a_name)
        if self.b_bridge:
            self.b.ip("link", "set", self.b_name, "master", self.b_bridge)
        elif self.b_address:
            self.b.ip("addr", "add", self.b_address, "dev", self.b_name)
        self.up()
        return self

    def up(self) -> None:
        self.a.ip("link", "set", self.a_name, "up")
        self.b.ip("link", "set", self.b_name, "up")

    def cut(self) -> None:
        """Both ends down: the addresses' routes go, packets to them fail at once."""
        self.a.ip("link", "set", self.a_name, "down")
        self.b.ip("link", "set", self.b_name, "down")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(code) or errno.errorcode.get(code, code)}")


@contextmanager
def entered(namespace: Namespace) -> Iterator[None]:
    """Run the body with the calling thread inside `namespace`'s network.

    A network namespace is per thread (setns(2)), and a socket stays in the namespace it was
    created in: sessions opened in the body keep talking through the namespace afterwards.
    The thread returns to its own namespace even when the body raises."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(os.path.join(NETNS_DIR, namespace.name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
