"""A space's key index kept in step with the SQL store (the source of truth).

On open the saved index is loaded and checked (checksum, dimension, count, change sequence); a
stale one catches up from the change log, a damaged or inconsistent one is rebuilt from SQL.
Before each search it catches up again, so writes from other processes are seen at once.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from .db import SlotRow, SpaceRow, cache_header, event_slots, foreign_cache, last_seq, read_changes, slot_count
from .db.models import GAP_WAIT_S
from .errors import MixedKeysError
from .index import IndexFileError, KeyIndex

__all__ = ["IndexInfo", "SpaceInfo", "SpaceIndex", "keys_from_bytes"]

log = logging.getLogger("mindstore")

_REBUILD_CHUNK = 20_000
_PROGRESS_FROM = 50_000  # slots; below this a rebuild is quick enough to need no bar
_COUNT_TRIES = 10  # catch-ups on open before a count that keeps differing means a rebuild


@dataclass(frozen=True)
class SpaceInfo:
    """A space as recorded in the database."""

    name: str
    dim: int
    key_source: str
    count: int = 0


@dataclass(frozen=True)
class IndexInfo:
    """The state of one space's key index, for ``mindstore stats`` and monitoring."""

    space: str
    kind: str  # "flat" (exact) or "ivf" (approximate)
    device: str  # "cpu" or "cuda"
    keys: int
    seq: int  # last change sequence applied
    pending_gaps: int  # sequence numbers below seq not yet seen (uncommitted or rolled back)
    file: str | None
    file_bytes: int | None
    repaired: str | None  # how the last open fixed the index, if it had to
    recall_at_10: float | None = None  # measured against an exhaustive scan when asked for
    training: bool = False  # IVF lists are being trained in the background (kind: what serves now)
    advice: str | None = None  # what the operator should do about this index, if anything


def keys_from_bytes(blobs: list[bytes], dim: int) -> np.ndarray:
    """Stored float32 keys as an (n, dim) array. A key of another size means the space holds keys
    of two models (a re-embedding by an older mindstore, cut short): a :class:`MixedKeysError`."""
    sizes = set(map(len, blobs))
    if sizes - {dim * 4}:
        raise MixedKeysError(
            f"this space's slots hold keys of {sorted(n // 4 for n in sizes)} dimensions where its embedder has {dim}: "
            "a re-embedding to another model was cut short. Reopen the store with the embedder you want and "
            "reindex=True (CLI: mindstore reindex --model ...) to re-embed every slot with it"
        )
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


