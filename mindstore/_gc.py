"""Hold CPython's cyclic garbage collector off while a bulk write builds its objects.

The collector runs when allocations of container objects outnumber deallocations by a threshold
(700), whether or not they can form cycles, and each run over the oldest generation walks every
tracked object in the process. A bulk add of 10,000 slots allocates ~50,000 containers and keeps
the 10,000 ``Slot`` objects it returns alive to the end, so they are promoted to the oldest
generation and trigger full collections. In a process that has also loaded the embedding model,
each walks hundreds of thousands of objects with the GIL held, so the writer's inserts stop too
(measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). Nothing a bulk write
builds forms a cycle; its temporaries are freed by reference counting. Mercurial's ``util.nogc``
does the same for the same reason.

The collector is process-wide state: while a bulk write runs, other threads' cycles wait for the
next collection (they are collected after, not lost), also while the write waits for another
process's write lock. Concurrent bulk writes share one pause, and the collector is turned back on
only by the last of them, and only if it was on when the first began: an application that turned
it off before keeps it off, though one that turns it off during another thread's bulk write
finds it back on after. A child forked during a pause starts with the collector as it was before.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PAUSE_FROM", "gc_paused"]

PAUSE_FROM = 1_000  # objects; smaller writes run with the collector as it is

_lock = threading.Lock()
_depth = 0
_restore = False


@contextmanager
def gc_paused(n: int) -> Iterator[None]:
    """Run the body with the cyclic collector off when it writes ``n >= PAUSE_FROM`` items."""
    global _depth, _restore
    if n < PAUSE_FROM:
        yield
        return
    entered = False
    try:
        with _lock:
            if _depth == 0:
                _restore = gc.isenabled()
                gc.disable()
            _depth += 1
            entered = True
        yield
    finally:
        if entered:
            with _lock:
                _depth -= 1
                if _depth == 0 and _restore:
                    gc.enable()


def _after_fork_in_child() -> None:
    """A child forked during a pause has none of the threads that would end it: start it afresh,
    with the collector as the application had it."""
    global _depth, _lock
    paused, _depth, _lock = _depth > 0, 0, threading.Lock()
    if paused and _restore:
        gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
