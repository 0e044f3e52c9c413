"""Waiting under a deadline, two ways.

- `map_bounded`: work many paths at once with a bounded pool, each item under the shared
  deadline. A path that hangs is abandoned at the deadline (its own I/O deadline ends it
  shortly after); it never stalls the answers of the others. Work items may themselves call
  `map_bounded` (a LUN's preempt reads its paths): each level of nesting gets a pool of its
  own, because items waiting on items of the same pool could take every worker and wait on
  each other until the deadline.
- `call_before`: one blocking call that cannot be cancelled (libvirt, the hook's ownership
  read). A call that outlives its deadline is left to finish on a daemon thread of its own
  (never a pool worker, which it would hold) while the caller gets `DeadlineExceeded` and
  decides (the libvirt adapter stops using the connection, the hook refuses the start).
"""
from __future__ import annotations

import concurrent.futures
import threading
from typing import Callable, Iterable, TypeVar

from stonewall.clock import Deadline

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 16
NESTING_LEVELS = 3  # LUNs -> paths -> (spare); deeper calls run inline
_POOLS = [concurrent.futures.ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                                thread_name_prefix=f"stonewall-path-{level}")
          for level in range(NESTING_LEVELS)]
_LEVEL = threading.local()


class Abandoned(Exception):
    """The item did not finish before the deadline."""


def map_bounded(work: Callable[[T], R], items: Iterable[T],
                deadline: Deadline) -> list[R | BaseException]:
    """`work(item)` for every item, concurrently; each slot holds the result or the
    exception raised (Abandoned when the deadline passed first). Order is kept."""
    items = list(items)
    level = getattr(_LEVEL, "depth", 0)
    if len(items) <= 1 or level >= NESTING_LEVELS:
        return [_call(work, item) for item in items]

    def at_next_level(item: T) -> R:
        _LEVEL.depth = level + 1
        return work(item)

    futures = [_POOLS[level].submit(at_next_level, item) for item in items]
    concurrent.futures.wait(futures, timeout=deadline.remaining())
    results: list[R | BaseException] = []
    for future in futures:
        if not future.done():
            future.cancel()
            results.append(Abandoned("no answer before the deadline"))
        elif future.exception() is not None:
            results.append(future.exception())  # type: ignore[arg-type]
        else:
            results.append(future.result())
    return results


def _call(work: Callable[[T], R], item: T) -> R | BaseException:
    try:
        return work(item)
    except Exception as exc:  # the caller sorts results from failures
        return exc


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
