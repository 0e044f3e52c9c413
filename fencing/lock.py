"""One fence of a given peer at a time on this node: an flock(2) on a file per peer.

DRBD 9 calls fence-peer once per resource and lost peer, concurrently (reference/drbd.md 2.1),
and the Pacemaker agent may fence the same peer at the same moment. Serialising per peer lets
the second caller find the peer already fenced (the holder's preempt is idempotent) instead
of racing the first through the same LUNs. flock is released by the kernel when the holding
process dies, so a handler killed mid-fence never leaves the lock behind.
"""
from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from stonewall.clock import Clock, Deadline

# Short enough that a waiter starts within a blink of the holder's release, long enough not
# to spin; flock has no timeout of its own, hence polling with LOCK_NB.
_POLL_SECONDS = 0.05


class PeerLockTimeout(Exception):
    """Another fence of the same peer still held the lock when the deadline passed."""


class PeerLockError(OSError):
    """The lock file could not be created or locked (directory missing, permissions)."""


def lock_path(lock_dir: str, peer_name: str) -> str:
    """The lock file for fencing `peer_name`."""
    if not peer_name or "/" in peer_name or peer_name in (".", ".."):
        raise ValueError(f"peer name {peer_name!r} cannot name a lock file")
    return os.path.join(lock_dir, f"fence-{peer_name}.lock")


@contextmanager
def peer_lock(lock_dir: str, peer_name: str, deadline: Deadline, clock: Clock) -> Iterator[float]:
    """Hold the fence lock of `peer_name` (yields the seconds spent waiting for it).

    Raises PeerLockTimeout when `deadline` passes first, PeerLockError when the file cannot be
    opened."""
    path = lock_path(lock_dir, peer_name)
    try:
        os.makedirs(lock_dir, mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise PeerLockError(err.errno, f"cannot open the fence lock {path}: {err.strerror}") \
            from err
    began = clock.monotonic()
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise PeerLockError(err.errno, f"cannot lock {path}: {err.strerror}") \
                        from err
            if deadline.expired():
                raise PeerLockTimeout(
                    f"another fence of {peer_name} held {path} for "
                    f"{clock.monotonic() - began:.1f} s, past this call's deadline")
            clock.sleep(min(_POLL_SECONDS, deadline.remaining()))
        yield clock.monotonic() - began
    finally:
        os.close(descriptor)  # closing the descriptor releases the flock
