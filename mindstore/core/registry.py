"""Spaces, and the derived indexes of each: its FAISS key index and, for text, its BM25 index.

SQL is the truth; an index is loaded, checked and caught up from the change log on first use
(opening a store to list or edit rows never pays for reading millions of keys), saved now and
then, and saved on close.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db import SlotRow, SpaceRow, insert_or_get, table_exists
from ..errors import InvalidInputError, SpaceError
from ..index import KeyIndex
from ..lexical import LexicalIndex
from ..spaces import IndexInfo, SpaceIndex, SpaceInfo
from ..validate import MAX_DIM, MAX_K, check_space_name, check_space_ref, check_text
from . import state
from .keys import TextKeys
from .state import Shared

__all__ = ["AUTO_MOVE_MAX", "PGVECTOR_FROM", "Registry"]

log = logging.getLogger("mindstore")

_MAX_WAIT_S = 10**6  # wait_trained(timeout=...): longer than any training, short of what threading takes
# Config.key_index="auto": a text space of at least this many slots on a PostgreSQL server with
# pgvector is searched there (docs/architecture.md, "Which key index", has the measurements).
PGVECTOR_FROM = 100_000
# ... moved there by the process that opens it, but only up to this many slots: the move (a copy and
# one HNSW build) then fits in the open's time budget of a minute or so. A larger space keeps its
# FAISS key index, and index_info / `mindstore stats` say to move it with `mindstore reindex`.
AUTO_MOVE_MAX = 250_000


class Registry:
    """The spaces of one store: the text space (``space``) and any vector spaces."""

    def __init__(self, shared: Shared, keys: TextKeys, space: str) -> None:
        self._shared = shared
        self._keys = keys
        self.space = space  # the text space
        self._indexes: dict[str, SpaceIndex] = {}
        self._lexical: dict[str, LexicalIndex] = {}  # BM25 indexes, opened by the first hybrid search
        self._moved: dict[int, tuple[Any, Any]] = {}  # space id -> (key table, text table) another process moved it to
        self._advice: dict[str, str] = {}  # space -> what index_info should tell the operator
        self._faiss_chosen: set[str] = set()  # spaces moved back to FAISS here: auto leaves them there

    @property
    def loaded(self) -> list[str]:
        """Names of the spaces whose key index is loaded."""
        return list(self._indexes)

    def row(self, name: str) -> SpaceRow | None:
        with self._shared.sessions() as s:
            return s.scalar(select(SpaceRow).where(SpaceRow.name == name))

    @staticmethod
    def names(s: Session) -> dict[int, str]:
        """Space id -> name, read in ``s``."""
        return dict(s.execute(select(SpaceRow.id, SpaceRow.name)).all())

    def index(self, name: str, *, create_dim: int | None = None, key_source: str | None = None) -> SpaceIndex:
        """The space named, its key index loaded; created when ``create_dim`` is given."""
        check_space_ref(name)
        with self._shared.lock:  # two threads must not build the same index
            sp = self._indexes.get(name)
            if sp is None:
                sp = self._indexes[name] = self._open(name, create_dim, key_source)
            return sp

    def _open(self, name: str, create_dim: int | None, key_source: str | None) -> SpaceIndex:
        row = self.row(name)
        if row is None:
            if create_dim is None:
                raise SpaceError(f"no space named {name!r} in this store; spaces: {[s.name for s in self.infos()]}")
            check_space_name(name)
            key_source = key_source or self._keys.name
            with self._shared.sessions() as s, s.begin():  # another process may create it at the same moment
                row = insert_or_get(s, SpaceRow, {"name": name, "dim": create_dim, "key_source": key_source, "created_at": state.now()}, "name")
            if row.dim != create_dim or row.key_source != key_source:
                raise SpaceError(
                    f"space {name!r} was just created by another process with dim {row.dim} and keys from "
                    f"{row.key_source}; open it with that embedder, or pick another space name"
                )
        table = self._key_table(row)
        if table is not None:
            from ..spaces_pg import PgSpaceIndex

            return PgSpaceIndex(row, self._shared.engine, rebuild=table == "new", context=self._shared.config.index_context)
        config, index_dir = self._shared.config, self._shared.index_dir
        path = index_dir / f"{name}.faiss" if index_dir is not None else None
        return SpaceIndex(row, self._shared.sessions, path, config.device, config.approximate_from, config.train_in_background)

    def _key_table(self, row: SpaceRow) -> str | None:
        """Whether a space's keys are searched in PostgreSQL (see ``Config.key_index``), from a
        table that is ``"existing"`` or ``"new"`` (to fill from the slots); None: FAISS. A space
        with a key table always is; otherwise the text space when the config asks for pgvector,
        or for ``auto`` when the server has it and the space holds PGVECTOR_FROM to AUTO_MOVE_MAX
        slots."""
        engine, choice = self._shared.engine, self._shared.config.key_index
        if engine.dialect.name != "postgresql":
            return None
        from ..spaces_pg import has_key_table, pgvector_available

        if has_key_table(engine, row.id):
            return "existing"
        if row.name != self.space or choice == "faiss" or row.name in self._faiss_chosen:
            return None
        if choice == "auto":
            with self._shared.sessions() as s:
                n = s.scalar(select(func.count()).where(SlotRow.space_id == row.id)) or 0
            if n < PGVECTOR_FROM or not pgvector_available(engine):
                return None
            if n > AUTO_MOVE_MAX:
                self._advice[row.name] = (
                    f"key_index='auto' would search these {n:,} keys in pgvector, but moving them is too long to do while the store "
                    "opens: run `mindstore reindex --key-index pgvector` once (docs/architecture.md, 'Which key index')")
                log.warning("space %r: %s", row.name, self._advice[row.name])
                return None
        return "new"

    def write_keys(self, s: Session, sp: SpaceIndex, ids: Any, keys: np.ndarray | None, *, texts: bool = False, docs: Any = None) -> None:
        """Inside a write's transaction: the keys of ``ids`` (and, with ``texts``, their BM25 terms:
        new slots, or a new text or metadata; ``docs``: their (text, metadata) when the caller has
        them, else they are read back) into the space's key and text tables, where it has them. A
        pgvector space always does; a FAISS copy of the text space on PostgreSQL checks whether
        another process has moved the space there since this one loaded it (its own copy still
        gets the keys after the commit, and serves its searches until it reopens the store)."""
        if getattr(sp, "in_sql", False):
            if keys is not None:
                sp.write_keys(s.connection(), ids, keys)
            if texts:
                sp.write_texts(s.connection(), ids, docs)
            return
        if sp.name != self.space or self._shared.engine.dialect.name != "postgresql":
            return
        from ..lexical_pg import PgLexical
        from ..spaces_pg import keys_moved, moved_keys

        conn = s.connection()
        if not keys_moved(conn, sp.space_id):
            return
        if sp.space_id not in self._moved:
            self._moved[sp.space_id] = (moved_keys(self._shared.engine, sp.space_id, sp.dim),
                                        PgLexical(self._shared.engine, sp.space_id, sp.name, context=self._shared.config.index_context))
        key_table, lexical = self._moved[sp.space_id]
        if keys is not None:
            key_table.add(np.asarray(ids, dtype=np.int64), keys, conn=conn)
        if texts and table_exists(conn, lexical.table):
            # (none yet: the move that made the key table fills it next, under the row lock, after this commit)
            lexical.write(conn, ids, docs)

    def move_keys(self, key_index: str) -> int:
        """Move the text space's keys to ``key_index`` (``pgvector`` or ``faiss``); returns how
        many keys the new index holds. The slots are untouched: the keys come from ``slots.key``."""
        if key_index not in ("pgvector", "faiss"):
            raise InvalidInputError(f"key_index must be 'pgvector' or 'faiss', not {key_index!r:.40}")
        if key_index == "pgvector" and self._shared.engine.dialect.name != "postgresql":
            raise InvalidInputError("the pgvector key index needs a PostgreSQL store (postgresql+psycopg://...); this one is "
                                    f"{self._shared.engine.dialect.name}: keep key_index='faiss'")
        with self._shared.lock:
            row = self.row(self.space)
            if row is None:
                raise SpaceError(f"space {self.space!r} has no slots yet, so no keys to move; add a memory first")
            from ..spaces_pg import PgSpaceIndex, has_key_table

            self._indexes.pop(self.space, None)
            self._lexical.pop(self.space, None)  # BM25 moves with the keys
            if key_index == "pgvector":
                sp = PgSpaceIndex(row, self._shared.engine, rebuild=True, context=self._shared.config.index_context)
            else:
                if has_key_table(self._shared.engine, row.id):
                    PgSpaceIndex.drop_table(self._shared.engine, row.id)
                self._faiss_chosen.add(self.space)
                sp = self.index(self.space)
            self._indexes[self.space] = sp
            return len(sp.index)

    def text_space(self, *, create: bool) -> SpaceIndex | None:
        """The text space; None when it has no slots yet and ``create`` is False. Only creating
        it loads the model (for its dimension)."""
        if self.space in self._indexes:
            return self._indexes[self.space]
        if self.row(self.space) is not None:
            return self.index(self.space)
        if not create:
            return None
        return self.index(self.space, create_dim=self._keys.embedder.dim, key_source=self._keys.name)

    def space_id(self, space: str | None) -> tuple[int, str] | None:
        """(id, name) of the named space or the text space, without loading its key index: for
        reads that only touch SQL (list, count, scopes). None when the text space does not exist."""
        name = self.space if space is None else check_space_ref(space)
        loaded = self._indexes.get(name)
        if loaded is not None:
            return loaded.space_id, name
        row = self.row(name)
        if row is None:
            if name == self.space:
                return None
            raise SpaceError(f"no space named {name!r} in this store; spaces: {[s.name for s in self.infos()]}")
        return row.id, name

    def resolve(self, space: str | None) -> SpaceIndex | None:
        """The named space, or the text space; None when the text space has no slots yet."""
        if space is None or space == self.space:
            return self.text_space(create=False)
        return self.index(space)

    def existing(self, space: str | None, what: str = "key index") -> SpaceIndex:
        """:meth:`resolve`, with a SpaceError when the text space has no slots yet."""
        with self._shared.lock:
            sp = self.resolve(space)
        if sp is None:
            raise SpaceError(f"space {self.space!r} has no slots yet, so no {what}; add a memory first")
        return sp

    def create(self, name: str, *, dim: int, key_source: str) -> SpaceInfo:
        check_space_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
            raise InvalidInputError(f"dim must be an integer from 1 to {MAX_DIM:,}, got {dim!r:.40}")
        check_text(key_source, "key_source")
        if len(key_source) > 500:
            raise InvalidInputError(f"key_source has {len(key_source)} characters, more than 500; name the model or checkpoint briefly")
        with self._shared.lock:
            row = self.row(name)
            if row is not None and (row.dim != dim or row.key_source != key_source):
                raise SpaceError(
                    f"space {name!r} exists with dim {row.dim} and keys from {row.key_source}; "
                    "pick another name or use those settings"
                )
            sp = self.index(name, create_dim=dim, key_source=key_source)
        return SpaceInfo(sp.name, sp.dim, sp.key_source, len(sp.index))

    def infos(self) -> list[SpaceInfo]:
        """Every space with its slot count."""
        with self._shared.sessions() as s:
            counts = dict(s.execute(select(SlotRow.space_id, func.count()).group_by(SlotRow.space_id)).all())
            rows = s.scalars(select(SpaceRow).order_by(SpaceRow.id)).all()
            return [SpaceInfo(r.name, r.dim, r.key_source, counts.get(r.id, 0)) for r in rows]

    def index_info(self, space: str | None, recall_sample: int) -> IndexInfo:
        if isinstance(recall_sample, bool) or not isinstance(recall_sample, int) or not 0 <= recall_sample <= MAX_K:
            raise InvalidInputError(f"recall_sample must be an integer from 0 to {MAX_K} (queries), got {recall_sample!r:.40}")
        with self._shared.lock:
            sp = self.existing(space)
            sp.catch_up()
            info = sp.info(recall_sample=recall_sample)
            advice = None if getattr(sp, "in_sql", False) else self._advice.get(info.space)
            return dataclasses.replace(info, advice=advice) if advice else info

    def wait_trained(self, space: str | None, timeout: float | None) -> bool:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= _MAX_WAIT_S):
            raise InvalidInputError(f"timeout must be a number of seconds from 0 to {_MAX_WAIT_S:,}, or None to wait until the training ends; got {timeout!r:.40}")
        with self._shared.lock:
            sp = self.resolve(space)
        if sp is None:
            return True
        sp.index.join_training(timeout)  # without the lock: the store stays usable meanwhile
        with self._shared.lock:
            return sp.index.wait_trained(0)

    def key_index(self, space: str | None) -> KeyIndex:
        return self.existing(space).index

    def lexical_index(self, space: str | None) -> LexicalIndex:
        with self._shared.lock:
            return self.lexical(self.existing(space, "lexical index"))

    def lexical(self, sp: SpaceIndex) -> LexicalIndex:
        """The BM25 index of a text space, opened (loaded, checked, caught up) on first use; a
        pgvector space's is in PostgreSQL beside its keys (``lexical_pg``)."""
        if getattr(sp, "in_sql", False):
            return sp.lexical
        lex = self._lexical.get(sp.name)
        if lex is None:
            config, index_dir = self._shared.config, self._shared.index_dir
            path = index_dir / f"{sp.name}.bm25" if index_dir is not None else None
            lex = LexicalIndex(sp.space_id, sp.name, self._shared.sessions, path, context=config.index_context, save_every=config.save_index_every)
            self._lexical[sp.name] = lex
        return lex

    def changed(self, sp: SpaceIndex, n: int) -> None:
        """Count ``n`` changes of ``sp`` made by this store, saving its key index now and then."""
        sp.changes_since_save += n
        # A save writes the whole index, so past save_index_every keys it waits for a quarter of
        # the index to change (amortised O(1) a change); catch-up replays the rest on open. A copy
        # is written from a thread, off the writer's path, and while one is still writing no
        # other starts: on a slow disk saves come less often instead of queueing behind it.
        if sp.changes_since_save >= max(self._shared.config.save_index_every, len(sp.index) // 4) and not sp.index.saving:
            sp.save(background=True)

    def catch_up(self) -> None:
        """Bring every key index up to SQL (after an import): the loaded FAISS copies catch up, and
        every key table, loaded here or not, gets the keys and terms of the slots imported into it."""
        for sp in list(self._indexes.values()):
            sp.catch_up()
        if self._shared.engine.dialect.name == "postgresql":
            from ..spaces_pg import PgSpaceIndex, has_key_table

            with self._shared.sessions() as s:
                rows = s.scalars(select(SpaceRow)).all()
            for row in rows:
                if has_key_table(self._shared.engine, row.id):
                    sp = self._indexes.get(row.name)
                    if not getattr(sp, "in_sql", False):
                        sp = PgSpaceIndex(row, self._shared.engine, rebuild=False, context=self._shared.config.index_context)
                    sp.fill_missing()

    def rekeyed(self, name: str) -> None:
        """After a space's keys were replaced in SQL (a re-embedding): rebuild its key index from
        them (a pgvector table now; a FAISS index on its next use)."""
        sp = self._indexes.pop(name, None)
        if self._shared.index_dir is not None:
            (self._shared.index_dir / f"{name}.faiss").unlink(missing_ok=True)
        row = self.row(name)
        if row is not None and self._shared.engine.dialect.name == "postgresql":
            from ..spaces_pg import PgSpaceIndex, has_key_table

            if getattr(sp, "in_sql", False) or has_key_table(self._shared.engine, row.id):
                self._indexes[name] = PgSpaceIndex(row, self._shared.engine, rebuild=True, context=self._shared.config.index_context)

    def emptied(self) -> None:
        """After every space was deleted in SQL: empty and save the indexes, then forget them."""
        if self._shared.engine.dialect.name == "postgresql":
            from ..spaces_pg import drop_key_tables

            drop_key_tables(self._shared.engine)  # every space's, loaded here or not: the spaces are gone
        for sp in self._indexes.values():
            if getattr(sp, "in_sql", False):
                continue
            sp.index.reset()
            sp.index.seq = 0
            sp.save()
        self._indexes.clear()
        for lex in self._lexical.values():
            lex.catch_up()  # the change log is empty now: the index empties and saves
            lex.save()
        self._lexical.clear()

    def close(self) -> None:
        """Save what changed since the last save."""
        for sp in self._indexes.values():
            sp.index.wait_trained()  # a training under way: its lists are what to save
            sp.save_if_dirty()
            sp.index.join_save()  # a save from a thread, if the index has not changed since
        for lex in self._lexical.values():
            lex.save_if_dirty()
