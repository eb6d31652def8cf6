"""BM25 in PostgreSQL for a space whose keys are there too (pgvector): no per-process copy.

One row a slot that has terms in ``mindstore_text_<space id>``: its terms and their counts (``tokenize`` of the
text, with the speaker and date of ``indexed_text`` when ``Config.index_context``) and its length,
written in the slots' own transaction (``write``), deleted with the slot (a cascading foreign
key), and found through a GIN index on the terms. A search scores in one statement, with the
formula and the stop words of :class:`~mindstore.lexical.Bm25` (Lucene's non-negative idf over
the whole space, a ``subset`` only filters): the same ranking as the per-process index.

The space's size and mean length (BM25's N and avgdl) are an O(N) aggregate: each process keeps
them, exact below ``EXACT_STATS_BELOW`` slots (read again whenever the space changed) and at most
``STATS_TTL_S`` seconds old above, where a minute of writes barely moves either.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from .db import SlotRow, table_exists
from .lexical import tokenize
from .retrieval import indexed_text

__all__ = ["TEXT_PREFIX", "PgLexical", "text_table"]

TEXT_PREFIX = "mindstore_text_"
_CHUNK = 10_000  # slots tokenised and written a statement
EXACT_STATS_BELOW = 50_000
STATS_TTL_S = 60.0
K1, B = 1.2, 0.75  # as Bm25's defaults


def text_table(space_id: int) -> str:
    return f"{TEXT_PREFIX}{int(space_id)}"


class PgLexical:
    """The BM25 index of one pgvector space, in its text table; the same face towards the store
    as :class:`~mindstore.lexical.LexicalIndex` (``search``, ``catch_up``, ``len``, ``save``)."""

    repaired: str | None = None
    dirty = False

    def __init__(self, engine: Engine, space_id: int, name: str, *, context: bool = True) -> None:
        self.engine, self.space_id, self.name, self.context = engine, int(space_id), name, context
        self.table = text_table(space_id)
        self.seq = 0
        self._stats: tuple[int, float, int, float] | None = None  # (n, total length, seq, when)

    # -- schema -------------------------------------------------------------------------------

    def create(self, c: Connection) -> bool:
        """The table and its GIN index, if missing; True when this call made them (then the
        caller fills it: :meth:`fill`)."""
        if table_exists(c, self.table):
            return False
        c.execute(text(f"CREATE TABLE IF NOT EXISTS {self.table} (slot_id BIGINT PRIMARY KEY REFERENCES slots(id) ON DELETE CASCADE, "
                       "terms TEXT[] NOT NULL, tfs INTEGER[] NOT NULL, len INTEGER NOT NULL)"))
        c.execute(text(f"CREATE INDEX IF NOT EXISTS {self.table}_terms ON {self.table} USING gin (terms)"))
        return True

    def fill(self, c: Connection) -> int:
        """Index every slot of the space (inside the caller's transaction); returns how many."""
        c.execute(text(f"TRUNCATE {self.table}"))
        after, total = 0, 0
        while True:
            rows = c.execute(select(SlotRow.id, SlotRow.text, SlotRow.metadata_).where(SlotRow.space_id == self.space_id, SlotRow.id > after)
                             .order_by(SlotRow.id).limit(_CHUNK)).all()
            if not rows:
                break
            self._upsert(c, rows)
            after, total = rows[-1][0], total + len(rows)
        c.execute(text(f"ANALYZE {self.table}"))
        self._stats = None
        return total

    def drop(self, c: Connection) -> None:
        c.execute(text(f"DROP TABLE IF EXISTS {self.table}"))

    # -- writes -------------------------------------------------------------------------------

    def write(self, c: Connection, ids: Iterable[int], docs: Sequence[tuple[str | None, dict[str, Any] | None]] | None = None) -> None:
        """Index these slots (new, or with a new text or metadata) inside the caller's transaction,
        replacing what was indexed for them: from ``docs``, their (text, metadata) in the order of
        ``ids``, when the caller has them, else as the slots stand in the transaction."""
        ids = [int(i) for i in ids]
        if docs is not None:
            self._upsert(c, [(i, body, meta) for i, (body, meta) in zip(ids, docs)])
            return
        for at in range(0, len(ids), _CHUNK):
            part = ids[at : at + _CHUNK]
            self._upsert(c, c.execute(select(SlotRow.id, SlotRow.text, SlotRow.metadata_).where(SlotRow.id.in_(part))).all())

    def _upsert(self, c: Connection, rows: Iterable[Any]) -> None:
        """A row for each slot with terms; none for one without (no text, or stop words only), so
        the GIN index and the planner's statistics hold only what a query can match."""
        values, bare = [], []
        for slot_id, body, meta in rows:
            tokens = tokenize(indexed_text(body, meta or {}) if self.context else body) if body is not None else []
            if not tokens:
                bare.append(int(slot_id))
                continue
            counts = Counter(tokens)
            values.append({"id": int(slot_id), "terms": list(counts), "tfs": list(counts.values()), "len": len(tokens)})
        if bare:
            c.execute(text(f"DELETE FROM {self.table} WHERE slot_id = ANY(CAST(:ids AS BIGINT[]))"), {"ids": bare})
        if values:
            c.execute(text(f"INSERT INTO {self.table} (slot_id, terms, tfs, len) VALUES (:id, :terms, :tfs, :len) "
                           "ON CONFLICT (slot_id) DO UPDATE SET terms = EXCLUDED.terms, tfs = EXCLUDED.tfs, len = EXCLUDED.len"), values)

    # -- reads --------------------------------------------------------------------------------

    def __len__(self) -> int:
        """The slots indexed: every slot of the space, as for the per-process index (those
        without terms count as documents of length 0)."""
        with self.engine.connect() as c:
            return int(c.scalar(select(func.count()).where(SlotRow.space_id == self.space_id)))

    def catch_up(self, db_seq: int | None = None) -> int:
        """Nothing to catch up (writes reach the table in their own transaction); records the
        space's change sequence, which says when the exact statistics are stale."""
        if db_seq is not None:
            self.seq = db_seq
        return 0

    def _corpus(self, c: Connection) -> tuple[int, float]:
        """(N, average length) of the space, as the module docstring says how fresh."""
        now = time.monotonic()
        if self._stats is not None:
            n, total, seq, when = self._stats
            if seq == self.seq or (n >= EXACT_STATS_BELOW and now - when < STATS_TTL_S):
                return n, total / max(n, 1)
        n, total = c.execute(text(f"SELECT (SELECT count(*) FROM slots WHERE space_id = :sid), (SELECT coalesce(sum(len), 0) FROM {self.table})"),
                             {"sid": self.space_id}).one()
        self._stats = (int(n), float(total), self.seq, now)
        return int(n), float(total) / max(int(n), 1)

    def search(self, query: str, k: int, subset: np.ndarray | None = None, *, conn: Connection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` slot ids by BM25 for ``query`` (only those in ``subset`` when given), best first,
        ties by the smaller id; on ``conn`` (a search's read connection) or one of its own."""
        qtf = Counter(tokenize(query))
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if not qtf or (subset is not None and len(subset) == 0):
            return empty
        terms = list(qtf)
        with nullcontext(conn) if conn is not None else self.engine.connect() as c:
            n, avgdl = self._corpus(c)
            if n == 0:
                return empty
            only = "" if subset is None else "WHERE m.slot_id = ANY(CAST(:subset AS BIGINT[]))"
            rows = c.execute(text(
                f"WITH q AS (SELECT * FROM unnest(CAST(:terms AS TEXT[]), CAST(:qtf AS INTEGER[])) AS q(term, qtf)), "
                f"m AS (SELECT d.slot_id, d.len, u.term, u.tf FROM {self.table} d, unnest(d.terms, d.tfs) AS u(term, tf) "
                f"      WHERE d.terms && CAST(:terms AS TEXT[]) AND u.term = ANY(CAST(:terms AS TEXT[]))), "
                "df AS (SELECT term, count(*) AS df FROM m GROUP BY term) "
                "SELECT m.slot_id, sum(q.qtf * ln(1.0 + (:n - df.df + 0.5) / (df.df + 0.5)) * m.tf * (:k1 + 1) "
                "                      / (m.tf + :k1 * (1 - :b + :b * m.len / :avgdl))) AS score "
                f"FROM m JOIN df USING (term) JOIN q USING (term) {only} "
                "GROUP BY m.slot_id ORDER BY score DESC, m.slot_id LIMIT :k"),
                {"terms": terms, "qtf": [qtf[t] for t in terms], "n": n, "avgdl": avgdl, "k1": K1, "b": B, "k": int(k),
                 **({"subset": [int(i) for i in subset]} if subset is not None else {})}).all()
        if not rows:
            return empty
        return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float32)

    def save(self) -> None:
        pass  # the table is the index

    def save_if_dirty(self) -> None:
        pass
