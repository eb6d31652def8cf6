"""What the store's collaborators share: the database, the lock, the clock, a worker thread."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from ..config import Config
from ..errors import InvalidInputError, NotFoundError, StoreClosedError

__all__ = ["Shared", "Worker", "aware", "check_id", "now"]


def now() -> datetime:
    """The store's clock (UTC). Collaborators call it as ``state.now()``, so one patch of this
    module fixes the time everywhere (the TUI's snapshot tests do)."""
    return datetime.now(timezone.utc)


def aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything mindstore stores is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def check_id(id: Any) -> int:
    """A slot id as an int, or InvalidInputError."""
    if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
        raise InvalidInputError(f"slot ids are integers, got {id!r:.40}")
    if not -(2**63) <= int(id) < 2**63:  # what a database integer holds; no slot has such an id
        raise NotFoundError(f"no slot with id {id}; see the ids with `list()` or `mindstore list`")
    return int(id)


@dataclass(eq=False)
class Shared:
    """One open store's database and lock. The lock (re-entrant) serialises every change to the
    derived indexes and the buffered reads; SQL has its own transactions."""

    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    index_dir: Path | None
    lock: threading.RLock = field(default_factory=threading.RLock)
    closed: bool = False

    @property
    def sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError("this MindStore is closed; open a new one")

    def read_connection(self) -> Connection:
        """A connection for a search's reads. On SQLite they share one transaction, so that the
        catch-up and the rows come from one snapshot. PostgreSQL at READ COMMITTED (its default and
        the store's) takes a new snapshot for every statement inside a transaction too, so a read
        there gains nothing from one: in autocommit it skips the BEGIN and ROLLBACK round trips
        (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
        c = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            c = c.execution_options(isolation_level="AUTOCOMMIT")
        return c


class Worker:
    """One thread of the store's own, started on first use, and again in a forked child (which has
    none of its parent's threads)."""

    def __init__(self, name: str, initializer: Callable[[], None] | None = None) -> None:
        self._name, self._initializer = name, initializer
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0  # the process that started it

    @property
    def here(self) -> bool:
        """Whether the thread, and so every future it gave, belongs to this process."""
        return self._pool is not None and self._pid == os.getpid()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        if not self.here:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name, initializer=self._initializer)
            self._pid = os.getpid()
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        """Wait for what it runs and stop it (a forked child's copy has no thread to stop)."""
        if self.here:
            self._pool.shutdown()
