"""Wait for a blocking call no longer than a deadline.

libvirt calls and the hook's ownership read cannot be cancelled; a call that outlives its
deadline is left to finish on a daemon thread while the caller gets `DeadlineExceeded` and
decides (the libvirt adapter stops using the connection, the hook refuses the start).
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

from stonewall.clock import Deadline

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The call did not return before its deadline."""


def call_before(deadline: Deadline, call: Callable[[], T], what: str) -> T:
    """The result of `call()`, or DeadlineExceeded if it has none by `deadline`.
    Exceptions of `call` are re-raised in the caller's thread."""
    outcome: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed over to the waiting thread, raised there
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=work, name=what, daemon=True).start()
    if not done.wait(deadline.remaining()):
        raise DeadlineExceeded(f"{what}: no answer before the deadline")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
