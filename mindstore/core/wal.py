"""SQLite tuning for bulk adds: their WAL checkpoint runs in a thread, not inside the commit.

SQLite copies the WAL back into the database file (a checkpoint) in the commit that takes the WAL
past 1,000 pages. A bulk add of 10,000 keys writes ~20 MB, so nearly every such commit would run
one, inside the add; SQLite's documentation suggests running them from another thread instead
(the fill times behind this: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).

The WAL stays bounded: a bulk add first waits for a checkpoint still copying (it started at the
previous bulk commit, and has had that add's key-index update to run in). Having copied every
frame, it leaves the WAL to restart from its beginning at the add's first write, so the WAL holds
one batch. One that could not copy them all (a reader held old frames) makes the add commit with
the usual checkpoint. An add does not commit while a checkpoint is still copying: the writer would
not wait, but the WAL would grow to many batches for no fill time gained.
"""

from __future__ import annotations

from concurrent.futures import Future

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from .state import Shared, Worker

__all__ = ["Checkpoints"]

_BEHIND = 1000  # slots: a SQLite bulk add this big leaves its WAL checkpoint to a thread


class Checkpoints:
    """The checkpoint thread of one store and the last checkpoint it ran."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._worker = Worker("mindstore-checkpoint")
        self.last: Future[bool] | None = None  # True once done if it copied every frame

    def behind(self, n: int) -> bool:
        """Whether a bulk add of ``n`` new slots leaves its checkpoint to the thread (its
        transaction then calls :meth:`autocheckpoint_off`); waits for one still copying."""
        engine = self._shared.engine
        if n < _BEHIND or not self._shared.sqlite or isinstance(engine.pool, StaticPool):
            return False
        last, self.last = self.last, None
        if last is None or not self._worker.here:  # none yet, or the parent's, before a fork
            return True
        return last.exception() is None and bool(last.result())

    @staticmethod
    def autocheckpoint_off(s: Session) -> None:
        """Turn SQLite's automatic checkpoint off for ``s``'s connection until it goes back to the
        pool (db/engine.py restores it there)."""
        conn = s.connection()
        if "autocheckpoint" not in conn.info:
            conn.info["autocheckpoint"] = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")

    def later(self) -> None:
        """Checkpoint the WAL from the checkpoint thread."""
        with self._shared.lock:
            self.last = self._worker.submit(self.checkpoint)

    def checkpoint(self) -> bool:
        """A passive checkpoint (it never waits for readers or writers): True if it copied every
        frame in the WAL into the database file."""
        try:
            with self._shared.engine.connect() as c:
                busy, frames, copied = c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        except SQLAlchemyError:
            return False  # the next bulk add commits with the usual checkpoint
        return busy == 0 and frames == copied

    def close(self) -> None:
        self._worker.shutdown()
