"""MindStore: the long-term memory an application embeds.

``MindStore()`` opens a SQLite store in the user data directory; ``MindStore(url)`` takes any
SQLAlchemy URL. Every write is committed to SQL before the call returns; the FAISS key index is a
derived cache kept in step with SQL (see :mod:`mindstore.spaces`).
"""

from __future__ import annotations

import functools
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from ._gc import gc_paused
from .config import Config, default_index_dir, default_url
from .db import EventRow, SlotRow, SpaceRow, insert_or_get, open_database, scope_where
from .db.bulk import Same, insert_columns, insert_with_ids
from .embed import Embedder, resolve_embedder
from .errors import (
    DatabaseError,
    EmbedderMismatchError,
    InvalidInputError,
    InvalidVectorError,
    NotFoundError,
    SpaceError,
    StoreClosedError,
)
from .filters import Predicate, compile_filter
from .index import KeyIndex, Prepared, one_thread
from .lexical import LexicalIndex, tokenize
from .messages import ROLES_KEPT, worth_keeping
from .retention import LEAST_USED, Retention, any_expired, lock_space, to_evict
from .retrieval import Reranker, check_mode, check_reranker, fused_scores, occurred_at_value, reranked, rrf_scores, time_filter
from .slots import Event, Hit, Page, Scope, Slot, Usage, Written, new_slots, occurred_at_of
from .spaces import IndexInfo, SpaceIndex, SpaceInfo, keys_from_bytes
from .timeref import TimeHint, check_now, parse_time, parse_when
from .validate import (
    MAX_BATCH,
    MAX_DIM,
    MAX_K,
    check_chars,
    check_k,
    check_metadata,
    check_min_score,
    check_scope,
    check_space_name,
    check_space_ref,
    check_text,
    check_vectors,
)
from .versions import Plan, Resolver, newest_first, plan_writes

__all__ = ["MindStore"]

# A search's candidate rows: Core rows (no ORM identity map) from a statement built once.
_HIT_ROWS = select(*(c.label("metadata_") if c.name == "metadata" else c for c in SlotRow.__table__.c)).where(
    SlotRow.__table__.c.id.in_(bindparam("ids", expanding=True))
)
_RESTATE_DEPTH = 4  # neighbours a write checks for the same statement
_GROUPS = {"session": "session_id", "user": "user_id", "agent": "agent_id"}
_GROUP_DEPTH = 10  # a grouped search looks at this many candidates per group asked for
# Whether a space holds any superseded slot: one probe of a partial index, built once.
_ANY_SUPERSEDED = select(SlotRow.__table__.c.id).where(
    SlotRow.__table__.c.space_id == bindparam("space"), SlotRow.__table__.c.superseded_by.is_not(None)).limit(1)
_MAX_WAIT_S = 10**6  # wait_trained(timeout=...): longer than any training, short of what threading takes
_PREPARE_IN_THREAD = 2048  # keys: smaller adds prepare them inline (a thread hand-off costs more)
_READS_PENDING_MAX = 4096  # slots with unwritten reads that trigger a flush however recent
_CHECKPOINT_BEHIND = 1000  # slots: a SQLite bulk add this big leaves its WAL checkpoint to a thread
# Core, not ORM: executemany of a compiled statement is what makes a flush cheap.
_ADD_READS = (
    sql_update(SlotRow.__table__)
    .where(SlotRow.__table__.c.id == bindparam("slot"))
    .values(reads=SlotRow.__table__.c.reads + bindparam("n"), last_access=bindparam("at"))
)


def _check_id(id: Any) -> int:
    """A slot id as an int, or InvalidInputError."""
    if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
        raise InvalidInputError(f"slot ids are integers, got {id!r:.40}")
    if not -(2**63) <= int(id) < 2**63:  # what a database integer holds; no slot has such an id
        raise NotFoundError(f"no slot with id {id}; see the ids with `list()` or `mindstore list`")
    return int(id)


def _check_options(url: Any, space: Any, embedder: Any, config: Any, reindex: Any, reranker: Any) -> None:
    """The arguments of ``MindStore(...)``, checked before anything is opened."""
    if url is not None and not isinstance(url, str):
        raise InvalidInputError(f"url must be a database URL string such as sqlite:///memory.db, not {type(url).__name__}")
    if url is not None and not url.strip():
        raise InvalidInputError("url is empty; give a database URL such as sqlite:///memory.db, or None for the default store")
    if url is not None and "\x00" in url:
        raise DatabaseError("the database URL contains a NUL character; give a path or URL without one")
    if url is not None:
        check_chars(url, "the database URL")
    check_space_name(space, "space")
    if isinstance(embedder, str) and not embedder.strip():
        raise InvalidInputError("embedder is empty; give a sentence-transformers model name such as 'all-MiniLM-L6-v2', or None for the bundled one")
    if isinstance(embedder, str):
        check_text(embedder, "embedder")
    # Not isinstance(embedder, Embedder): that reads ``dim``, which loads a sentence-transformers model.
    if embedder is not None and not isinstance(embedder, str) and not (isinstance(getattr(embedder, "name", None), str) and callable(getattr(embedder, "embed", None))):
        raise InvalidInputError(f"embedder must be a sentence-transformers model name or an object with name, dim and embed(texts), not {type(embedder).__name__}")
    if config is not None and not isinstance(config, Config):
        raise InvalidInputError(f"config must be a mindstore Config, not {type(config).__name__}")
    if not isinstance(reindex, bool):
        raise InvalidInputError(f"reindex must be True or False, not {reindex!r:.40}")
    check_reranker(reranker)


def _one_range_event(ids: list[int], texts: list[str | None], metas: list[dict[str, Any]]) -> bool:
    """Whether new slots can share one history event: more than one, contiguous ids (as a write
    holding SQLite's lock gets; concurrent PostgreSQL writers may interleave), no texts (an add
    event records each slot's text) and one metadata dict for all. Ids are distinct, so a span
    of exactly ``len(ids)`` is contiguous."""
    if len(ids) < 2 or max(ids) - min(ids) != len(ids) - 1:
        return False
    m0 = metas[0]
    return all(t is None for t in texts) and all(m is m0 or m == m0 for m in metas)


def _autocheckpoint_off(s: Session) -> None:
    """Turn SQLite's automatic checkpoint off for ``s``'s connection until it goes back to the pool
    (db/engine.py restores it there); see :meth:`MindStore._checkpoint_behind`."""
    conn = s.connection()
    if "autocheckpoint" not in conn.info:
        conn.info["autocheckpoint"] = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")


class _Worker:
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything mindstore stores is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def _recency(row: Any) -> tuple[str, int]:
    """How recent a slot's fact is: when it happened (``occurred_at``; undated slots count as
    older), then the order it was written in (ids only grow)."""
    when = (row.metadata_ or {}).get("occurred_at")
    return (when if isinstance(when, str) else ""), int(row.id)


def _in_window(row: Any, hint: TimeHint) -> float:
    """1 when a slot's ``occurred_at`` lies in the hint's window, 0.5 when it follows the window
    by no more than the window's length (at least a week), else 0."""
    t = occurred_at_of(row.metadata_ or {})
    if t is None:
        return 0.0
    if (hint.since is None or t >= hint.since) and (hint.until is None or t <= hint.until):
        return 1.0
    if hint.until is not None and t > hint.until:
        span = hint.until - hint.since if hint.since is not None else timedelta(0)
        return 0.5 if t - hint.until <= max(span, timedelta(days=7)) else 0.0
    return 0.0


def _one_per_group(order: Sequence[int], rows: Mapping[int, Any], group_by: str) -> list[int]:
    """The best-ranked slot of each group (``group_by``: a scope field), in rank order; slots
    with no value for it stand alone."""
    seen: set[Any] = set()
    out = []
    for i in order:
        g = getattr(rows[i], group_by)
        key = ("slot", i) if g is None else g
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