class SpaceIndex:
    """One space's :class:`KeyIndex`, its file, and the logic that keeps it true to SQL."""

    in_sql = False  # keys are added to the index after the slots' commit (see spaces_pg for True)

    def __init__(self, row: SpaceRow, sessions: sessionmaker[Session], path: Path | None, device: str, approximate_from: int | None = None, background: bool = False) -> None:
        self.space_id = row.id
        self.name = row.name
        self.dim = row.dim
        self.key_source = row.key_source
        self._sessions = sessions
        self.path = path
        self._device = device
        self._approximate_from = approximate_from
        self._background = background
        self.local_events: set[int] = set()  # our own events, already applied to the index
        self.gaps: dict[int, float] = {}  # change sequence numbers not yet seen -> when first missed
        self.changes_since_save = 0
        self.repaired: str | None = None  # how the last open fixed the index, for stats and logs
        self.index = self._open()

    # -- open: load, check, repair or rebuild ------------------------------------------------

    def _open(self) -> KeyIndex:
        index: KeyIndex | None = None
        if self.path is not None and self.path.exists():
            try:
                index = KeyIndex.load(self.path, dim=self.dim, device=self._device, approximate_from=self._approximate_from, background=self._background)
            except IndexFileError as exc:
                log.warning("key index of space %r is unusable (%s); rebuilding from SQL", self.name, exc)
                self.repaired = "rebuilt: damaged file"
        if index is not None:
            with self._sessions() as s:
                foreign = foreign_cache(s, self.space_id, index.header, index.seq)
            if foreign is not None:
                log.warning("key index file of space %r is not this database's (%s); rebuilding from SQL", self.name, foreign)
                self.repaired = "rebuilt: index of another database"
                index = None
        if index is None:
            self.repaired = self.repaired or ("rebuilt: no file" if self.path is not None else None)
            return self._rebuild()
        with self._sessions() as s:
            db_seq = last_seq(s, self.space_id)
        if index.seq > db_seq:
            log.warning("key index of space %r is ahead of the database; rebuilding", self.name)
            self.repaired = "rebuilt: index ahead of database"
            return self._rebuild()
        self.index = index
        if index.seq < db_seq:
            self.repaired = "caught up from change log"
        # The count check. Other processes may write between the catch-up and the count: a count
        # that differs while the change log has moved on is a race, not a damaged index, and is
        # taken again rather than rebuilding (observed: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
        for _ in range(_COUNT_TRIES):
            self.catch_up()
            with self._sessions() as s:
                count = slot_count(s, self.space_id)
                moved = last_seq(s, self.space_id) != index.seq or bool(self.gaps)  # read after the count
            if count == len(index) or not moved:
                break
        if count != len(index):
            log.warning("key index of space %r holds %d keys, SQL %d; rebuilding", self.name, len(index), count)
            self.repaired = "rebuilt: count differs"
            return self._rebuild()
        return index

    def _rebuild(self) -> KeyIndex:
        index = KeyIndex(self.dim, device=self._device, approximate_from=self._approximate_from, background=self._background)
        with self._sessions() as s:
            # Read the sequence first: changes made while we stream are re-applied by catch_up.
            index.seq = last_seq(s, self.space_id)
            total = slot_count(s, self.space_id)
            from tqdm.auto import tqdm  # only a rebuild shows progress: off the path of opening a store

            bar = tqdm(total=total, desc=f"indexing space {self.name!r}", unit="slot", disable=total < _PROGRESS_FROM or None)
            last = 0
            while True:
                rows = s.execute(
                    select(SlotRow.id, SlotRow.key)
                    .where(SlotRow.space_id == self.space_id, SlotRow.id > last)
                    .order_by(SlotRow.id)
                    .limit(_REBUILD_CHUNK)
                ).all()
                if not rows:
                    break
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                index.add(ids, keys_from_bytes([r[1] for r in rows], self.dim))
                last = int(ids[-1])
                bar.update(len(rows))
            bar.close()
        self.index = index
        self.local_events.clear()
        self.catch_up()
        self.save()
        return index

    # -- staying in step -----------------------------------------------------------------------

    def catch_up(self, session: Session | Connection | None = None) -> int:
        """Apply every change logged since ``index.seq``, and any earlier one that committed late;
        return how many slots were refreshed.

        Sequence numbers can commit out of order (two writers on PostgreSQL: the one holding the
        smaller number may commit second), so "events after the last one seen" alone could skip a
        change for good. Numbers missing below the newest seen are kept as gaps and looked up
        again on every catch-up until they appear or ``GAP_WAIT_S`` passes (a rollback).

        ``session``: read through the caller's session or connection (a search reads its candidates
        on the same one, so the index and the rows it returns come from one snapshot on SQLite)."""
        index = self.index
        with nullcontext(session) if session is not None else self._sessions() as s:
            db_seq = last_seq(s, self.space_id)
            now = time.monotonic()
            self.gaps = {g: t for g, t in self.gaps.items() if now - t < GAP_WAIT_S}
            if db_seq <= index.seq and not self.gaps:
                return 0
            if not self.gaps and self._all_local(index.seq, db_seq):
                # Every change since the index's sequence is this process's own, already in the
                # index: nothing to read, so a bulk import's periodic saves read no event rows.
                touched: list[int] = []
            else:
                touched = self._apply_log(s, db_seq, now)
        if not touched and db_seq <= index.seq:
            return 0
        index.seq = max(db_seq, index.seq)
        index.dirty = True
        self.local_events = {e for e in self.local_events if e > index.seq}
        self.changes_since_save += len(touched)
        return len(touched)

    def _apply_log(self, s: Session | Connection, db_seq: int, now: float) -> list[int]:
        """Read the change log since the index's sequence (and the open gaps), apply each slot it
        names that is not this process's own change, track new gaps; return the slots applied."""
        index = self.index
        rows = read_changes(s, self.space_id, index.seq, db_seq, self.gaps, now, self.local_events)
        touched = sorted({i for eid, first, last in rows if eid not in self.local_events for i in event_slots(first, last)})
        for start in range(0, len(touched), 10_000):
            chunk = touched[start : start + 10_000]
            found = s.execute(select(SlotRow.id, SlotRow.key).where(SlotRow.id.in_(chunk))).all()
            present = {r[0] for r in found}
            gone = np.array([i for i in chunk if i not in present], dtype=np.int64)
            index.remove(gone)
            if found:
                ids = np.array([r[0] for r in found], dtype=np.int64)
                index.add(ids, keys_from_bytes([r[1] for r in found], self.dim))
        return touched

    def _all_local(self, seq: int, db_seq: int) -> bool:
        """Whether every sequence number in (seq, db_seq] is one of this process's own events. The
        numbers are distinct, so counting those in range is enough."""
        want = db_seq - seq
        if want > len(self.local_events):
            return False
        return sum(1 for e in self.local_events if seq < e <= db_seq) == want

    def info(self, *, recall_sample: int = 0) -> IndexInfo:
        idx = self.index
        size = self.path.stat().st_size if self.path is not None and self.path.exists() else None
        return IndexInfo(
            self.name, "ivf" if idx.approximate else "flat", idx.device, len(idx), idx.seq, len(self.gaps),
            str(self.path) if self.path is not None else None, size, self.repaired,
            idx.recall(10, sample=recall_sample) if recall_sample else None,
            not idx.wait_trained(timeout=0),
        )

    def save(self, *, background: bool = False) -> None:
        """Save the index to its file (``background``: from a thread, see :meth:`KeyIndex.save`).

        It catches up first. This process's own writes go into the index without moving ``seq``,
        which only a catch-up does, so without it a process that only wrote (a bulk import) would
        save seq 0 and the next open re-read every slot since. Here the catch-up reads only the
        change log since the last one (its own events need no slot reads)."""
        if self.path is not None:
            self.catch_up()
            # A reopened index re-reads from before its oldest open gap (re-applying a change is
            # harmless: catch-up reads the slot's current row).
            seq = min(self.index.seq, min(self.gaps, default=self.index.seq + 1) - 1)
            with self._sessions() as s:
                header = cache_header(s, self.space_id, seq)
            self.index.save(self.path, seq=seq, background=background, header=header)
        self.changes_since_save = 0

    def save_if_dirty(self) -> None:
        if self.index.dirty:
            self.save()
