"""Work many paths at once with a bounded pool, each item under the shared deadline.

A path that hangs is abandoned at the deadline (its own I/O deadline ends it shortly after);
it never stalls the answers of the others.
"""
from __future__ import annotations

import concurrent.futures
from typing import Callable, Iterable, TypeVar

from stonewall.clock import Deadline

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 16
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                              thread_name_prefix="stonewall-path")


class Abandoned(Exception):
    """The item did not finish before the deadline."""


def map_bounded(work: Callable[[T], R], items: Iterable[T],
                deadline: Deadline) -> list[R | BaseException]:
    """`work(item)` for every item, concurrently; each slot holds the result or the
    exception raised (Abandoned when the deadline passed first). Order is kept."""
    items = list(items)
    if len(items) <= 1:
        return [_call(work, item) for item in items]
    futures = [_POOL.submit(work, item) for item in items]
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
