"""A space whose keys are searched in PostgreSQL (pgvector's HNSW), not in a per-process copy.

The key table (:class:`~mindstore.index.pgvector.PgVectorKeys`, one per space) is written in the
same transaction as the slots (a foreign key deletes a slot's key with the slot), so every process
sees a write at once and no process holds, loads or catches up a copy of the keys. Its existence
is the space's record: a space with a key table is searched there by every process that opens
it, whatever its ``Config.key_index`` (which decides only for spaces without one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from .db import SlotRow, SpaceRow, scope_where, table_exists
from .db.models import last_seq
from .index.pgvector import PgVectorKeys, build_memory
from .index.runtime import normalize
from .lexical_pg import TEXT_PREFIX, PgLexical, text_table
from .retention import lock_space
from .slots import Scope
from .spaces import IndexInfo, keys_from_bytes

__all__ = ["PgSpaceIndex", "drop_key_tables", "has_key_table", "key_table", "keys_moved", "moved_keys", "pgvector_available"]

_PREFIX = "mindstore_keys_"
_CHUNK = 50_000  # slots read and written at a time by a rebuild


def key_table(space_id: int) -> str:
    return f"{_PREFIX}{int(space_id)}"


def keys_moved(conn: Connection, space_id: int) -> bool:
    """Inside a write's transaction on PostgreSQL, for a process that searches the space with a
    FAISS copy: whether the space's keys now live in a key table (another process moved them),
    so that the write must put its keys there too. Takes a share of the space's row lock until
    the commit, so a move (which holds the lock while it copies) cannot start between this check
    and the commit; the check runs after the lock, in a statement of its own, and so sees a move
    committed while it waited."""
    conn.execute(select(SpaceRow.id).where(SpaceRow.id == space_id).with_for_update(read=True))
    return table_exists(conn, key_table(space_id))


def moved_keys(engine: Engine, space_id: int, dim: int) -> PgVectorKeys:
    """The key table of a space whose keys another process moved there (see :func:`keys_moved`)."""
    return PgVectorKeys(engine, space_id, dim, prefix=_PREFIX, create=False)


def has_key_table(engine: Engine, space_id: int) -> bool:
    """Whether the space's keys are kept in a pgvector table (on PostgreSQL only)."""
    return engine.dialect.name == "postgresql" and inspect(engine).has_table(key_table(space_id))


