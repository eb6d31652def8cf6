"""MindStore: the long-term memory an application embeds.

``MindStore()`` opens a SQLite store in the user data directory; ``MindStore(url)`` takes any
SQLAlchemy URL. Every write is committed to SQL before the call returns; the FAISS key index is a
derived cache kept in step with SQL (see :mod:`mindstore.spaces`).

This class is a facade: each method hands its arguments to one collaborator in
:mod:`mindstore.core` (writes, search, reads, deletes, usage, spaces, WAL checkpoints).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from .config import Config, default_index_dir, default_url
from .core.deletes import Deleter
from .core.keys import TextKeys
from .core.opening import check_backend, check_options, needs_reindex
from .core.reads import Reader
from .core.registry import Registry
from .core.search import Searcher
from .core.state import Shared, check_id
from .core.usage import Reads
from .core.wal import Checkpoints
from .core.writes import Writer
from .db import open_database
from .embed import Embedder
from .errors import InvalidInputError
from .index import KeyIndex
from .lexical import LexicalIndex
from .messages import kept_messages
from .retrieval import Reranker
from .slots import Event, Hit, Page, Slot, Written
from .spaces import IndexInfo, SpaceInfo
from .validate import MAX_BATCH
from .versions import Resolver

__all__ = ["MindStore"]

Scoped = str | None


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
        check_options(url, space, embedder, config, reindex, reranker, resolver)
        self.url = url or default_url()
        self.config = config or Config()
        self.space = space
        self.reranker = reranker  # a CrossEncoder that reorders text search results (None: off)
        self.resolver = resolver  # decides for near-duplicates that differ (None: they supersede)
        check_backend(self.url, self.config)
        engine, sessions = open_database(self.url)
        index_dir = self.config.index_dir or default_index_dir(self.url)
        shared = self._shared = Shared(self.config, engine, sessions, Path(index_dir) if index_dir is not None else None)
        self._keys = TextKeys(embedder, self.config)
        self._spaces = Registry(shared, self._keys, space)
        self._reads = Reads(shared)
        self._reader = Reader(shared, self._spaces)
        self._deleter = Deleter(shared, self._spaces)
        self._checkpoints = Checkpoints(shared)
        self._writer = Writer(shared, self._spaces, self._keys, self._reader, self._deleter, self._checkpoints)
        self._searcher = Searcher(shared, self._spaces, self._keys, self._reads, self._deleter)
        try:
            # The key index is loaded, checked and repaired on first use, not here: opening a
            # store to list or edit rows never pays for reading millions of keys.
            if needs_reindex(self._spaces.row(space), space, self._keys, reindex, sessions):
                self.reindex()
        except BaseException:
            engine.dispose()
            raise

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> MindStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MindStore({self._shared.engine.url.render_as_string(hide_password=True)!r}, space={self.space!r})"

    def close(self) -> None:
        """Save the key indexes and release the database. Everything acknowledged is durable."""
        with self._shared.lock:
            if self._shared.closed:
                return
            self._spaces.close()
            self._reads.close()
            self._writer.close()
            self._checkpoints.close()
            self._shared.engine.dispose()
            self._shared.closed = True

    def _check_open(self, *, flush: bool = True) -> None:
        """Raise if closed. Every call but a search first writes the reads searches have counted,
        so whatever this store does next (a get, a write, an eviction) sees them."""
        self._shared.check_open()
        if flush and self._reads.any:
            self._reads.flush()

    # -- spaces and the embedder ---------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The text embedder (loaded on first use)."""
        return self._keys.embedder

    @property
    def embedder_name(self) -> str:
        return self._keys.name

    def create_space(self, name: str, *, dim: int, key_source: str) -> SpaceInfo:
        """Create a space for vectors of another kind (e.g. a neural controller's keys)."""
        self._check_open()
        return self._spaces.create(name, dim=dim, key_source=key_source)

    def spaces(self) -> list[SpaceInfo]:
        """Every space in the store with its slot count."""
        self._check_open()
        return self._spaces.infos()

    def index_info(self, space: str | None = None, *, recall_sample: int = 0) -> IndexInfo:
        """The key index of a space (default: the text space), brought up to date: kind, device,
        size, change sequence, file. With ``recall_sample`` > 0, also the recall@10 of its search
        against an exhaustive scan, measured with that many of its keys as queries."""
        self._check_open()
        return self._spaces.index_info(space, recall_sample)

    def wait_trained(self, space: str | None = None, timeout: float | None = None) -> bool:
        """Wait until a background training of a space's approximate key index (default: the
        text space; see ``Config.train_in_background``) has finished and its lists serve
        searches. True when none is under way; False if ``timeout`` seconds passed first."""
        self._check_open()
        return self._spaces.wait_trained(space, timeout)

    # -- seams for diagnostics, tests and benchmarks -------------------------------------------
    # Read-only views of what the store keeps in step with SQL. The store owns every change to
    # them: a caller that adds, removes, resets, saves or retrains through one makes it disagree
    # with SQL (searches miss or invent slots until the next open rebuilds it).

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine the store reads and writes through, for diagnostics and tests
        (event listeners, PRAGMAs, read-only SQL). Writing slot, space or event rows through it
        bypasses the change log and the key indexes; :meth:`close` disposes of it."""
        return self._shared.engine

    def key_index(self, space: str | None = None) -> KeyIndex:
        """The key index of a space (default: the text space), loaded and checked against SQL on
        first use: ``len``, ``ids()``, ``search()``, ``approximate``, ``nlist``, ``nprobe``,
        ``seq``, ``saving``. Read it only: a change made through it (add, remove, reset, save,
        retrain) is unknown to SQL. Its search is unscoped (ids of every user): applications
        search the store. Unlike :meth:`index_info` it does not catch up with other processes'
        writes, and a reindex or rebuild replaces the object: ask again rather than keep it. A
        :class:`SpaceError` if the space does not exist or the text space has no slots yet."""
        self._check_open()
        return self._spaces.key_index(space)

    def lexical_index(self, space: str | None = None) -> LexicalIndex:
        """The BM25 index of a text space (default: the text space), opened as a hybrid or lexical
        search opens it (loaded, checked, caught up from the change log on open): ``len``,
        ``repaired``, ``seq``, ``search()``. Read it only, as :meth:`key_index`'s. A
        :class:`SpaceError` as for :meth:`key_index`."""
        self._check_open()
        return self._spaces.lexical_index(space)

    def usage_histogram(self, space: str | None = None) -> dict[str, int]:
        """How many slots of a space were accessed (reads + writes) 1, 2-3, 4-9, 10-99 and 100+ times."""
        self._check_open()
        return self._reader.usage_histogram(space)

    # -- writes ------------------------------------------------------------------------------

    def add(self, text: str, *, user_id: Scoped = None, agent_id: Scoped = None, session_id: Scoped = None,
            metadata: Mapping[str, Any] | None = None, dedup: bool = True, occurred_at: datetime | str | None = None) -> Written:
        """Remember ``text``; returns the slot and what happened (``Written.change``).

        Against the scope's near-duplicates (``Config.dedup_threshold``): the same statement
        reinforces the memory, a changed one supersedes it (a new slot; searches skip the old one,
        history keeps it). ``dedup=False`` always adds. See :mod:`mindstore.versions`."""
        return self.add_many([text], user_id=user_id, agent_id=agent_id, session_id=session_id, metadata=metadata, dedup=dedup, occurred_at=occurred_at)[0]

    def add_many(self, texts: Sequence[str], *, user_id: Scoped = None, agent_id: Scoped = None, session_id: Scoped = None,
                 metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None, dedup: bool = True,
                 occurred_at: datetime | str | None = None) -> list[Written]:
        """Remember many texts in one scope, embedded in batches. ``metadata`` is one dict for all
        or a list with one per text. ``occurred_at`` (when what they say happened, e.g. the date of
        the conversation) is kept as metadata ``occurred_at`` for ``search(since=, until=)``.
        Returns one :class:`Written` per text, in order, as if they were added one by one."""
        self._check_open()
        return self._writer.texts(texts, (user_id, agent_id, session_id), metadata, dedup, occurred_at, self.resolver)

    def add_vectors(self, keys: Any, *, space: str, labels: Sequence[str | None] | None = None, texts: Sequence[str | None] | None = None,
                    values: Any = None, user_id: Scoped = None, agent_id: Scoped = None, session_id: Scoped = None,
                    metadata: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None) -> list[Slot]:
        """Store slots keyed by given vectors in a vector space (see :meth:`create_space`)."""
        self._check_open()
        return self._writer.vectors(keys, space, labels, texts, values, (user_id, agent_id, session_id), metadata)

    def add_messages(self, messages: Sequence[Mapping[str, Any]], *, user_id: Scoped = None, agent_id: Scoped = None,
                     session_id: Scoped = None, metadata: Mapping[str, Any] | None = None, dedup: bool = True,
                     occurred_at: datetime | str | None = None, speakers: Mapping[str, str] | None = None) -> list[Written]:
        """Store the chat messages worth keeping (user and assistant turns that say something),
        each with its ``role`` in metadata. ``messages`` is the OpenAI shape:
        ``[{"role": "user", "content": "..."}, ...]``. ``occurred_at`` is the conversation's date;
        ``speakers`` names who speaks in each role (``{"user": "Caroline"}``; a message's own
        ``name`` wins): both are kept in metadata and help search find the turns. The policy is
        :mod:`mindstore.messages`'."""
        texts, metas = kept_messages(messages, metadata, speakers)
        # Even with no message worth keeping: add_many checks the scope, dedup and occurred_at.
        return self.add_many(texts, user_id=user_id, agent_id=agent_id, session_id=session_id, metadata=metas, dedup=dedup, occurred_at=occurred_at)

    def update(self, id: int, *, text: str | None = None, metadata: Mapping[str, Any] | None = None) -> Slot:
        """Change a slot's text (re-embedded) and/or replace its metadata; history records both."""
        self._check_open()
        return self._writer.update(id, text, metadata)

    def update_vectors(self, ids: Sequence[int], keys: Any, *, labels: Sequence[str | None] | None = None,
                       metadata: Sequence[Mapping[str, Any] | None] | None = None) -> list[Slot]:
        """Replace the key vectors (and, when given, the labels and metadata) of slots of a vector
        space in one transaction; history records an ``update`` per slot. Text spaces are keyed by their
        embedder: change their text with :meth:`update` instead."""
        self._check_open()
        return self._writer.update_vectors(ids, keys, labels, metadata)

    # -- deletes -----------------------------------------------------------------------------

    def least_used(self, n: int = 1, *, space: str | None = None) -> list[int]:
        """Ids of the ``n`` least used slots of a space, in the order eviction removes them
        (:data:`mindstore.retention.LEAST_USED`: accessed longest ago first, reads and writes both
        counting as access; then least often; then oldest id). One indexed range read."""
        self._check_open()
        return self._reader.least_used(n, space)

    def delete(self, id: int) -> None:
        """Forget one slot. Its history stays readable through :meth:`history`."""
        self.delete_many([check_id(id)])

    def delete_many(self, ids: Iterable[int]) -> int:
        """Forget these slots, in any spaces, in one transaction: all of them, or none if one id is
        unknown (NotFoundError) or not an integer. Repeated ids count once. Returns how many were
        deleted; their histories stay readable through :meth:`history`."""
        self._check_open()
        return self._deleter.many(ids)

    def delete_all(self, *, user_id: Scoped = None, agent_id: Scoped = None, session_id: Scoped = None, space: str | None = None) -> int:
        """Forget every slot of a scope (at least one of user_id, agent_id, session_id); returns how many."""
        self._check_open()
        return self._deleter.scope((user_id, agent_id, session_id), space)

    def reset(self) -> None:
        """Delete every slot, space and history event in this store. Irreversible."""
        self._check_open()
        self._deleter.reset()

    # -- search ------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        user_id: Scoped = None,
        agent_id: Scoped = None,
        session_id: Scoped = None,
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
        return self._searcher.text(query, k, (user_id, agent_id, session_id), filters, min_score, mode=mode, since=since, until=until,
                                   reranker=reranker, now=now, group_by=group_by, include_superseded=include_superseded,
                                   newest_first=newest_first, count_reads=count_reads, default_reranker=self.reranker)

    def search_vector(self, vector: Any, *, space: str | None = None, k: int = 5, user_id: Scoped = None, agent_id: Scoped = None,
                      session_id: Scoped = None, filters: Mapping[str, Any] | None = None, min_score: float | None = None,
                      count_reads: bool = True) -> list[Hit]:
        """Like :meth:`search`, with a key vector instead of text (any space)."""
        return self.search_vectors(Searcher.one_vector(vector), space=space, k=k, user_id=user_id, agent_id=agent_id, session_id=session_id,
                                   filters=filters, min_score=min_score, count_reads=count_reads)[0]

    def search_vectors(self, vectors: Any, *, space: str | None = None, k: int = 5, user_id: Scoped = None, agent_id: Scoped = None,
                       session_id: Scoped = None, filters: Mapping[str, Any] | None = None, min_score: float | None = None,
                       count_reads: bool = True) -> list[list[Hit]]:
        """:meth:`search_vector` for a batch of query vectors (n, dim): one index search, one SQL
        read and one usage count for all of them. A slot hit by several queries counts one read."""
        self._check_open(flush=False)
        return self._searcher.vectors(vectors, space, k, (user_id, agent_id, session_id), filters, min_score, count_reads)

    # -- reads -------------------------------------------------------------------------------

    def get(self, id: int) -> Slot:
        """The slot with this id (NotFoundError if it does not exist)."""
        self._check_open()
        return self._reader.get(id)

    def list(self, *, user_id: Scoped = None, agent_id: Scoped = None, session_id: Scoped = None, space: str | None = None,
             filters: Mapping[str, Any] | None = None, limit: int = 100, cursor: str | None = None) -> Page:
        """A page of slots in id order. Pass ``page.next_cursor`` back for the next page; pages stay
        stable while slots are added or deleted (keyset pagination, never OFFSET)."""
        self._check_open()
        return self._reader.page((user_id, agent_id, session_id), space, filters, limit, cursor)

    def count(self, *, user_id: Scoped = None, agent_id: Scoped = None, session_id: Scoped = None, space: str | None = None) -> int:
        """How many slots a scope holds (the whole space when no scope is given)."""
        self._check_open()
        return self._reader.count((user_id, agent_id, session_id), space)

    def scopes(self, kind: str = "user_id", *, space: str | None = None, limit: int | None = None) -> list[tuple[str, int]]:
        """The distinct values of one scope field in a space with their slot counts, largest first.

        ``kind`` is ``"user_id"``, ``"agent_id"`` or ``"session_id"``; slots where it is unset are
        not listed. One GROUP BY on an indexed column; pass ``limit`` for spaces with many scopes.
        """
        self._check_open()
        return self._reader.scopes(kind, space, limit)

    def history(self, id: int) -> list[Event]:
        """Every change of a slot, oldest first; still there after the slot is deleted."""
        self._check_open()
        return self._reader.history(id)

    def keys(self, ids: Iterable[int]) -> np.ndarray:
        """The stored key vectors of these slots, as given (not normalised), in order."""
        self._check_open()
        return self._reader.keys(ids)

    # -- maintenance -------------------------------------------------------------------------

    def reindex(self, *, batch_size: int | None = None) -> int:
        """Re-embed every slot of the text space with this store's embedder; returns how many.

        Use after changing the embedding model, or to repair a space whose keys are of two sizes
        (:class:`MixedKeysError`). Atomic: until it ends the space keeps its old keys and model,
        and a rerun after a failure or a kill resumes. Other processes should reopen the store after.
        """
        from .reindex import reembed

        self._check_open()
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH):
            raise InvalidInputError(f"batch_size must be an integer from 1 to {MAX_BATCH:,} (texts embedded at once), or None for Config.embed_batch_size; got {batch_size!r:.40}")
        with self._shared.lock:
            row = self._spaces.row(self.space)
            if row is None:
                return 0
            keys = self._keys
            total = reembed(self._shared.sessions, row.id, self.space, keys.name, keys.embedder.dim, keys.embed,
                            batch_size or self.config.embed_batch_size)
            self._spaces.rekeyed(self.space)
            self._spaces.text_space(create=False)
            return total

    def move_keys(self, key_index: str) -> int:
        """Move the text space's keys to another key index without re-embedding them:
        ``"pgvector"`` (searched in PostgreSQL and shared by every process; the store must be on
        PostgreSQL and its server have pgvector) or back to ``"faiss"``. Returns how many keys
        the new index holds. Other processes pick the change up when they reopen the store (a
        FAISS process keeps its copy until then, and writes its keys to the key table too). Back
        to ``"faiss"`` under ``Config(key_index="auto")`` holds for this store object; a process
        that opens the store later decides again, so keep FAISS with ``key_index="faiss"``. See
        ``Config.key_index``."""
        self._check_open()
        return self._spaces.move_keys(key_index)

    # -- export / import ---------------------------------------------------------------------

    def export(self, path: str | Path) -> int:
        """Write every space, slot (key included) and history event as JSON Lines; returns slots written."""
        from .transfer import export_jsonl

        self._check_open()
        with self._shared.lock:
            return export_jsonl(self._shared.sessions, path)

    def import_(self, path: str | Path) -> int:
        """Load a file written by :meth:`export` into this store, keeping ids; returns slots read.

        The whole file is checked first: on any problem nothing is imported.
        """
        from .transfer import import_jsonl

        self._check_open()
        with self._shared.lock:
            n = import_jsonl(self._shared.sessions, self._shared.engine, path)
            self._spaces.catch_up()
            return n