class MindStore:
    """Long-term memory: add, search, get, list, update, delete, history, export and import.

    Memories are scoped by ``user_id``, ``agent_id`` and ``session_id``; a search in a scope never
    returns another scope's slots. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        space: str = "chat",
        embedder: Embedder | str | None = None,
        config: Config | None = None,
        reindex: bool = False,
        reranker: Reranker | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        if resolver is not None and not callable(resolver):
            raise InvalidInputError("resolver must be a function (old_text, new_text) -> 'reinforce', 'supersede' or 'add'")
        _check_options(url, space, embedder, config, reindex, reranker)
        self.url = url or default_url()
        self.config = config or Config()
        self._retention = Retention(self.config.capacity, self.config.capacity_per_scope, self.config.ttl)
        self._expiry = Retention(ttl=self.config.ttl)  # what a search applies before it runs
        self.space = space
        self._embedder_arg = embedder
        self._embedder: Embedder | None = None if embedder is None or isinstance(embedder, str) else embedder
        self._lock = threading.RLock()
        self._closed = False
        self._reads: dict[int, tuple[int, datetime]] = {}  # slot id -> (reads not yet in SQL, last)
        self._reads_since: float | None = None  # monotonic time of the oldest unwritten read
        self._prep_worker = _Worker("mindstore-prepare", one_thread)  # prepares a bulk add's keys (see _write_new)
        self._usage_worker = _Worker("mindstore-usage")  # writes the reads searches counted
        self._flushing: Future[dict[int, tuple[int, datetime]] | None] | None = None  # that write, under way
        self._ckpt_worker = _Worker("mindstore-checkpoint")  # checkpoints the WAL after bulk adds (SQLite)
        self._ckpt: Future[bool] | None = None  # the last such checkpoint; True if it copied every frame
        self._engine, self._sessions = open_database(self.url)
        index_dir = self.config.index_dir or default_index_dir(self.url)
        self._index_dir = Path(index_dir) if index_dir is not None else None
        self._spaces: dict[str, SpaceIndex] = {}
        self._lexical: dict[str, LexicalIndex] = {}  # text spaces' BM25 indexes, opened by the first hybrid search
        self.reranker = reranker  # a CrossEncoder that reorders text search results (None: off)
        self.resolver = resolver  # decides for near-duplicates that differ (None: they supersede)
        try:
            row = self._space_row(space)
            if row is not None and not reindex and row.key_source == self.embedder_name and self._impostor(row.dim):
                raise EmbedderMismatchError(
                    f"space {space!r} holds {row.dim}-dimensional keys of {row.key_source}, but the embedder given under that "
                    f"name makes {self._embedder.dim}-dimensional ones. Give the embedder that built the store, or give this one "
                    f"another name and pass reindex=True to re-embed the slots with it."
                )
            if row is not None and reindex and row.key_source == self.embedder_name:
                from .reindex import has_mixed_keys

                with self._sessions() as s:
                    if has_mixed_keys(s, row.id, row.dim):  # a re-embedding by an older mindstore, cut short
                        self.reindex()
            elif row is not None:
                if row.key_source != self.embedder_name:
                    if not reindex:
                        # A string embedder is a sentence-transformers model: only such a key source
                        # can be reopened by naming it.
                        model = row.key_source.removeprefix("sentence-transformers/")
                        how = (f"Open it with embedder={model!r}" if model != row.key_source else
                               f"Open it with the embedder object named {row.key_source!r} (not a sentence-transformers "
                               f"model), or with space=... naming another default space if {space!r} holds keys you add yourself")
                        raise EmbedderMismatchError(
                            f"space {space!r} was built with {row.key_source}, but this store was opened "
                            f"with {self.embedder_name}. {how}, or pass "
                            f"reindex=True (CLI: mindstore reindex --model ...) to re-embed its slots."
                        )
                    self.reindex()
            # The key index is loaded, checked and repaired on first use, not here: opening a
            # store to list or edit rows never pays for reading millions of keys.
        except BaseException:
            self._engine.dispose()
            raise

    def _impostor(self, dim: int) -> bool:
        """Whether the embedder object given makes keys of another dimension than ``dim``. A
        sentence-transformers embedder is its model, whose name the store records: asking its
        dimension would load the model, which opening a store never does."""
        from .embed import SentenceTransformerEmbedder

        e = self._embedder
        return e is not None and not isinstance(e, SentenceTransformerEmbedder) and e.dim != dim

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> MindStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MindStore({self._engine.url.render_as_string(hide_password=True)!r}, space={self.space!r})"

    def close(self) -> None:
        """Save the key indexes and release the database. Everything acknowledged is durable."""
        with self._lock:
            if self._closed:
                return
            for sp in self._spaces.values():
                sp.index.wait_trained()  # a training under way: its lists are what to save
                sp.save_if_dirty()
                sp.index.join_save()  # a save from a thread, if the index has not changed since
            for lex in self._lexical.values():
                lex.save_if_dirty()
            self._flush_reads()
            for worker in (self._prep_worker, self._usage_worker, self._ckpt_worker):
                worker.shutdown()
            self._engine.dispose()
            self._closed = True

    def _check_open(self, *, flush: bool = True) -> None:
        """Raise if closed. Every call but a search first writes the reads searches have counted,
        so whatever this store does next (a get, a write, an eviction) sees them."""
        if self._closed:
            raise StoreClosedError("this MindStore is closed; open a new one")
        if flush and (self._reads or self._flushing is not None):
            self._flush_reads()

    def _count_reads(self, ids: Iterable[int]) -> tuple[dict[int, int], datetime]:
        """Count one read of each slot (a search hit): in memory now, in SQL by :meth:`_flush_reads`
        within ``Config.usage_flush_s``. Returns, per slot, the reads SQL does not hold yet (this
        one included) and the access time, for the hits to show."""
        now = _now()
        ids = list(ids)
        if not ids:
            return {}, now
        with self._lock:
            unwritten = {}
            for i in ids:
                n = self._reads.get(i, (0, now))[0] + 1
                self._reads[i] = (n, now)
                unwritten[i] = n
            if self._reads_since is None:
                self._reads_since = time.monotonic()
            if time.monotonic() - self._reads_since >= self.config.usage_flush_s or len(self._reads) >= _READS_PENDING_MAX:
                # From a search, the write runs in a thread: on SQLite its commit writes a page per
                # slot read, a stall that would fall on one search in hundreds (measured:
                # docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). Usage is advisory, so a search need not wait for it; a write still under
                # way is left to finish, and an interval of 0 writes before the search returns.
                if self.config.usage_flush_s > 0 and not isinstance(self._engine.pool, StaticPool):
                    if self._flushing is None or self._flushing.done():
                        self._flush_reads(background=True)
                else:
                    self._flush_reads()
        return unwritten, now

    def _flush_reads(self, *, background: bool = False) -> None:
        """Write the counted reads: one executemany of ``reads = reads + n, last_access = t``
        (``background``: from the store's usage thread). A write under way finishes first, so
        when this returns (not in the background) SQL holds every read counted before the call.
        Usage is advisory: on a busy database the counts stay pending for the next flush, and a
        process killed before a flush loses at most ``usage_flush_s`` of read counts (never a
        write)."""
        with self._lock:
            self._wait_flush()
            if not self._reads:
                return
            pending, self._reads, self._reads_since = self._reads, {}, None
            if background:
                self._flushing = self._usage_worker.submit(self._write_reads, pending)
            else:
                self._keep(self._write_reads(pending))

    def _write_reads(self, pending: dict[int, tuple[int, datetime]]) -> dict[int, tuple[int, datetime]] | None:
        """Add ``pending`` to the slots' usage in SQL; returns them if the database refused."""
        params = [{"slot": i, "n": n, "at": at} for i, (n, at) in sorted(pending.items())]
        try:
            with self._engine.begin() as c:
                c.execute(_ADD_READS, params)
        except OperationalError:
            return pending
        return None

    def _wait_flush(self) -> None:
        """Let a write of reads from the usage thread finish, keeping its counts if it failed."""
        if self._flushing is not None:
            future, self._flushing = self._flushing, None
            if self._usage_worker.here:  # a forked child's copy belongs to the parent's thread
                self._keep(future.result())

    def _keep(self, failed: dict[int, tuple[int, datetime]] | None) -> None:
        """Put reads that could not be written back, merged with any counted meanwhile."""
        if not failed:
            return
        for i, (n, at) in failed.items():
            m, later = self._reads.get(i, (0, at))
            self._reads[i] = (n + m, max(at, later))
        self._reads_since = time.monotonic()

    # -- spaces and the embedder ---------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The text embedder (loaded on first use)."""
        if self._embedder is None:
            self._embedder = resolve_embedder(self._embedder_arg)
        return self._embedder

    @property
    def embedder_name(self) -> str:
        if self._embedder is not None:
            return self._embedder.name
        from .embed import DEFAULT_MODEL, SentenceTransformerEmbedder

        arg = self._embedder_arg
        return SentenceTransformerEmbedder(arg if isinstance(arg, str) else DEFAULT_MODEL).name

    def _space_row(self, name: str) -> SpaceRow | None:
        with self._sessions() as s:
            return s.scalar(select(SpaceRow).where(SpaceRow.name == name))

    def _space_index(self, name: str, *, create_dim: int | None = None, key_source: str | None = None) -> SpaceIndex:
        check_space_ref(name)
        with self._lock:  # two threads must not build the same index
            return self._space_index_locked(name, create_dim=create_dim, key_source=key_source)

    def _space_index_locked(self, name: str, *, create_dim: int | None, key_source: str | None) -> SpaceIndex:
        sp = self._spaces.get(name)
        if sp is not None:
            return sp
        row = self._space_row(name)
        if row is None:
            if create_dim is None:
                raise SpaceError(f"no space named {name!r} in this store; spaces: {[s.name for s in self.spaces()]}")
            check_space_name(name)
            key_source = key_source or self.embedder_name
            with self._sessions() as s, s.begin():  # another process may create it at the same moment
                row = insert_or_get(s, SpaceRow, {"name": name, "dim": create_dim, "key_source": key_source, "created_at": _now()}, "name")
            if row.dim != create_dim or row.key_source != key_source:
                raise SpaceError(
                    f"space {name!r} was just created by another process with dim {row.dim} and keys from "
                    f"{row.key_source}; open it with that embedder, or pick another space name"
                )
        path = self._index_dir / f"{name}.faiss" if self._index_dir is not None else None
        sp = SpaceIndex(row, self._sessions, path, self.config.device, self.config.approximate_from, self.config.train_in_background)
        self._spaces[name] = sp
        return sp

    def _text_space(self, *, create: bool) -> SpaceIndex | None:
        if self.space in self._spaces:
            return self._spaces[self.space]
        if self._space_row(self.space) is not None:
            return self._space_index(self.space)
        if not create:
            return None
        # Only creating the space needs the model loaded (for its dimension).
        return self._space_index(self.space, create_dim=self.embedder.dim, key_source=self.embedder_name)

    def _space_id(self, space: str | None) -> tuple[int, str] | None:
        """(id, name) of the named space or the text space, without loading its key index: for
        reads that only touch SQL (list, count, scopes). None when the text space does not exist."""
        name = self.space if space is None else check_space_ref(space)
        loaded = self._spaces.get(name)
        if loaded is not None:
            return loaded.space_id, name
        row = self._space_row(name)
        if row is None:
            if name == self.space:
                return None
            raise SpaceError(f"no space named {name!r} in this store; spaces: {[s.name for s in self.spaces()]}")
        return row.id, name

    def _resolve_space(self, space: str | None) -> SpaceIndex | None:
        """The named space, or the text space; None when the text space has no slots yet."""
        if space is None or space == self.space:
            return self._text_space(create=False)
        return self._space_index(space)

    def create_space(self, name: str, *, dim: int, key_source: str) -> SpaceInfo:
        """Create a space for vectors of another kind (e.g. a neural controller's keys)."""
        self._check_open()
        check_space_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
            raise InvalidInputError(f"dim must be an integer from 1 to {MAX_DIM:,}, got {dim!r:.40}")
        check_text(key_source, "key_source")
        if len(key_source) > 500:
            raise InvalidInputError(f"key_source has {len(key_source)} characters, more than 500; name the model or checkpoint briefly")
        with self._lock:
            row = self._space_row(name)
            if row is not None and (row.dim != dim or row.key_source != key_source):
                raise SpaceError(
                    f"space {name!r} exists with dim {row.dim} and keys from {row.key_source}; "
                    "pick another name or use those settings"
                )
            sp = self._space_index(name, create_dim=dim, key_source=key_source)
        return SpaceInfo(sp.name, sp.dim, sp.key_source, len(sp.index))

    def spaces(self) -> list[SpaceInfo]:
        """Every space in the store with its slot count."""
        self._check_open()
        with self._sessions() as s:
            counts = dict(s.execute(select(SlotRow.space_id, func.count()).group_by(SlotRow.space_id)).all())
            rows = s.scalars(select(SpaceRow).order_by(SpaceRow.id)).all()
            return [SpaceInfo(r.name, r.dim, r.key_source, counts.get(r.id, 0)) for r in rows]

    def index_info(self, space: str | None = None, *, recall_sample: int = 0) -> IndexInfo:
        """The key index of a space (default: the text space), brought up to date: kind, device,
        size, change sequence, file. With ``recall_sample`` > 0, also the recall@10 of its search
        against an exhaustive scan, measured with that many of its keys as queries."""
        self._check_open()
        if isinstance(recall_sample, bool) or not isinstance(recall_sample, int) or not 0 <= recall_sample <= MAX_K:
            raise InvalidInputError(f"recall_sample must be an integer from 0 to {MAX_K} (queries), got {recall_sample!r:.40}")
        with self._lock:
            sp = self._resolve_space(space)
            if sp is None:
                raise SpaceError(f"space {self.space!r} has no slots yet, so no key index; add a memory first")
            sp.catch_up()
            return sp.info(recall_sample=recall_sample)

    def wait_trained(self, space: str | None = None, timeout: float | None = None) -> bool:
        """Wait until a background training of a space's approximate key index (default: the
        text space; see ``Config.train_in_background``) has finished and its lists serve
        searches. True when none is under way; False if ``timeout`` seconds passed first."""
        self._check_open()
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= _MAX_WAIT_S):
            raise InvalidInputError(f"timeout must be a number of seconds from 0 to {_MAX_WAIT_S:,}, or None to wait until the training ends; got {timeout!r:.40}")
        with self._lock:
            sp = self._resolve_space(space)
        if sp is None:
            return True
        sp.index.join_training(timeout)  # without the lock: the store stays usable meanwhile
        with self._lock:
            return sp.index.wait_trained(0)

    # -- seams for diagnostics, tests and benchmarks -------------------------------------------
    # Read-only views of what the store keeps in step with SQL. The store owns every change to
    # them: a caller that adds, removes, resets, saves or retrains through one makes it disagree
    # with SQL (searches miss or invent slots until the next open rebuilds it).

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine the store reads and writes through, for diagnostics and tests
        (event listeners, PRAGMAs, read-only SQL). Writing slot, space or event rows through it
        bypasses the change log and the key indexes; :meth:`close` disposes of it."""
        return self._engine

    def key_index(self, space: str | None = None) -> KeyIndex:
        """The key index of a space (default: the text space), loaded and checked against SQL on
        first use: ``len``, ``ids()``, ``search()``, ``approximate``, ``nlist``, ``nprobe``,
        ``seq``, ``saving``. Read it only: a change made through it (add, remove, reset, save,
        retrain) is unknown to SQL. Its search is unscoped (ids of every user): applications
        search the store. Unlike :meth:`index_info` it does not catch up with other processes'
        writes, and a reindex or rebuild replaces the object: ask again rather than keep it. A
        :class:`SpaceError` if the space does not exist or the text space has no slots yet."""
        self._check_open()
        with self._lock:
            sp = self._resolve_space(space)
        if sp is None:
            raise SpaceError(f"space {self.space!r} has no slots yet, so no key index; add a memory first")
        return sp.index

    def lexical_index(self, space: str | None = None) -> LexicalIndex:
        """The BM25 index of a text space (default: the text space), opened as a hybrid or lexical
        search opens it (loaded, checked, caught up from the change log on open): ``len``,
        ``repaired``, ``seq``, ``search()``. Read it only, as :meth:`key_index`'s. A
        :class:`SpaceError` as for :meth:`key_index`."""
        self._check_open()
        with self._lock:
            sp = self._resolve_space(space)
            if sp is None:
                raise SpaceError(f"space {self.space!r} has no slots yet, so no lexical index; add a memory first")
            return self._lexical_index(sp)

    def usage_histogram(self, space: str | None = None) -> dict[str, int]:
        """How many slots of a space were accessed (reads + writes) 1, 2-3, 4-9, 10-99 and 100+ times."""
        self._check_open()
        ref = self._space_id(space)
        bins = {"1": (0, 1), "2-3": (2, 3), "4-9": (4, 9), "10-99": (10, 99), "100+": (100, None)}
        if ref is None:
            return dict.fromkeys(bins, 0)
        uses = SlotRow.reads + SlotRow.writes
        with self._sessions() as s:
            return {
                name: int(s.scalar(select(func.count()).where(SlotRow.space_id == ref[0], uses >= lo, *([uses <= hi] if hi else []))) or 0)
                for name, (lo, hi) in bins.items()
            }

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        # NFKC first: full-width letters and other compatibility forms are unknown words to the
        # model (a full-width restatement had cosine 0.03 with its plain twin).
        texts = [t if t.isascii() else unicodedata.normalize("NFKC", t) for t in texts]
        vectors = self.embedder.embed(texts, batch_size=self.config.embed_batch_size)
        return check_vectors(vectors, vectors.shape[1] if vectors.ndim == 2 else -1, "embedding")

    # -- rows to values ------------------------------------------------------------------------

    def _slot(self, row: SlotRow, space: str, unwritten_reads: int = 0, accessed: datetime | None = None) -> Slot:
        return Slot(
            id=row.id,
            space=space,
            scope=Scope(row.user_id, row.agent_id, row.session_id),
            text=row.text,
            metadata=dict(row.metadata_ or {}),
            label=row.label,
            usage=Usage(row.reads + unwritten_reads, row.writes, accessed or _aware(row.last_access)),
            created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
            superseded_by=row.superseded_by,
        )

    def _space_names(self, s: Session) -> dict[int, str]:
        return dict(s.execute(select(SpaceRow.id, SpaceRow.name)).all())

    # -- writes ------------------------------------------------------------------------------

    def add(
        self,
        text: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        dedup: bool = True,
        occurred_at: datetime | str | None = None,
    ) -> Written:
        """Remember ``text``; returns the slot and what happened (``Written.change``).

        Against the scope's near-duplicates (``Config.dedup_threshold``): the same statement
        reinforces the memory, a changed one supersedes it (a new slot; searches skip the old one,
        history keeps it). ``dedup=False`` always adds. See :mod:`mindstore.versions`."""
        return self.add_many([text], user_id=user_id, agent_id=agent_id, session_id=session_id, metadata=metadata, dedup=dedup, occurred_at=occurred_at)[0]

    def add_many(
        self,
        texts: Sequence[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        dedup: bool = True,
        occurred_at: datetime | str | None = None,
    ) -> list[Written]:
        """Remember many texts in one scope, embedded in batches. ``metadata`` is one dict for all
        or a list with one per text. ``occurred_at`` (when what they say happened, e.g. the date of
        the conversation) is kept as metadata ``occurred_at`` for ``search(since=, until=)``.
        Returns one :class:`Written` per text, in order, as if they were added one by one."""
        self._check_open()
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError("texts must be a list of strings; use add() for a single text")
        texts = [check_text(t, f"text {i + 1} of {len(texts)}") for i, t in enumerate(texts)]
        if not isinstance(dedup, bool):
            raise InvalidInputError(f"dedup must be True or False, not {dedup!r:.40}")
        scope = check_scope(user_id, agent_id, session_id)
        metas = self._metadata_list(metadata, len(texts))
        if occurred_at is not None:
            when = occurred_at_value(occurred_at)
            dated = {id(m): {**m, "occurred_at": when} for m in metas}  # shared dicts stay shared
            metas = [dated[id(m)] for m in metas]
        if not texts:
            return []
        keys = self._embed(texts)
        with self._lock:
            self._check_open()
            sp = self._text_space(create=True)
            if keys.shape[1] != sp.dim:
                raise EmbedderMismatchError(f"the embedder gives {keys.shape[1]} dims; space {sp.name!r} holds {sp.dim}")
            with gc_paused(len(keys)):  # a big batch builds tens of thousands of objects, no cycles: see mindstore._gc
                return self._write_new(sp, scope, keys, texts=texts, metas=metas, dedup=dedup)

    def add_vectors(
        self,
        keys: Any,
        *,
        space: str,
        labels: Sequence[str | None] | None = None,
        texts: Sequence[str | None] | None = None,
        values: Any = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[Slot]:
        """Store slots keyed by given vectors in a vector space (see :meth:`create_space`)."""
        self._check_open()
        with self._lock:
            sp = self._space_index(space)
            keys = check_vectors(keys, sp.dim, "keys")
            n = len(keys)
            scope = check_scope(user_id, agent_id, session_id)
            metas = self._metadata_list(metadata, n)
            labels = self._optional_strings(labels, n, "labels")
            texts = self._optional_strings(texts, n, "texts")
            vals = None
            if values is not None:
                try:
                    with np.errstate(over="ignore"):  # past float32's range is inf, refused below
                        vals = np.ascontiguousarray(values, dtype=np.float32).reshape(n, -1)
                except (TypeError, ValueError) as exc:
                    raise InvalidVectorError(f"values must be numbers, one row per key ({n} keys): {exc}") from None
                if not np.isfinite(vals).all():
                    raise InvalidVectorError("values hold NaN or infinite numbers")
            with gc_paused(n):  # as in add
                return self._write_new(sp, scope, keys, texts=texts, metas=metas, labels=labels, values=vals, dedup=False)

    @staticmethod
    def _optional_strings(items: Sequence[str | None] | None, n: int, what: str) -> list[str | None]:
        if items is None:
            return [None] * n
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or len(items) != n:
            raise InvalidInputError(f"{what} must be a list with one entry per key ({n})")
        longest = 500 if what == "labels" else None  # the column's size (db/models.py)
        for i, t in enumerate(items):
            if t is not None:
                check_text(t, f"{what}[{i}]")
                if longest is not None and len(t) > longest:
                    raise InvalidInputError(f"{what}[{i}] has {len(t):,} characters, more than {longest}; a label names a class, keep it short")
        return list(items)

    @staticmethod
    def _metadata_list(metadata: Any, n: int) -> list[dict[str, Any]]:
        if metadata is None or isinstance(metadata, Mapping):
            # One dict for every item, shared (read-only here: each Slot gets its own copy), so
            # that a bulk insert serialises it to JSON once, not once per row.
            return [check_metadata(metadata)] * n
        if isinstance(metadata, (str, bytes)) or not isinstance(metadata, Sequence) or len(metadata) != n:
            raise InvalidInputError(f"metadata must be one dict, or a list of {n} dicts (one per item)")
        return [check_metadata(m) for m in metadata]

    def _write_new(
        self,
        sp: SpaceIndex,
        scope: Scope,
        keys: np.ndarray,
        *,
        texts: Sequence[str | None],
        metas: list[dict[str, Any]],
        labels: Sequence[str | None] | None = None,
        values: np.ndarray | None = None,
        dedup: bool,
    ) -> list[Slot]:
        n = len(keys)
        plans = self._plan(sp, scope, keys, texts) if dedup else [Plan("add")] * n
        versioned = dedup and any(p.kind != "add" for p in plans)
        # target[i]: ("old", slot id) to reinforce an existing slot, ("new", j) for the j-th text's
        # new slot, or None to insert row i (a new fact or a new version).
        target: list[tuple[str, int] | None] = [
            None if p.kind != "reinforce" else (("old", p.old) if p.old is not None else ("new", p.prior)) for p in plans]
        fresh = [i for i in range(n) if target[i] is None]
        now = _now()
        # Column by column: most columns hold one value for the whole batch (Same: bound once).
        fresh_keys = keys[fresh] if len(fresh) != n else keys
        columns = {
            "space_id": Same(sp.space_id),
            "user_id": Same(scope.user_id),
            "agent_id": Same(scope.agent_id),
            "session_id": Same(scope.session_id),
            "text": [texts[i] for i in fresh],
            "label": Same(None) if labels is None else [labels[i] for i in fresh],
            "key": [k.tobytes() for k in fresh_keys],
            "value": Same(None) if values is None else [values[i].tobytes() for i in fresh],
            "metadata_": [metas[i] for i in fresh],
            "reads": Same(0),
            "writes": Same(1),
            "last_access": Same(now),
            "created_at": Same(now),
            "updated_at": Same(now),
        }
        # The index's part of the add that changes nothing (normalising; on an IVF, choosing each
        # key's list) runs in a thread while the rows go to SQL; the add itself waits for the
        # commit, so the index never holds a key that SQL does not.
        prep = self._prepare(sp, fresh_keys)
        checkpoint_behind = self._checkpoint_behind(len(fresh))
        try:
            with self._sessions() as s, s.begin():
                if self._engine.dialect.name == "sqlite":  # the write lock first: ids are allocated up front
                    lock_space(s, sp.space_id)
                if checkpoint_behind:
                    _autocheckpoint_off(s)
                fresh_ids = insert_columns(s, SlotRow, len(fresh), columns)
                new_ids: dict[int, int] = dict(zip(fresh, fresh_ids))
                if _one_range_event(fresh_ids, columns["text"], columns["metadata_"]):
                    # Contiguous new slots, no texts, one metadata: their history is one event.
                    event_ids = insert_with_ids(s, EventRow, [{
                        "space_id": sp.space_id, "slot_id": min(fresh_ids), "slot_last": max(fresh_ids), "kind": "add", "old_text": None,
                        "new_text": None, "old_metadata": None, "new_metadata": columns["metadata_"][0], "at": now}])
                else:
                    event_ids = insert_columns(s, EventRow, len(fresh), {
                        "space_id": Same(sp.space_id), "slot_id": fresh_ids, "kind": Same("add"), "old_text": Same(None),
                        "new_text": columns["text"], "old_metadata": Same(None), "new_metadata": columns["metadata_"], "at": Same(now)})
                events: list[dict[str, Any]] = []
                reinforced: dict[int, int] = {}
                superseded: dict[int, int] = {}
                if versioned:
                    events, reinforced, superseded = self._versions_in(s, sp, plans, target, new_ids, texts, metas, now)
                event_ids += insert_with_ids(s, EventRow, events)
                all_ids = fresh_ids if len(fresh) == n else [
                    new_ids[i] if target[i] is None else (target[i][1] if target[i][0] == "old" else new_ids[target[i][1]]) for i in range(n)]
                # Only reinforced slots changed in SQL after their insert; new ones are returned from
                # what was inserted, not read back (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
                got: dict[int, Slot] = {r.id: self._slot(r, sp.name) for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(list(reinforced)))).all()} if reinforced else {}
        except SQLAlchemyError as exc:
            if prep is not None:
                prep.result()
            raise DatabaseError(f"write failed, nothing was stored: {exc}") from exc
        if checkpoint_behind:
            self._checkpoint_later()
        made = [i for i in fresh if new_ids[i] not in got]  # a reinforced new slot was read back
        got.update(zip((new_ids[i] for i in made), new_slots(
            [new_ids[i] for i in made], sp.name, scope, [texts[i] for i in made], [metas[i] for i in made],
            [None] * len(made) if labels is None else [labels[i] for i in made], now, Written)))
        # Committed: now the derived index.
        if new_ids:
            ids = np.array(list(new_ids.values()), dtype=np.int64)
            if prep is not None:
                sp.index.add(ids, prepared=prep.result())
            else:
                sp.index.add(ids, fresh_keys)
        sp.local_events.update(int(e) for e in event_ids)
        self._after_change(sp, len(fresh) + len(events))
        self._evict(sp, [scope])
        if not versioned:
            return [got[i] for i in all_ids]
        out = []
        for i, slot_id in enumerate(all_ids):
            slot, p = got[slot_id], plans[i]
            if not isinstance(slot, Written):
                slot = Written(**{f.name: getattr(slot, f.name) for f in fields(Slot)})
            if slot_id in superseded:
                slot = replace(slot, superseded_by=superseded[slot_id])
            if p.kind == "reinforce":
                slot = replace(slot, change="reinforced")
            elif p.kind == "supersede":
                slot = replace(slot, change="superseded", supersedes=p.old if p.old is not None else new_ids[p.prior])
            out.append(slot)
        return out

    def _plan(self, sp: SpaceIndex, scope: Scope, keys: np.ndarray, texts: Sequence[str | None]) -> list[Plan]:
        """Each text's plan against the scope's current memories (see :mod:`mindstore.versions`)."""
        unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
        sp.catch_up()
        with self._sessions() as s:
            scope_ids = np.array(s.scalars(select(SlotRow.id).where(
                *scope_where(sp.space_id, scope, exact=True), SlotRow.superseded_by.is_(None))).all(), dtype=np.int64)
            nearest: list[list[tuple[int, float]]] = [[] for _ in range(len(keys))]
            existing: dict[int, str] = {}
            if len(scope_ids):
                # A few neighbours at any similarity: a restatement reinforces whatever its cosine
                # (casing alone moves it well below 1, observed: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them);
                # a change needs the threshold.
                scores, ids = sp.index.search(unit, min(_RESTATE_DEPTH, len(scope_ids)), subset=scope_ids)
                nearest = [[(int(i), float(c)) for i, c in zip(ids[r], scores[r]) if i >= 0] for r in range(len(keys))]
                wanted = sorted({i for row in nearest for i, _ in row})
                if wanted:
                    existing = dict(s.execute(select(SlotRow.id, SlotRow.text).where(SlotRow.id.in_(wanted))).all())
        return plan_writes([t or "" for t in texts], unit, nearest, existing, self.config.dedup_threshold, self.resolver)

    def _versions_in(
        self, s: Session, sp: SpaceIndex, plans: list[Plan], target: list[tuple[str, int] | None], new_ids: dict[int, int],
        texts: Sequence[str | None], metas: list[dict[str, Any]], now: datetime,
    ) -> tuple[list[dict[str, Any]], dict[int, int], dict[int, int]]:
        """Inside the add's transaction: reinforce the restated slots (write count, merged
        metadata) and mark the superseded ones. Returns their events, the reinforced slots (id ->
        times) and the superseded ones (id -> the id of their newer version)."""
        events: list[dict[str, Any]] = []
        reinforced: dict[int, int] = {}
        merged: dict[int, dict[str, Any]] = {}
        superseded: dict[int, int] = {}
        for i, t in enumerate(target):
            if t is not None:
                slot_id = t[1] if t[0] == "old" else new_ids[t[1]]
                reinforced[slot_id] = reinforced.get(slot_id, 0) + 1
                merged.setdefault(slot_id, {}).update(metas[i])
                events.append({"space_id": sp.space_id, "slot_id": slot_id, "kind": "reinforce", "old_text": None,
                               "new_text": texts[i], "old_metadata": None, "new_metadata": metas[i], "at": now})
            elif plans[i].kind == "supersede":
                old = plans[i].old if plans[i].old is not None else new_ids[plans[i].prior]
                superseded[old] = new_ids[i]
                events.append({"space_id": sp.space_id, "slot_id": old, "kind": "supersede", "old_text": None,
                               "new_text": texts[i], "old_metadata": None, "new_metadata": {"superseded_by": new_ids[i]}, "at": now})
        if reinforced:
            before = dict(s.execute(select(SlotRow.id, SlotRow.metadata_).where(SlotRow.id.in_(list(reinforced)))).all())
            for slot_id, times in reinforced.items():
                values: dict[str, Any] = {"writes": SlotRow.writes + times, "last_access": now}
                meta = {**(before.get(slot_id) or {}), **merged[slot_id]}
                if meta != (before.get(slot_id) or {}):  # a restatement's new metadata is kept, newest wins per key
                    values.update(metadata_=meta, updated_at=now)
                s.execute(sql_update(SlotRow).where(SlotRow.id == slot_id).values(**values))
        for old, new in superseded.items():
            s.execute(sql_update(SlotRow).where(SlotRow.id == old).values(superseded_by=new))
        return events, reinforced, superseded

    def _checkpoint_behind(self, n: int) -> bool:
        """Whether a bulk add of ``n`` new slots leaves its WAL checkpoint to the store's checkpoint
        thread (its transaction then calls :func:`_autocheckpoint_off`).

        SQLite copies the WAL back into the database file (a checkpoint) in the commit that takes
        the WAL past 1,000 pages: a bulk add of 10,000 keys writes ~20 MB, so nearly every such
        commit ran one, inside the add, and a fill with them was slower than one without (measured:
        docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). SQLite's documentation
        suggests running them from another thread instead; after a bulk commit the checkpoint
        thread does so while the add updates its key index.

        The WAL stays bounded: a bulk add first waits for a checkpoint still copying (it started
        at the previous bulk commit, and has had that add's key-index update to run in). Having
        copied every frame, it leaves the WAL to restart from its beginning at the add's first
        write, so the WAL holds one batch. One that could not copy them all (a reader held old
        frames) makes the add commit with the usual checkpoint. An add does not commit while a
        checkpoint is still copying: the writer would not wait, but the WAL would grow to many
        batches for no fill time gained (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
        if n < _CHECKPOINT_BEHIND or self._engine.dialect.name != "sqlite" or isinstance(self._engine.pool, StaticPool):
            return False
        last, self._ckpt = self._ckpt, None
        if last is None or not self._ckpt_worker.here:  # none yet, or the parent's, before a fork
            return True
        return last.exception() is None and bool(last.result())  # waits for one still copying

    def _checkpoint_later(self) -> None:
        """Checkpoint the WAL from the store's checkpoint thread (see :meth:`_checkpoint_behind`)."""
        with self._lock:
            self._ckpt = self._ckpt_worker.submit(self._checkpoint)

    def _checkpoint(self) -> bool:
        """A passive checkpoint (it never waits for readers or writers): True if it copied every
        frame in the WAL into the database file."""
        try:
            with self._engine.connect() as c:
                busy, frames, copied = c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        except SQLAlchemyError:
            return False  # the next bulk add commits with the usual checkpoint
        return busy == 0 and frames == copied

    def _prepare(self, sp: SpaceIndex, keys: np.ndarray) -> Future[Prepared] | None:
        """``sp.index.prepare(keys)`` started in the store's worker thread, for batches big enough
        to gain from it (None: the add prepares them itself)."""
        if len(keys) < _PREPARE_IN_THREAD:
            return None
        return self._prep_worker.submit(sp.index.prepare, keys)

    def _after_change(self, sp: SpaceIndex, n: int) -> None:
        sp.changes_since_save += n
        # A save writes the whole index, so past save_index_every keys it waits for a quarter of
        # the index to change (amortised O(1) a change); catch-up replays the rest on open. A copy
        # is written from a thread, off the writer's path, and while one is still writing no
        # other starts: on a slow disk saves come less often instead of queueing behind it.
        if sp.changes_since_save >= max(self.config.save_index_every, len(sp.index) // 4) and not sp.index.saving:
            sp.save(background=True)

    def add_messages(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        dedup: bool = True,
        occurred_at: datetime | str | None = None,
        speakers: Mapping[str, str] | None = None,
    ) -> list[Written]:
        """Store the chat messages worth keeping (user and assistant turns that say something),
        each with its ``role`` in metadata. ``messages`` is the OpenAI shape:
        ``[{"role": "user", "content": "..."}, ...]``. ``occurred_at`` is the conversation's date;
        ``speakers`` names who speaks in each role (``{"user": "Caroline"}``; a message's own
        ``name`` wins): both are kept in metadata and help search find the turns."""
        if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
            raise InvalidInputError("messages must be a list of {'role': ..., 'content': ...} dicts")
        if speakers is not None and (not isinstance(speakers, Mapping) or not all(isinstance(v, str) and v.strip() for v in speakers.values())):
            raise InvalidInputError("speakers must map roles to non-empty names, e.g. {'user': 'Caroline', 'assistant': 'Mia'}")
        base = check_metadata(metadata)
        texts, metas = [], []
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
                raise InvalidInputError(f"messages[{i}] must be a dict with 'role' and 'content'")
            role, content = m["role"], m["content"]
            if not isinstance(role, str):
                raise InvalidInputError(f"messages[{i}]['role'] must be a string")
            if content is None:
                continue  # e.g. an assistant turn that only calls tools
            if not isinstance(content, str):
                raise InvalidInputError(f"messages[{i}]['content'] must be a string (multi-part content: pass its text)")
            check_chars(content, f"messages[{i}]['content']")  # malformed even in a turn not worth keeping
            if role not in ROLES_KEPT or not worth_keeping(content):
                continue
            meta = {**base, "role": role}
            if isinstance(m.get("name"), str):
                meta["name"] = m["name"]
            speaker = meta.get("name") or (speakers or {}).get(role)
            if speaker:
                meta["speaker"] = speaker
            texts.append(content)
            metas.append(meta)
        # Even with no message worth keeping: add_many checks the scope, dedup and occurred_at.
        return self.add_many(texts, user_id=user_id, agent_id=agent_id, session_id=session_id, metadata=metas, dedup=dedup, occurred_at=occurred_at)

    def update(self, id: int, *, text: str | None = None, metadata: Mapping[str, Any] | None = None) -> Slot:
        """Change a slot's text (re-embedded) and/or replace its metadata; history records both."""
        self._check_open()
        if text is None and metadata is None:
            raise InvalidInputError("nothing to update: pass text=... and/or metadata=...")
        if text is not None:
            check_text(text)
        new_meta = check_metadata(metadata) if metadata is not None else None
        with self._lock:
            row, space = self._row(id)
            sp = self._space_index(space)
            key = None
            if text is not None and text != row.text and sp.key_source == self.embedder_name:
                key = self._embed([text])[0]
            now = _now()
            values: dict[str, Any] = {"writes": SlotRow.writes + 1, "updated_at": now, "last_access": now}
            if text is not None:
                values["text"] = text
            if new_meta is not None:
                values["metadata_"] = new_meta
            if key is not None:
                values["key"] = key.tobytes()
            with self._sessions() as s, s.begin():
                s.execute(sql_update(SlotRow).where(SlotRow.id == row.id).values(**values))
                eid = s.execute(insert(EventRow).returning(EventRow.id), [{
                    "space_id": sp.space_id, "slot_id": row.id, "kind": "update",
                    "old_text": row.text, "new_text": text if text is not None else row.text,
                    "old_metadata": row.metadata_, "new_metadata": new_meta if new_meta is not None else row.metadata_,
                    "at": now,
                }]).scalar_one()
                new_row = s.get(SlotRow, row.id)
            if key is not None:
                sp.index.add(np.array([row.id]), key[None, :])
            sp.local_events.add(int(eid))
            self._after_change(sp, 1)
            return self._slot(new_row, space)

    def update_vectors(self, ids: Sequence[int], keys: Any, *, labels: Sequence[str | None] | None = None,
                       metadata: Sequence[Mapping[str, Any] | None] | None = None) -> list[Slot]:
        """Replace the key vectors (and, when given, the labels and metadata) of slots of a vector
        space in one transaction; history records an ``update`` per slot. Text spaces are keyed by their
        embedder: change their text with :meth:`update` instead."""
        self._check_open()
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InvalidInputError(f"ids must be a list of slot ids, not {type(ids).__name__}")
        ids = [_check_id(i) for i in ids]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("update_vectors takes each slot id once")
        labels = self._optional_strings(labels, len(ids), "labels") if labels is not None else None
        metas = self._metadata_list(metadata, len(ids)) if metadata is not None else None
        if not ids:
            return []
        with self._lock:
            with self._sessions() as s:
                rows = {r.id: r for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(ids))).all()}
                names = self._space_names(s)
            missing = [i for i in ids if i not in rows]
            if missing:
                raise NotFoundError(f"no slots with ids {missing[:10]}")
            if len({rows[i].space_id for i in ids}) > 1:
                raise InvalidInputError("update_vectors changes slots of one space at a time")
            sp = self._space_index(names[rows[ids[0]].space_id])
            if sp.key_source == self.embedder_name:
                raise SpaceError(f"space {sp.name!r} is keyed by its text embedder; change a slot's text with update()")
            keys = check_vectors(keys, sp.dim, "keys")
            if len(keys) != len(ids):
                raise InvalidVectorError(f"got {len(keys)} keys for {len(ids)} slot ids")
            now = _now()
            values = [{"id": i, "key": keys[j].tobytes(), "writes": rows[i].writes + 1, "updated_at": now, "last_access": now,
                       **({"label": labels[j]} if labels is not None else {}),
                       **({"metadata_": metas[j]} if metas is not None else {})} for j, i in enumerate(ids)]
            try:
                with self._sessions() as s, s.begin():
                    s.execute(sql_update(SlotRow), values)
                    eids = s.execute(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True), [
                        {"space_id": sp.space_id, "slot_id": i, "kind": "update", "old_text": rows[i].text, "new_text": rows[i].text,
                         "old_metadata": rows[i].metadata_, "new_metadata": rows[i].metadata_ if metas is None else metas[j],
                         "at": now} for j, i in enumerate(ids)
                    ]).scalars().all()
                    got = {r.id: r for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(ids))).all()}
            except SQLAlchemyError as exc:
                raise DatabaseError(f"update failed, nothing was changed: {exc}") from exc
            sp.index.add(np.array(ids, dtype=np.int64), keys)
            sp.local_events.update(int(e) for e in eids)
            self._after_change(sp, len(ids))
            return [self._slot(got[i], sp.name) for i in ids]

    def least_used(self, n: int = 1, *, space: str | None = None) -> list[int]:
        """Ids of the ``n`` least used slots of a space, in the order eviction removes them
        (:data:`mindstore.retention.LEAST_USED`: accessed longest ago first, reads and writes both
        counting as access; then least often; then oldest id). One indexed range read."""
        self._check_open()
        check_k(n)
        ref = self._space_id(space)
        if ref is None:
            return []
        with self._sessions() as s:
            return [int(i) for i in s.scalars(select(SlotRow.id).where(SlotRow.space_id == ref[0]).order_by(*LEAST_USED).limit(n)).all()]

    def delete(self, id: int) -> None:
        """Forget one slot. Its history stays readable through :meth:`history`."""
        self.delete_many([_check_id(id)])

    def delete_many(self, ids: Iterable[int]) -> int:
        """Forget these slots, in any spaces, in one transaction: all of them, or none if one id is
        unknown (NotFoundError) or not an integer. Repeated ids count once. Returns how many were
        deleted; their histories stay readable through :meth:`history`."""
        self._check_open()
        if isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Iterable):
            raise InvalidInputError("ids must be a list of slot ids; use delete() for one")
        order = list(dict.fromkeys(_check_id(i) for i in ids))
        if not order:
            return 0
        with self._lock:
            with self._sessions() as s:
                rows = [r for start in range(0, len(order), 10_000)
                        for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(order[start : start + 10_000]))).all()]
                names = self._space_names(s)
            missing = set(order) - {r.id for r in rows}
            if missing:
                shown = ", ".join(map(str, sorted(missing)[:5])) + (" ..." if len(missing) > 5 else "")
                raise NotFoundError(f"no slot with id {shown}; nothing was deleted (see the ids with `list()` or `mindstore list`)")
            by_space: dict[int, list[SlotRow]] = {}
            for r in rows:
                by_space.setdefault(r.space_id, []).append(r)
            spaces = {sid: self._space_index(names[sid]) for sid in by_space}
            try:
                with self._sessions() as s, s.begin():
                    eids = {sid: self._delete_in(s, spaces[sid], part, "delete") for sid, part in by_space.items()}
            except SQLAlchemyError as exc:
                raise DatabaseError(f"delete failed, nothing was deleted: {exc}") from exc
            return sum(self._deleted(spaces[sid], [r.id for r in part], eids[sid]) for sid, part in by_space.items())

    def delete_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        space: str | None = None,
    ) -> int:
        """Forget every slot of a scope (at least one of user_id, agent_id, session_id); returns how many."""
        self._check_open()
        scope = check_scope(user_id, agent_id, session_id)
        if scope == Scope():
            raise InvalidInputError("delete_all needs user_id, agent_id or session_id; use reset() to empty the store")
        with self._lock:
            sp = self._resolve_space(space)
            if sp is None:
                return 0
            with self._sessions() as s:
                rows = s.scalars(select(SlotRow).where(*scope_where(sp.space_id, scope))).all()
            return self._delete_rows(sp, rows)

    def _delete_rows(self, sp: SpaceIndex, rows: Sequence[SlotRow]) -> int:
        if not rows:
            return 0
        with self._sessions() as s, s.begin():
            eids = self._delete_in(s, sp, rows, "delete")
        return self._deleted(sp, [r.id for r in rows], eids)

    @staticmethod
    def _delete_in(s: Session, sp: SpaceIndex, rows: Sequence[SlotRow], kind: str) -> list[int]:
        """Delete ``rows`` and log one ``kind`` event each, inside the caller's transaction."""
        now = _now()
        ids = [r.id for r in rows]
        eids = s.execute(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True), [
            {"space_id": sp.space_id, "slot_id": r.id, "kind": kind, "old_text": r.text, "new_text": None,
             "old_metadata": r.metadata_, "new_metadata": None, "at": now}
            for r in rows
        ]).scalars().all()
        for start in range(0, len(ids), 10_000):
            s.execute(sql_delete(SlotRow).where(SlotRow.id.in_(ids[start : start + 10_000])))
        return [int(e) for e in eids] + MindStore._restore_versions(s, sp, rows, now)

    @staticmethod
    def _restore_versions(s: Session, sp: SpaceIndex, rows: Sequence[SlotRow], now: datetime) -> list[int]:
        """After ``rows`` were deleted: a slot they superseded is superseded by what superseded
        them, or, when they were the newest version, current again (a ``restore`` event each)."""
        gone = {r.id: r.superseded_by for r in rows}
        ids = list(gone)
        older = [row for start in range(0, len(ids), 10_000) for row in s.execute(select(SlotRow.id, SlotRow.superseded_by).where(
            SlotRow.space_id == sp.space_id, SlotRow.superseded_by.in_(ids[start : start + 10_000]))).all()]
        events = []
        for slot_id, by in older:
            newer = gone[by]
            while newer in gone:  # a chain of versions deleted together
                newer = gone[newer]
            s.execute(sql_update(SlotRow).where(SlotRow.id == slot_id).values(superseded_by=newer))
            events.append({"space_id": sp.space_id, "slot_id": slot_id, "kind": "restore" if newer is None else "supersede", "old_text": None,
                           "new_text": None, "old_metadata": {"superseded_by": by}, "new_metadata": {"superseded_by": newer}, "at": now})
        return [int(e) for e in s.execute(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True), events).scalars().all()] if events else []

    def _deleted(self, sp: SpaceIndex, ids: list[int], eids: list[int]) -> int:
        """After the commit: drop ``ids`` from the derived index."""
        sp.index.remove(np.array(ids, dtype=np.int64))
        sp.local_events.update(eids)
        self._after_change(sp, len(ids))
        return len(ids)

    def _evict(self, sp: SpaceIndex, scopes: Iterable[Scope] = (), *, ttl_only: bool = False) -> int:
        """Apply the retention policy (Config.capacity, capacity_per_scope, ttl) to a space after a
        write to ``scopes``; returns how many slots were evicted (each logged as ``evict``)."""
        policy = self._expiry if ttl_only else self._retention
        if not policy.active:
            return 0
        if ttl_only:
            with self._sessions() as s:  # most searches find nothing expired: no write lock then
                if not any_expired(s, sp.space_id, policy.ttl, _now()):
                    return 0
        with self._sessions() as s, s.begin():
            lock_space(s, sp.space_id)
            ids = to_evict(s, sp.space_id, policy, scopes, _now())
            rows = s.scalars(select(SlotRow).where(SlotRow.id.in_(ids))).all() if ids else []
            eids = self._delete_in(s, sp, rows, "evict") if rows else []
        return self._deleted(sp, [r.id for r in rows], eids) if rows else 0

    def reset(self) -> None:
        """Delete every slot, space and history event in this store. Irreversible."""
        self._check_open()
        with self._lock:
            with self._sessions() as s, s.begin():
                s.execute(sql_delete(EventRow))
                s.execute(sql_delete(SlotRow))
                s.execute(sql_delete(SpaceRow))
            for sp in self._spaces.values():
                sp.index.reset()
                sp.index.seq = 0
                sp.save()
            self._spaces.clear()
            for lex in self._lexical.values():
                lex.catch_up()  # the change log is empty now: the index empties and saves
                lex.save()
            self._lexical.clear()

    # -- reads -------------------------------------------------------------------------------

    def _row(self, id: Any) -> tuple[SlotRow, str]:
        with self._sessions() as s:
            row = s.get(SlotRow, _check_id(id))
            if row is None:
                raise NotFoundError(f"no slot with id {id}; see the ids with `list()` or `mindstore list`")
            return row, self._space_names(s)[row.space_id]

    def get(self, id: int) -> Slot:
        """The slot with this id (NotFoundError if it does not exist)."""
        self._check_open()
        row, space = self._row(id)
        return self._slot(row, space)

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        mode: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        reranker: Reranker | None = None,
        now: datetime | str | None = None,
        group_by: str | None = None,
        include_superseded: bool = False,
        newest_first: bool = True,
        count_reads: bool = True,
    ) -> list[Hit]:
        """The ``k`` slots that best answer ``query`` within the scope and filters, best first.

        ``mode``: ``"hybrid"`` (the default, see ``Config.search_mode``) fuses the dense ranking
        with BM25 over the words, which finds names, places and dates; ``"dense"`` is meaning
        alone, ``"lexical"`` words alone. ``since`` / ``until`` keep slots whose ``occurred_at``
        lies in that range (inclusive). ``reranker`` (or the store's) reorders the head with a
        cross-encoder. ``Hit.score`` is the cosine similarity in every mode; ``min_score`` applies
        to it. ``Hit.rank_score`` is what the hits are ordered by (in hybrid, the fused score), so
        it never grows down the list: show it beside a ranked list. Dense and hybrid: a scope
        with at least ``k`` matching slots always yields ``k`` hits. Hits count as reads in the
        slots' usage statistics (not with ``count_reads=False``: a person looking, as the TUI
        does, rather than the application recalling).

        Time: ``now`` (default the wall clock) is when the question is asked. Time the question
        names ("last Saturday", "two weeks ago", "in May 2023") prefers slots whose
        ``occurred_at`` falls in that window, and "the first time" / "most recently" which
        version of a fact comes first (see :mod:`mindstore.timeref`); ``since`` / ``until`` also
        take such words ("last week"). Versions: of two hits that say nearly the same thing the
        newer ranks first (``newest_first=False`` keeps the ranking's order: for items addressed
        by key, which are not versions of each other), and superseded slots are left out unless
        ``include_superseded``.
        ``group_by="session"`` (or ``"user"``, ``"agent"``) returns the best slot of each of the
        ``k`` best sessions.
        """
        self._check_open(flush=False)
        check_text(query, "query")
        mode = check_mode(self.config.search_mode if mode is None else mode)
        check_reranker(reranker)
        if group_by is not None and group_by not in _GROUPS:
            raise InvalidInputError(f"group_by must be one of {', '.join(map(repr, _GROUPS))} or None, not {group_by!r}")
        for name, flag in (("include_superseded", include_superseded), ("newest_first", newest_first), ("count_reads", count_reads)):
            if not isinstance(flag, bool):
                raise InvalidInputError(f"{name} must be True or False, not {flag!r}")
        at = check_now(now)
        local = check_now(now, keep_zone=True)  # calendar words are read in the caller's timezone
        window = time_filter(filters, None if since is None else parse_when(since, local, "since"), None if until is None else parse_when(until, local, "until"))
        args = self._search_args(k, user_id, agent_id, session_id, window, min_score)
        hint = parse_time(query, local)
        if hint.since is not None and hint.since > at:  # a plan ("this weekend"): nothing has happened there yet
            hint = TimeHint(None, None, hint.order, None)
        with self._lock:
            sp = self._text_space(create=False)
        if sp is None:
            return []
        return self._search(sp, self._embed([query]), *args, query=query, mode=mode, reranker=reranker or self.reranker,
                            group_by=_GROUPS.get(group_by), include_superseded=include_superseded, hint=None if hint.empty else hint,
                            versions=newest_first, count_reads=count_reads)[0]

    def search_vector(
        self,
        vector: Any,
        *,
        space: str | None = None,
        k: int = 5,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        count_reads: bool = True,
    ) -> list[Hit]:
        """Like :meth:`search`, with a key vector instead of text (any space)."""
        try:
            q = np.asarray(vector, dtype=np.float32) if not isinstance(vector, np.ndarray) else vector
        except (TypeError, ValueError) as exc:
            raise InvalidVectorError(f"the query vector must be numbers, one row: {exc}") from None
        if q.ndim == 2 and len(q) != 1:
            raise InvalidVectorError("search_vector takes one query vector; use search_vectors for several")
        return self.search_vectors(q, space=space, k=k, user_id=user_id, agent_id=agent_id, session_id=session_id, filters=filters, min_score=min_score,
                                   count_reads=count_reads)[0]

    def search_vectors(
        self,
        vectors: Any,
        *,
        space: str | None = None,
        k: int = 5,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        count_reads: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search_vector` for a batch of query vectors (n, dim): one index search, one SQL
        read and one usage count for all of them. A slot hit by several queries counts one read."""
        self._check_open(flush=False)
        args = self._search_args(k, user_id, agent_id, session_id, filters, min_score)
        if not isinstance(count_reads, bool):
            raise InvalidInputError(f"count_reads must be True or False, not {count_reads!r:.40}")
        with self._lock:
            sp = self._resolve_space(space)
        if sp is None:
            n = len(np.atleast_2d(np.asarray(vectors)))
            return [[] for _ in range(n)]
        return self._search(sp, check_vectors(vectors, sp.dim, "query vector"), *args, count_reads=count_reads)

    @staticmethod
    def _search_args(k, user_id, agent_id, session_id, filters, min_score):  # noqa: ANN001, ANN205
        return check_k(k), check_scope(user_id, agent_id, session_id), compile_filter(filters), check_min_score(min_score)

    def _candidates(self, s: Session | Connection, sp: SpaceIndex, scope: Scope, pred: Predicate | None, *, current_only: bool = True) -> np.ndarray | None:
        """Ids that a scoped or filtered search may return (None: the whole space). ``current_only``
        leaves superseded versions out."""
        current_only = current_only and s.execute(_ANY_SUPERSEDED, {"space": sp.space_id}).first() is not None
        if scope == Scope() and pred is None and not current_only:
            return None
        where = scope_where(sp.space_id, scope)
        if current_only:
            where.append(SlotRow.superseded_by.is_(None))
        if pred is None:
            return np.array(s.scalars(select(SlotRow.id).where(*where)).all(), dtype=np.int64)
        rows = s.execute(select(SlotRow.id, SlotRow.metadata_).where(*where)).all()
        return np.array([r[0] for r in rows if pred(r[1] or {})], dtype=np.int64)

    def _lexical_index(self, sp: SpaceIndex) -> LexicalIndex:
        lex = self._lexical.get(sp.name)
        if lex is None:
            path = self._index_dir / f"{sp.name}.bm25" if self._index_dir is not None else None
            lex = LexicalIndex(sp.space_id, sp.name, self._sessions, path, context=self.config.index_context, save_every=self.config.save_index_every)
            self._lexical[sp.name] = lex
        return lex

    def _search(
        self, sp: SpaceIndex, q: np.ndarray, k: int, scope: Scope, pred: Predicate | None, min_score: float | None,
        *, query: str | None = None, mode: str = "dense", reranker: Reranker | None = None, group_by: str | None = None,
        include_superseded: bool = False, hint: TimeHint | None = None, versions: bool = True, count_reads: bool = True,
    ) -> list[list[Hit]]:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        # Fusion and reranking look deeper than k: a slot ranked 30th by one index can win.
        depth = k + max(k, 10) if mode == "dense" else max(k + max(k, 10), self.config.fusion_depth)
        if group_by is not None:
            depth = max(depth, k * _GROUP_DEPTH)  # k sessions need more than k turns
        with self._lock:
            self._check_open(flush=False)
            if self._retention.ttl is not None:
                sp.catch_up()
                self._flush_reads()  # a read not yet written still counts as an access
                self._evict(sp, ttl_only=True)  # expired slots are never returned
            lexical: list[tuple[list[int], dict[int, float]]] = []  # per query: BM25 ranking and scores
            with self._read_connection() as s:  # reads only: a Connection, not an ORM Session, which costs more (measured: docs/benchmarks.md, design decisions)
                sp.catch_up(s)  # on this connection: one indexed max() when nothing changed
                subset = self._candidates(s, sp, scope, pred, current_only=not include_superseded)
                if subset is not None and len(subset) == 0:
                    return [[] for _ in q]
                if mode != "lexical":
                    # The index proposes candidates from float16 codes, with a margin; the float32
                    # keys in SQL decide the order and the scores.
                    _, ids = sp.index.search(q, depth, subset=subset)
                    cands = [[int(i) for i in row if i >= 0] for row in ids]
                else:
                    cands = [[] for _ in q]
                if mode != "dense" and query is not None:
                    lex = self._lexical_index(sp)
                    lex.catch_up(sp.index.seq)  # the key index has just caught up to the space's last change
                    found, bm25 = lex.search(query, depth, subset)
                    lexical = [(found.tolist(), dict(zip(found.tolist(), bm25.tolist())))]
                wanted = sorted({i for c in cands + [ranking for ranking, _ in lexical] for i in c})
                rows = {r.id: r for r in s.execute(_HIT_ROWS, {"ids": wanted})} if wanted else {}
            results: list[list[tuple[float, Any]]] = []
            for qi, cand in enumerate(cands):
                # Invariant 2, checked again on the rows themselves: nothing outside scope and filters
                # leaves, from either index; nor does a superseded version unless asked for.
                allowed = {i: rows[i] for i in dict.fromkeys(cand + (lexical[qi][0] if lexical else []))
                           if i in rows and scope.contains(rows[i]) and (pred is None or pred(rows[i].metadata_ or {}))
                           and (include_superseded or rows[i].superseded_by is None)}
                if not allowed:
                    results.append([])
                    continue
                keys = keys_from_bytes([r.key for r in allowed.values()], sp.dim)
                unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
                cosine = dict(zip(allowed, (unit @ q[qi]).tolist()))
                dense = sorted((i for i in cand if i in allowed), key=lambda i: (-cosine[i], i))
                words = [i for i in lexical[qi][0] if i in allowed] if lexical else []
                rank = self._rank(mode, dense, words, cosine, lexical[qi][1] if lexical else {}, allowed, hint)
                order = sorted(rank, key=lambda i: (-rank[i], i))
                if reranker is not None and query is not None and mode != "dense":
                    head = order[: max(k, self.config.rerank_depth)]
                    rank = dict(reranked(reranker, query, head, {i: allowed[i].text or "" for i in head}))
                    order = list(rank)
                if group_by is not None:
                    order = _one_per_group(order, allowed, group_by)
                if query is not None and versions:
                    # Versions are reordered among the hits returned; a newer version of one of
                    # them that ranked just below k is returned with it.
                    words = functools.lru_cache(maxsize=None)(lambda i: frozenset(tokenize(allowed[i].text or "")))
                    order = newest_first(order, dict(zip(allowed, unit)), lambda i: _recency(allowed[i]), words, frozenset(tokenize(query)),
                                         self.config.version_threshold, earliest=hint is not None and hint.order == "earliest",
                                         # sessions and users are not statements of a fact
                                         change_threshold=self.config.change_threshold if group_by is None else None,
                                         relevance=cosine, k=k)
                order = order[:k]
                # Hit.rank_score: a newer version moved into an older one's place takes that
                # place's score, so the scores go down the list as the order does.
                places = sorted((rank[i] for i in order), reverse=True)
                results.append([(cosine[i], place, allowed[i]) for i, place in zip(order, places) if min_score is None or cosine[i] >= min_score])
            if not count_reads:
                return [[Hit(sc, self._slot(r, sp.name, *self._reads.get(r.id, (0, None))), at) for sc, at, r in ranked] for ranked in results]
            unwritten, now = self._count_reads(sorted({r.id for ranked in results for _, _, r in ranked}))
            return [[Hit(sc, self._slot(r, sp.name, unwritten[r.id], now), at) for sc, at, r in ranked] for ranked in results]

    def _rank(self, mode: str, dense: list[int], words: list[int], cosine: dict[int, float], bm25: dict[int, float],
              rows: Mapping[int, Any], hint: TimeHint | None) -> dict[int, float]:
        """The score a search orders the candidates by (before reranking and versions; ties go to
        the smaller id): each mode's score in [0, 1], plus ``Config.time_weight`` for a slot whose
        ``occurred_at`` lies in the window the question names (half of it within the window's
        length after it: a conversation often tells of something days after it happened)."""
        if mode == "hybrid" and self.config.fusion == "rrf":
            return rrf_scores([dense, words])
        if mode == "lexical":
            top = max((bm25[i] for i in words), default=0.0) or 1.0
            scores = {i: bm25[i] / top for i in words}
        elif mode == "dense":
            scores = fused_scores({i: cosine[i] for i in dense}, {}, 1.0)
        else:  # every candidate of either index, the lexical-only ones included
            scores = fused_scores(cosine, {i: bm25[i] for i in words}, self.config.dense_weight)
        if hint is not None and (hint.since is not None or hint.until is not None) and self.config.time_weight > 0 and scores:
            inside = {i: _in_window(rows[i], hint) for i in scores}
            # A window that holds most candidates says little about which one is meant.
            weight = self.config.time_weight * (1.0 - sum(v == 1.0 for v in inside.values()) / len(inside))
            for i in scores:
                scores[i] += weight * inside[i]
        return scores

    def _read_connection(self) -> Connection:
        """A connection for a search's reads. On SQLite they share one transaction, so that the
        catch-up and the rows come from one snapshot. PostgreSQL at READ COMMITTED (its default and
        the store's) takes a new snapshot for every statement inside a transaction too, so a read
        there gains nothing from one: in autocommit it skips the BEGIN and ROLLBACK round trips
        (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
        c = self._engine.connect()
        if self._engine.dialect.name == "postgresql":
            c = c.execution_options(isolation_level="AUTOCOMMIT")
        return c

    def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        space: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """A page of slots in id order. Pass ``page.next_cursor`` back for the next page; pages stay
        stable while slots are added or deleted (keyset pagination, never OFFSET)."""
        self._check_open()
        scope = check_scope(user_id, agent_id, session_id)
        pred = compile_filter(filters)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_K:
            raise InvalidInputError(f"limit must be an integer from 1 to {MAX_K}")
        after = 0
        if cursor is not None:
            # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
            if not isinstance(cursor, str) or not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 or int(cursor) >= 2**63:
                raise InvalidInputError(f"cursor {cursor!r:.40} is not one this store handed out; pass page.next_cursor")
            after = int(cursor)
        ref = self._space_id(space)
        if ref is None:
            return Page([], None)
        space_id, space_name = ref
        out: list[SlotRow] = []
        with self._sessions() as s:
            while len(out) < limit:
                batch = s.scalars(
                    select(SlotRow).where(*scope_where(space_id, scope), SlotRow.id > after).order_by(SlotRow.id).limit(limit if pred is None else max(limit, 500))
                ).all()
                if not batch:
                    break
                for r in batch:
                    after = r.id
                    if pred is None or pred(r.metadata_ or {}):
                        out.append(r)
                        if len(out) == limit:
                            break
            more = len(out) == limit and s.scalar(
                select(SlotRow.id).where(*scope_where(space_id, scope), SlotRow.id > out[-1].id).limit(1)
            ) is not None
        return Page([self._slot(r, space_name) for r in out], str(out[-1].id) if more else None)

    def count(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        space: str | None = None,
    ) -> int:
        """How many slots a scope holds (the whole space when no scope is given)."""
        self._check_open()
        scope = check_scope(user_id, agent_id, session_id)
        ref = self._space_id(space)
        if ref is None:
            return 0
        with self._sessions() as s:
            return s.scalar(select(func.count()).where(*scope_where(ref[0], scope))) or 0

    def scopes(self, kind: str = "user_id", *, space: str | None = None, limit: int | None = None) -> list[tuple[str, int]]:
        """The distinct values of one scope field in a space with their slot counts, largest first.

        ``kind`` is ``"user_id"``, ``"agent_id"`` or ``"session_id"``; slots where it is unset are
        not listed. One GROUP BY on an indexed column; pass ``limit`` for spaces with many scopes.
        """
        self._check_open()
        if kind not in ("user_id", "agent_id", "session_id"):
            raise InvalidInputError(f"kind must be 'user_id', 'agent_id' or 'session_id', not {kind!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer or None, got {limit!r}")
        ref = self._space_id(space)
        if ref is None:
            return []
        col = getattr(SlotRow, kind)
        n = func.count()
        query = select(col, n).where(SlotRow.space_id == ref[0], col.is_not(None)).group_by(col).order_by(n.desc(), col)
        with self._sessions() as s:
            return [(v, int(c)) for v, c in s.execute(query.limit(limit) if limit else query).all()]

    def history(self, id: int) -> list[Event]:
        """Every change of a slot, oldest first; still there after the slot is deleted."""
        self._check_open()
        id = _check_id(id)
        with self._sessions() as s:
            rows = list(s.scalars(select(EventRow).where(EventRow.slot_id == id, EventRow.slot_last.is_(None))).all())
            # A bulk add's range event: the one starting at or before this id (ranges never overlap).
            span = s.scalars(select(EventRow).where(EventRow.slot_last.is_not(None), EventRow.slot_id <= id)
                             .order_by(EventRow.slot_id.desc()).limit(1)).first()
        if span is not None and span.slot_last >= id:
            rows.append(span)
        if not rows:
            raise NotFoundError(f"no slot with id {id} was ever stored here")
        rows.sort(key=lambda r: r.id)
        return [Event(r.id, id, r.kind, r.old_text, r.new_text, r.old_metadata, r.new_metadata, _aware(r.at)) for r in rows]

    def keys(self, ids: Iterable[int]) -> np.ndarray:
        """The stored key vectors of these slots, as given (not normalised), in order."""
        self._check_open()
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InvalidInputError(f"ids must be a list of slot ids, not {type(ids).__name__}")
        ids = [_check_id(i) for i in ids]
        with self._sessions() as s:
            rows = dict(s.execute(select(SlotRow.id, SlotRow.key).where(SlotRow.id.in_(ids))).all())
            missing = [i for i in ids if i not in rows]
            if missing:
                raise NotFoundError(f"no slots with ids {missing[:10]}")
            dims = {len(rows[i]) // 4 for i in ids}
            if len(dims) > 1:
                raise InvalidInputError("those slots belong to spaces of different dimensions")
            return keys_from_bytes([rows[i] for i in ids], dims.pop() if dims else 0)

    # -- maintenance -------------------------------------------------------------------------

    def reindex(self, *, batch_size: int | None = None) -> int:
        """Re-embed every slot of the text space with this store's embedder; returns how many.

        Use after changing the embedding model, or to repair a space whose keys are of two sizes
        (:class:`MixedKeysError`). Atomic: until it ends the space keeps its old keys and model,
        and a rerun after a failure or a kill resumes. Other processes should reopen the store after.
        """
        from tqdm.auto import tqdm

        from .reindex import stage_keys, switch_keys

        self._check_open()
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH):
            raise InvalidInputError(f"batch_size must be an integer from 1 to {MAX_BATCH:,} (texts embedded at once), or None for Config.embed_batch_size; got {batch_size!r:.40}")
        batch_size = batch_size or self.config.embed_batch_size
        with self._lock:
            row = self._space_row(self.space)
            if row is None:
                return 0
            dim, key_source = self.embedder.dim, self.embedder_name
            with self._sessions() as s:
                total = s.scalar(select(func.count()).where(SlotRow.space_id == row.id)) or 0
                texts_missing = s.scalar(select(func.count()).where(SlotRow.space_id == row.id, SlotRow.text.is_(None))) or 0
            if texts_missing:
                raise SpaceError(f"space {self.space!r} has {texts_missing} slots without text; only text spaces can be re-embedded")
            # New keys are staged beside the old ones, then switched in one transaction: cut short,
            # the space keeps its old keys and model, and a rerun embeds only what is left.
            with tqdm(total=total, desc=f"re-embedding {self.space!r}", unit="slot", disable=total < 1000 or None) as bar:
                stage_keys(self._sessions, row.id, self.space, key_source, dim, self._embed, batch_size * 16, bar.update)
            switch_keys(self._sessions, row.id, self.space, key_source, dim, self._embed)
            self._spaces.pop(self.space, None)
            if self._index_dir is not None:
                (self._index_dir / f"{self.space}.faiss").unlink(missing_ok=True)
            self._text_space(create=False)
            return total

    # -- export / import ---------------------------------------------------------------------

    def export(self, path: str | Path) -> int:
        """Write every space, slot (key included) and history event as JSON Lines; returns slots written."""
        from .transfer import export_jsonl

        self._check_open()
        with self._lock:
            return export_jsonl(self._sessions, path)

    def import_(self, path: str | Path) -> int:
        """Load a file written by :meth:`export` into this store, keeping ids; returns slots read.

        The whole file is checked first: on any problem nothing is imported.
        """
        from .transfer import import_jsonl

        self._check_open()
        with self._lock:
            n = import_jsonl(self._sessions, self._engine, path)
            for sp in list(self._spaces.values()):
                sp.catch_up()
            return n