class _Keys:
    """What the store asks of a space's key index, answered from the key table. Writes arrive in
    the slots' own transaction (:meth:`PgSpaceIndex.write_keys`), so the calls the store makes
    after a commit change nothing here."""

    approximate = True
    device = "postgresql"
    saving = False
    dirty = False

    def __init__(self, keys: PgVectorKeys) -> None:
        self.keys = keys
        self.seq = 0

    def __len__(self) -> int:
        return self.keys.count()

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        return normalize(vectors)

    def add(self, ids: np.ndarray, vectors: np.ndarray | None = None, *, prepared: Any = None) -> None:
        pass  # written with the slots, in their transaction

    def remove(self, ids: np.ndarray) -> int:
        return 0  # deleted with the slots (ON DELETE CASCADE)

    def search(self, q: np.ndarray, k: int, *, subset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.keys.search(q, k, subset=subset)

    def ids(self) -> np.ndarray:
        with self.keys.engine.connect() as c:
            return np.array(c.scalars(select(self.keys.table.c.slot_id).order_by(self.keys.table.c.slot_id)).all(), dtype=np.int64)

    def wait_trained(self, timeout: float | None = None) -> bool:
        return True

    def join_training(self, timeout: float | None = None) -> None:
        pass

    def join_save(self) -> None:
        pass

    def reset(self) -> None:
        pass  # reset() deletes the slots, and their keys with them


class PgSpaceIndex:
    """A space searched through its pgvector key table; the same face as
    :class:`~mindstore.spaces.SpaceIndex` towards the store."""

    in_sql = True  # keys are written in the slots' transaction (write_keys)

    def __init__(self, row: SpaceRow, engine: Engine, *, rebuild: bool, context: bool = True) -> None:
        self.space_id, self.name, self.dim, self.key_source = row.id, row.name, row.dim, row.key_source
        self._engine = engine
        self.keys = PgVectorKeys(engine, row.id, row.dim, prefix=_PREFIX)
        self.index = _Keys(self.keys)
        self.lexical = PgLexical(engine, row.id, row.name, context=context)  # BM25, beside the keys
        self.local_events: set[int] = set()
        self.changes_since_save = 0
        self.repaired: str | None = None
        # ``rebuild``: fill the table from the slots (a new table, or keys moved or re-embedded).
        # An existing one is trusted without counting (keys commit with their slots, so the two
        # agree; a count is O(n), most of a cold open at 1e6): ``info`` checks it.
        if rebuild:
            self.rebuild()
        else:
            self._text_table()

    def write_keys(self, conn: Connection, ids: Any, keys: np.ndarray) -> None:
        """Store the keys of ``ids`` inside the caller's transaction (the slots' own)."""
        self.keys.add(np.asarray(ids, dtype=np.int64), keys, conn=conn)

    def fill_missing(self) -> int:
        """Keys and BM25 terms for the slots that have none (an import writes slots alone), under
        the space's row lock; returns how many slots were filled."""
        with self._engine.begin() as c:
            lock_space(c, self.space_id)
            rows = c.execute(text(f"SELECT s.id, s.key FROM slots s WHERE s.space_id = :sid AND NOT EXISTS "
                                  f"(SELECT 1 FROM {self.keys.table.name} k WHERE k.slot_id = s.id) ORDER BY s.id"), {"sid": self.space_id}).all()
            if rows:
                self.keys.add(np.array([r[0] for r in rows], dtype=np.int64), keys_from_bytes([r[1] for r in rows], self.dim), conn=c)
            bare = c.scalars(text(f"SELECT s.id FROM slots s WHERE s.space_id = :sid AND s.text IS NOT NULL AND NOT EXISTS "
                                  f"(SELECT 1 FROM {self.lexical.table} t WHERE t.slot_id = s.id)"), {"sid": self.space_id}).all()
            self.lexical.write(c, bare)
        return max(len(rows), len(bare))

    def write_texts(self, conn: Connection, ids: Any, docs: Any = None) -> None:
        """Index the texts of ``ids`` for BM25 inside the caller's transaction (the slots' own);
        ``docs``: their (text, metadata), when the caller has them (see ``PgLexical.write``)."""
        self.lexical.write(conn, ids, docs)

    def _text_table(self) -> None:
        """A key table made before BM25 moved into PostgreSQL gets its text table, filled under
        the space's row lock (as a rebuild is) so that no write in between is left out."""
        with self._engine.connect() as c:
            if table_exists(c, self.lexical.table):
                return
        with self._engine.begin() as c:
            lock_space(c, self.space_id)
            if self.lexical.create(c):
                self.lexical.fill(c)

    def search_scoped(self, q: np.ndarray, k: int, scope: Scope, current_only: bool,
                      subset: np.ndarray | None, conn: Connection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by cosine within the scope (and ``subset``, when a metadata filter chose
        one), filtered in the same statement; on ``conn`` (a search's autocommit read connection:
        the HNSW settings stay with its session) or in a transaction of its own."""
        where = scope_where(self.space_id, scope) if scope != Scope() else []  # unscoped: the table is the space's own
        if current_only:
            where.append(SlotRow.superseded_by.is_(None))
        return self.keys.search(q, k, where=where or None, subset=subset, conn=conn)

    def catch_up(self, session: Any = None) -> int:
        """Nothing to catch up; records the space's change sequence (what BM25 catches up to)."""
        if session is None:
            with self._engine.connect() as c:
                self.index.seq = last_seq(c, self.space_id)
        else:
            self.index.seq = last_seq(session, self.space_id)
        return 0

    def rebuild(self) -> int:
        """Fill the key table from ``slots.key`` (the HNSW index is dropped for the load and built
        once after: several times faster than growing it). Returns the keys written."""
        from tqdm.auto import tqdm

        with self._engine.begin() as c:
            # The space's row lock, held to the commit: a write that takes its share of it
            # (keys_moved) either commits before the copy reads the slots or waits and then finds
            # the table; no slot is left without its key.
            lock_space(c, self.space_id)
            total = c.scalar(select(func.count()).where(SlotRow.space_id == self.space_id)) or 0
            c.execute(text(f"TRUNCATE {self.keys.table.name}"))
            self.keys.drop_index(conn=c)
            with tqdm(total=total, desc=f"keys of {self.name!r} into pgvector", unit="key", disable=total < 50_000 or None) as bar:
                for ids, blobs in self._chunks(c):
                    self.keys.add(ids, keys_from_bytes(blobs, self.dim), conn=c)
                    bar.update(len(ids))
            self.keys.build_index(conn=c, maintenance_work_mem=build_memory(total, self.dim, half=self.keys.kind == "halfvec"))
            self.lexical.create(c)
            self.lexical.fill(c)
            c.execute(text("ANALYZE slots"))
        return int(total)

    def _chunks(self, c: Connection) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        after = 0
        while True:
            rows = c.execute(select(SlotRow.id, SlotRow.key).where(SlotRow.space_id == self.space_id, SlotRow.id > after)
                             .order_by(SlotRow.id).limit(_CHUNK)).all()
            if not rows:
                return
            after = rows[-1][0]
            yield np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def info(self, *, recall_sample: int = 0) -> IndexInfo:
        """What ``index_info`` and ``mindstore stats`` show; ``repaired`` says when the table and
        the slots disagree (keys written by a process that still held a FAISS copy of the space,
        or by an older mindstore), and how to mend it."""
        self.catch_up()
        with self._engine.connect() as c:
            size, graph, buffers = c.execute(text(
                "SELECT pg_total_relation_size(CAST(:t AS regclass)), pg_relation_size(to_regclass(:i)), "
                "pg_size_bytes(current_setting('shared_buffers'))"), {"t": self.keys.table.name, "i": f"{self.keys.table.name}_hnsw"}).one()
            in_slots = c.scalar(select(func.count()).where(SlotRow.space_id == self.space_id)) or 0
        keys = len(self.index)
        self.repaired = None if keys == in_slots else (
            f"the key table holds {keys} keys for {in_slots} slots: run `mindstore reindex --key-index pgvector` to rebuild it from the slots")
        return IndexInfo(self.name, "hnsw (pgvector)", "postgresql", keys, self.index.seq, 0,
                         f"table {self.keys.table.name}", int(size or 0), self.repaired,
                         self._recall(recall_sample) if recall_sample else None, False, buffers_advice(graph, buffers))

    def _recall(self, sample: int, k: int = 10) -> float:
        """recall@k of the HNSW search against an exact scan, with ``sample`` stored keys as queries."""
        ids = self.index.ids()
        if len(ids) == 0:
            return 1.0
        chosen = np.random.default_rng(0).choice(ids, size=min(sample, len(ids)), replace=False)
        with self._engine.connect() as c:
            blobs = dict(c.execute(select(SlotRow.id, SlotRow.key).where(SlotRow.id.in_(chosen.tolist()))).all())
        q = keys_from_bytes([blobs[int(i)] for i in chosen], self.dim)
        _, approx = self.keys.search(q, k)
        _, exact = self.keys.search(q, k, where=SlotRow.space_id == self.space_id, exact_below=len(ids) + 1)  # a full scan
        hits = sum(len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approx, exact))
        return hits / max(1, sum(int((e >= 0).sum()) for e in exact))

    def save(self, *, background: bool = False) -> None:
        self.changes_since_save = 0  # nothing to save: the table is the index

    def save_if_dirty(self) -> None:
        pass

    def drop(self) -> None:
        """Drop the key and text tables: the space goes back to FAISS and a per-process BM25."""
        self.drop_table(self._engine, self.space_id)

    @staticmethod
    def drop_table(engine: Engine, space_id: int) -> None:
        with engine.begin() as c:
            c.execute(text(f"DROP TABLE IF EXISTS {text_table(space_id)}"))
            c.execute(text(f"DROP TABLE IF EXISTS {key_table(space_id)}"))


def buffers_advice(graph: int | None, buffers: int) -> str | None:
    """What to tell the operator when a space's HNSW graph (``graph`` bytes) does not fit in the
    server's ``shared_buffers``: a search then copies most of the pages it visits in from the
    operating system's cache, several times slower than reading them from PostgreSQL's own."""
    if graph is None or graph <= buffers:
        return None
    want = max(128, 2 ** math.ceil(math.log2(graph * 1.25 / 2**20)))  # MiB: a quarter to spare, a power of two, at least the default
    setting = f"{want // 1024}GB" if want >= 1024 else f"{want}MB"
    return (f"the HNSW index ({graph / 2**20:,.0f} MB) is larger than the server's shared_buffers ({buffers / 2**20:,.0f} MB), so "
            f"searches read most of it from outside PostgreSQL's cache, several times slower: set shared_buffers to {setting} or "
            "more in postgresql.conf and restart the server")


def drop_key_tables(engine: Engine) -> None:
    """Drop every space's key and text tables (after a reset deleted the spaces)."""
    with engine.begin() as c:
        for prefix in (TEXT_PREFIX, _PREFIX):
            for name in c.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, :p)"),
                                  {"p": prefix}).all():
                c.execute(text(f'DROP TABLE IF EXISTS "{name}"'))


def pgvector_available(engine: Engine) -> bool:
    """Whether the server can give this database pgvector 0.8 or newer (created or creatable)."""
    from .index.pgvector import MIN_VERSION, _version

    with engine.connect() as c:
        v = c.scalar(text("SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                          "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))"))
    return v is not None and _version(v) >= MIN_VERSION
