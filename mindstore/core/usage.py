"""Usage statistics of search hits: counted in memory, written to SQL in batches by a thread.

Usage is advisory: on a busy database the counts stay pending for the next flush, and a process
killed before a flush loses at most ``Config.usage_flush_s`` of read counts (never a write).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy import update as sql_update
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from ..db import SlotRow
from . import state
from .state import Shared, Worker

__all__ = ["Reads"]

Pending = dict[int, tuple[int, datetime]]  # slot id -> (reads not yet in SQL, last read)

_READS_PENDING_MAX = 4096  # slots with unwritten reads that trigger a flush however recent
# Core, not ORM: executemany of a compiled statement is what makes a flush cheap.
_ADD_READS = (
    sql_update(SlotRow.__table__)
    .where(SlotRow.__table__.c.id == bindparam("slot"))
    .values(reads=SlotRow.__table__.c.reads + bindparam("n"), last_access=bindparam("at"))
)


class Reads:
    """The reads searches counted and SQL does not hold yet, and the thread that writes them."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._pending: Pending = {}
        self._since: float | None = None  # monotonic time of the oldest unwritten read
        self._worker = Worker("mindstore-usage")
        self._flushing: Future[Pending | None] | None = None  # a write under way in the thread

    @property
    def any(self) -> bool:
        """Whether reads are counted that SQL may not hold yet."""
        return bool(self._pending) or self._flushing is not None

    def unwritten(self, slot_id: int) -> tuple[int, datetime | None]:
        """A slot's reads not in SQL yet and the time of the last (0, None when none)."""
        return self._pending.get(slot_id, (0, None))

    def count(self, ids: Iterable[int]) -> tuple[dict[int, int], datetime]:
        """Count one read of each slot (a search hit): in memory now, in SQL by :meth:`flush`
        within ``Config.usage_flush_s``. Returns, per slot, the reads SQL does not hold yet (this
        one included) and the access time, for the hits to show."""
        at = state.now()
        ids = list(ids)
        if not ids:
            return {}, at
        config, engine = self._shared.config, self._shared.engine
        with self._shared.lock:
            unwritten = {}
            for i in ids:
                n = self._pending.get(i, (0, at))[0] + 1
                self._pending[i] = (n, at)
                unwritten[i] = n
            if self._since is None:
                self._since = time.monotonic()
            if time.monotonic() - self._since >= config.usage_flush_s or len(self._pending) >= _READS_PENDING_MAX:
                # From a search, the write runs in a thread: on SQLite its commit writes a page per
                # slot read, a stall that must not fall on a search. A write still under way is
                # left to finish, and an interval of 0 writes before the search returns.
                if config.usage_flush_s > 0 and not isinstance(engine.pool, StaticPool):
                    if self._flushing is None or self._flushing.done():
                        self.flush(background=True)
                else:
                    self.flush()
        return unwritten, at

    def flush(self, *, background: bool = False) -> None:
        """Write the counted reads: one executemany of ``reads = reads + n, last_access = t``
        (``background``: from the usage thread). A write under way finishes first, so when this
        returns (not in the background) SQL holds every read counted before the call."""
        with self._shared.lock:
            self._wait()
            if not self._pending:
                return
            pending, self._pending, self._since = self._pending, {}, None
            if background:
                self._flushing = self._worker.submit(self.write, pending)
            else:
                self._keep(self.write(pending))

    def write(self, pending: Pending) -> Pending | None:
        """Add ``pending`` to the slots' usage in SQL; returns them if the database refused."""
        params = [{"slot": i, "n": n, "at": at} for i, (n, at) in sorted(pending.items())]
        try:
            with self._shared.engine.begin() as c:
                c.execute(_ADD_READS, params)
        except OperationalError:
            return pending
        return None

    def close(self) -> None:
        self.flush()
        self._worker.shutdown()

    def _wait(self) -> None:
        """Let a write from the usage thread finish, keeping its counts if it failed."""
        if self._flushing is not None:
            future, self._flushing = self._flushing, None
            if self._worker.here:  # a forked child's copy belongs to the parent's thread
                self._keep(future.result())

    def _keep(self, failed: Pending | None) -> None:
        """Put reads that could not be written back, merged with any counted meanwhile."""
        if not failed:
            return
        for i, (n, at) in failed.items():
            m, later = self._pending.get(i, (0, at))
            self._pending[i] = (n + m, max(at, later))
        self._since = time.monotonic()
