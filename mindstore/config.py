"""One settings object with defaults: ``MindStore()`` needs none of it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from pathlib import Path

import platformdirs
from sqlalchemy.engine import make_url

__all__ = ["Config", "default_url", "default_index_dir"]


@dataclass(frozen=True)
class Config:
    """Tunables of a store. Every field has a default that suits a chat application."""

    dedup_threshold: float = 0.95
    """Cosine similarity at or above which an added text is a near-duplicate of a memory in its
    scope: the same statement reinforces that memory, a changed one supersedes it (a new slot;
    the old one is kept but skipped by searches). See :mod:`mindstore.versions`."""
    time_weight: float = 0.2
    """How much a search favours slots whose ``occurred_at`` lies in the time the question names
    ("last Saturday", "in May 2023"), on the fused score's scale of 0 to 1. 0 ignores it."""
    version_threshold: float = 0.6
    """Cosine similarity at or above which two hits of one search count as versions of one fact:
    the newer one ranks first (the older first when the question asks for the first time)."""
    change_threshold: float = 0.35
    """The same, when the newer of the two says that something changed ("now", "instead", "no
    longer", "started", "quit", ...): a reworded update is often far from the fact it replaces."""
    embed_batch_size: int = 64
    """Texts embedded per model call in ``add_many`` and ``reindex``."""
    index_dir: Path | None = None
    """Where key index files live; default: beside a SQLite file, else the user cache dir."""
    device: str = "auto"
    """``auto`` (GPU when present), ``cpu`` or ``cuda``: for FAISS and the embedder."""
    key_index: str = "auto"
    """Where the text space's keys are searched: ``faiss`` (a copy in each process, kept in step
    with SQL: the fastest on one host, and the only choice on SQLite), ``pgvector`` (on a
    PostgreSQL store: an HNSW index in the database, written with the slots and shared by every
    process, which then holds no copy; see docs/architecture.md, "Which key index"), or ``auto``:
    pgvector when the store is on PostgreSQL, the server has pgvector and the text space holds
    at least ``mindstore.core.registry.PGVECTOR_FROM`` slots when it is opened, else FAISS. The
    process that opens it moves the keys then (a copy and one HNSW build), up to
    ``AUTO_MOVE_MAX`` slots; a larger FAISS space stays as it is and ``mindstore stats`` says to
    run ``mindstore reindex --key-index pgvector``. A space once moved to pgvector stays there
    for every process; processes that still hold a FAISS copy write their keys to it too
    (``mindstore reindex --key-index faiss`` moves it back). Vector spaces (neural keys) always
    use FAISS."""
    save_index_every: int = 10_000
    """Save the key index after this many changes, or a quarter of its size if larger (it is also
    saved on close; changes since the last save are replayed from the change log on open)."""
    approximate_from: int | None = 100_000
    """Spaces with at least this many keys switch from an exact (flat) key index to an approximate
    one (IVF): searches scan a few thousand keys and single-key writes cost O(1), so search time
    and a neural memory's read and write steps stay flat at millions of slots. The write that
    crosses the size (and one each time the space grows 8x after) starts training the lists,
    which takes seconds (in the background: see ``train_in_background``). The default is where
    a flat scan stops being cheap and the IVF already keeps recall@10 at 1.000 (measured:
    docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). ``mindstore stats`` measures an index's recall. None keeps every search
    exact at any size."""
    search_mode: str = "hybrid"
    """How ``search`` ranks text slots unless a call says otherwise: ``hybrid`` (dense and BM25,
    fused), ``dense`` or ``lexical``."""
    fusion: str = "weighted"
    """How hybrid search merges the dense and the BM25 ranking: ``weighted`` (a convex combination
    of the two scores, each min-max scaled over the candidates) or ``rrf`` (reciprocal rank fusion)."""
    dense_weight: float = 0.5
    """The dense score's share in ``weighted`` fusion (0: BM25 alone, 1: dense alone)."""
    fusion_depth: int = 30
    """How many candidates each index proposes to a hybrid search before fusion."""
    rerank_depth: int = 20
    """How many fused candidates a cross-encoder reranks (at least ``k``)."""
    index_context: bool = True
    """Fold a slot's speaker and date (metadata ``speaker``/``name`` and ``occurred_at``) into the
    text the lexical index sees (the slot's text is kept as given). The dense key is the text
    alone: folded into it, the context lowers dense recall (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    usage_flush_s: float = 1.0
    """Searches count their hits as reads in memory and write them to SQL at most this many
    seconds later (and before any other call of the store, and on close): one write per second
    instead of one per search, made from a thread so that no search waits for it. Usage is
    advisory (it orders eviction and LRUA writes), so a process killed in between loses at most
    this much of its read counts, never a write. 0 writes with every search, before it returns."""

    train_in_background: bool = True
    """Train the approximate index's lists in a background thread (with a progress bar past 50k
    keys) while the current index keeps serving every key; changes made meanwhile are replayed
    before the swap, and ``close()`` waits for a training under way and saves what it built.
    False trains inside the write that crosses the size, which then takes seconds and makes a
    large fill slower (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    capacity: int | None = None
    """Most slots a space keeps; past it the least-used slots are evicted (least recently accessed,
    then least often, then oldest), each recorded in history as an ``evict`` event. None: no limit."""
    capacity_per_scope: int | None = None
    """Most slots one scope (the same user_id, agent_id and session_id) keeps in a space; evicts
    like ``capacity`` but only within the scope written to. None: no limit."""
    ttl: float | None = None
    """Seconds a slot lives without being read or written; expired slots are evicted on the next
    write or search of their space. None: forever."""

    def __post_init__(self) -> None:
        from .errors import InvalidInputError
        from .retrieval import FUSIONS, MODES
        from .validate import MAX_BATCH, MAX_K

        self._check_types(InvalidInputError)
        for name in ("dedup_threshold", "version_threshold", "change_threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
                raise InvalidInputError(f"{name} must be a number in (0, 1], got {v!r}; pass dedup=False to add() to store every text as new")
        if not 1 <= self.embed_batch_size <= MAX_BATCH:
            raise InvalidInputError(f"embed_batch_size must be an integer from 1 to {MAX_BATCH:,} (texts embedded at once)")
        if self.approximate_from is not None and (isinstance(self.approximate_from, bool) or not isinstance(self.approximate_from, int) or self.approximate_from < 1000):
            raise InvalidInputError("approximate_from must be None or an integer of at least 1000 (keys)")
        if self.search_mode not in MODES:
            raise InvalidInputError("search_mode must be 'hybrid', 'dense' or 'lexical'")
        if self.fusion not in FUSIONS or not 0.0 <= self.dense_weight <= 1.0:
            raise InvalidInputError("fusion must be 'weighted' or 'rrf', and dense_weight a number from 0 to 1")
        if isinstance(self.time_weight, bool) or not isinstance(self.time_weight, (int, float)) or not 0.0 <= self.time_weight <= 1.0:
            raise InvalidInputError(f"time_weight must be a number from 0 to 1, got {self.time_weight!r}")
        if not 1 <= self.fusion_depth <= MAX_K or not 1 <= self.rerank_depth <= MAX_K:
            raise InvalidInputError(f"fusion_depth and rerank_depth must be integers from 1 to {MAX_K:,} (candidates)")
        for name in ("capacity", "capacity_per_scope"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InvalidInputError(f"{name} must be None or a positive integer (slots)")
        if self.ttl is not None and (isinstance(self.ttl, bool) or not isinstance(self.ttl, (int, float)) or not 0 < self.ttl <= _MAX_TTL_S):
            raise InvalidInputError(f"ttl must be a positive number of seconds up to {_MAX_TTL_S:,} (100 years), or None to keep slots forever")
        if isinstance(self.usage_flush_s, bool) or not isinstance(self.usage_flush_s, (int, float)) or not self.usage_flush_s >= 0:
            raise InvalidInputError("usage_flush_s must be a number of seconds, 0 or more")
        if self.key_index not in KEY_INDEXES:
            raise InvalidInputError(f"key_index must be one of {', '.join(map(repr, KEY_INDEXES))}, not {self.key_index!r:.40}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InvalidInputError("device must be 'auto', 'cpu' or 'cuda'")
        if self.save_index_every < 1:
            raise InvalidInputError("save_index_every must be a positive integer (changes)")

    def _check_types(self, error: type[Exception]) -> None:
        """Every field has the type its annotation names, so a wrong one fails here, not at first use."""
        kinds = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,), "Path": (str, os.PathLike)}
        for f in fields(self):
            value = getattr(self, f.name)
            names = [n.strip() for n in str(f.type).split("|")]
            if value is None and "None" in names:
                continue
            allowed = tuple(t for n in names if n != "None" for t in kinds[n])
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                what = " or ".join({"float": "a number", "int": "an integer", "str": "a string", "bool": "True or False", "Path": "a folder path", "None": "None"}[n] for n in names)
                raise error(f"Config.{f.name} must be {what}, got {value!r:.40}")
            if "Path" in names and "\x00" in str(value):
                raise error(f"Config.{f.name} contains a NUL character; give a folder path without one")


_MAX_TTL_S = 100 * 365 * 86_400  # ttl: past it, "now - ttl" leaves the calendar; None is forever
KEY_INDEXES = ("auto", "faiss", "pgvector")  # Config.key_index


def default_url() -> str:
    """``$MINDSTORE_DB`` if set, else a SQLite file in the user data directory."""
    env = os.environ.get("MINDSTORE_DB")
    if env:
        return env
    path = Path(platformdirs.user_data_dir("mindstore")) / "mindstore.db"
    return f"sqlite:///{path}"


def default_index_dir(url: str) -> Path | None:
    """Beside the SQLite file (``memory.db.index/``); for servers, one folder per database URL
    under the user cache dir. None for in-memory SQLite (the index is rebuilt on open)."""
    from .db import sqlite_path

    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        return None if path is None else path.with_name(path.name + ".index")
    key = hashlib.sha1(u.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("mindstore")) / "indexes" / key
