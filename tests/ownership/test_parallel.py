"""The bounded pool: nested use does not deadlock, a hung item is abandoned at the deadline."""
import threading
import time

from stonewall.clock import Deadline
from stonewall.bounded import MAX_WORKERS, Abandoned, map_bounded


def test_nested_maps_wider_than_the_pool_finish_without_waiting_for_the_deadline():
    # A fence works 64 LUNs concurrently and each LUN reads its paths concurrently.
    deadline = Deadline.after(5)
    started = time.monotonic()
    results = map_bounded(lambda lun: map_bounded(lambda path: (lun, path), range(2), deadline),
                          range(4 * MAX_WORKERS), deadline)
    assert time.monotonic() - started < 1.0
    assert results == [[(lun, 0), (lun, 1)] for lun in range(4 * MAX_WORKERS)]


def test_a_hung_item_is_abandoned_and_the_others_answer():
    release = threading.Event()
    try:
        results = map_bounded(lambda n: release.wait(10) if n == 0 else n, range(4),
                              Deadline.after(0.3))
        assert isinstance(results[0], Abandoned) and results[1:] == [1, 2, 3]
    finally:
        release.set()


def test_exceptions_are_returned_in_their_slot():
    def work(n: int) -> int:
        if n == 1:
            raise ValueError("path 1 failed")
        return n

    results = map_bounded(work, range(3), Deadline.after(5))
    assert results[0] == 0 and results[2] == 2 and isinstance(results[1], ValueError)
