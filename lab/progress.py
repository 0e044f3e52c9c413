"""A progress display for demo steps that take more than a second."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


@contextmanager
def progress(label: str, stream: TextIO = sys.stdout, after: float = 1.0) -> Iterator[None]:
    """While the block runs longer than `after` seconds, show `label` with a running clock
    (on a terminal: redrawn in place; otherwise one line when it ends)."""
    done = threading.Event()
    started = time.monotonic()
    interactive = stream.isatty()

    def draw() -> None:
        if done.wait(after) or not interactive:
            return
        spinner = "|/-\\"
        tick = 0
        while not done.wait(0.1):
            stream.write(f"\r  {spinner[tick % 4]} {label} {time.monotonic() - started:5.1f}s")
            stream.flush()
            tick += 1
        stream.write("\r" + " " * (len(label) + 16) + "\r")
        stream.flush()

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        took = time.monotonic() - started
        if took >= after and not interactive:
            stream.write(f"  ... {label}: {took:.1f}s\n")
            stream.flush()
