"""Writes: adds (checked against the scope's versions), vector adds and updates.

Every write commits to SQL first, with its history events, and only then changes the derived key
index: the index never holds a key that SQL does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .._gc import gc_paused
from ..db import EventRow, SlotRow, scope_where
from ..db.bulk import Same, insert_columns, insert_with_ids
from ..errors import DatabaseError, EmbedderMismatchError, InvalidInputError, InvalidVectorError, NotFoundError, SpaceError
from ..index import Prepared, one_thread
from ..retention import lock_space
from ..retrieval import occurred_at_value
from ..slots import Scope, Slot, Written, new_slots
from ..spaces import SpaceIndex
from ..validate import check_metadata, check_scope, check_text, check_vectors
from ..versions import Plan, Resolver, plan_writes
from . import state
from .deletes import Deleter
from .keys import TextKeys
from .reads import Reader, to_slot
from .registry import Registry
from .state import Shared, Worker, check_id
from .wal import Checkpoints

__all__ = ["Writer", "metadata_list", "optional_strings"]

_RESTATE_DEPTH = 4  # neighbours a write checks for the same statement
_PREPARE_IN_THREAD = 2048  # keys: smaller adds prepare them inline (a thread hand-off costs more)


def optional_strings(items: Sequence[str | None] | None, n: int, what: str) -> list[str | None]:
    """Labels or texts, one per key (None: none given)."""
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


def metadata_list(metadata: Any, n: int) -> list[dict[str, Any]]:
    """One metadata dict per item, from one dict for all or a list of them."""
    if metadata is None or isinstance(metadata, Mapping):
        # One dict for every item, shared (read-only here: each Slot gets its own copy), so
        # that a bulk insert serialises it to JSON once, not once per row.
        return [check_metadata(metadata)] * n
    if isinstance(metadata, (str, bytes)) or not isinstance(metadata, Sequence) or len(metadata) != n:
        raise InvalidInputError(f"metadata must be one dict, or a list of {n} dicts (one per item)")
    return [check_metadata(m) for m in metadata]


def _values(values: Any, n: int) -> np.ndarray | None:
    """A vector add's values: one float32 row per key, finite."""
    if values is None:
        return None
    try:
        with np.errstate(over="ignore"):  # past float32's range is inf, refused below
            vals = np.ascontiguousarray(values, dtype=np.float32).reshape(n, -1)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError(f"values must be numbers, one row per key ({n} keys): {exc}") from None
    if not np.isfinite(vals).all():
        raise InvalidVectorError("values hold NaN or infinite numbers")
    return vals


def _one_range_event(ids: list[int], texts: list[str | None], metas: list[dict[str, Any]]) -> bool:
    """Whether new slots can share one history event: more than one, contiguous ids (as a write
    holding SQLite's lock gets; concurrent PostgreSQL writers may interleave), no texts (an add
    event records each slot's text) and one metadata dict for all. Ids are distinct, so a span
    of exactly ``len(ids)`` is contiguous."""
    if len(ids) < 2 or max(ids) - min(ids) != len(ids) - 1:
        return False
    m0 = metas[0]
    return all(t is None for t in texts) and all(m is m0 or m == m0 for m in metas)


@dataclass
class _Batch:
    """What one add writes: per item, its plan and where it lands; then, once inserted, the ids."""

    plans: list[Plan]
    texts: Sequence[str | None]
    metas: list[dict[str, Any]]
    at: datetime
    # target[i]: ("old", slot id) to reinforce an existing slot, ("new", j) for the j-th text's
    # new slot, or None to insert row i (a new fact or a new version).
    target: list[tuple[str, int] | None] = field(init=False)
    fresh: list[int] = field(init=False)  # the items inserted as new rows
    new_ids: dict[int, int] = field(default_factory=dict)  # item -> its new slot's id
    event_ids: list[int] = field(default_factory=list)
    versions: int = 0  # reinforce and supersede events written
    reinforced: dict[int, int] = field(default_factory=dict)  # slot id -> times restated
    superseded: dict[int, int] = field(default_factory=dict)  # slot id -> its newer version's id

    def __post_init__(self) -> None:
        self.target = [None if p.kind != "reinforce" else (("old", p.old) if p.old is not None else ("new", p.prior)) for p in self.plans]
        self.fresh = [i for i, t in enumerate(self.target) if t is None]

    @property
    def versioned(self) -> bool:
        return any(p.kind != "add" for p in self.plans)

    def slot_id(self, i: int) -> int:
        """The slot item ``i`` wrote or reinforced."""
        t = self.target[i]
        return self.new_ids[i] if t is None else (t[1] if t[0] == "old" else self.new_ids[t[1]])


class Writer:
    """The writes of one store."""

    def __init__(self, shared: Shared, registry: Registry, keys: TextKeys, reader: Reader, deleter: Deleter, checkpoints: Checkpoints) -> None:
        self._shared = shared
        self._registry = registry
        self._reader = reader
        self._keys = keys
        self._deleter = deleter
        self._checkpoints = checkpoints
        self._prep = Worker("mindstore-prepare", one_thread)  # prepares a bulk add's keys

    def close(self) -> None:
        self._prep.shutdown()

    def texts(self, texts: Any, scope_args: tuple[Any, Any, Any], metadata: Any, dedup: Any, occurred_at: Any,
              resolver: Resolver | None) -> list[Written]:
        """Embed and remember texts in one scope (``MindStore.add_many``)."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError("texts must be a list of strings; use add() for a single text")
        texts = [check_text(t, f"text {i + 1} of {len(texts)}") for i, t in enumerate(texts)]
        if not isinstance(dedup, bool):
            raise InvalidInputError(f"dedup must be True or False, not {dedup!r:.40}")
        scope = check_scope(*scope_args)
        metas = metadata_list(metadata, len(texts))
        if occurred_at is not None:
            when = occurred_at_value(occurred_at)
            dated = {id(m): {**m, "occurred_at": when} for m in metas}  # shared dicts stay shared
            metas = [dated[id(m)] for m in metas]
        if not texts:
            return []
        keys = self._keys.embed(texts)
        with self._shared.lock:
            self._shared.check_open()
            sp = self._registry.text_space(create=True)
            if keys.shape[1] != sp.dim:
                raise EmbedderMismatchError(f"the embedder gives {keys.shape[1]} dims; space {sp.name!r} holds {sp.dim}")
            with gc_paused(len(keys)):  # a big batch builds tens of thousands of objects, no cycles: see mindstore._gc
                return self._write(sp, scope, keys, texts=texts, metas=metas, dedup=dedup, resolver=resolver)

    def vectors(self, keys: Any, space: str, labels: Any, texts: Any, values: Any, scope_args: tuple[Any, Any, Any],
                metadata: Any) -> list[Slot]:
        """Remember slots keyed by given vectors in a vector space (``MindStore.add_vectors``)."""
        with self._shared.lock:
            sp = self._registry.index(space)
            keys = check_vectors(keys, sp.dim, "keys")
            n = len(keys)
            scope = check_scope(*scope_args)
            metas = metadata_list(metadata, n)
            labels = optional_strings(labels, n, "labels")
            texts = optional_strings(texts, n, "texts")
            vals = _values(values, n)
            with gc_paused(n):  # as for texts
                return self._write(sp, scope, keys, texts=texts, metas=metas, labels=labels, values=vals, dedup=False)

    def _write(self, sp: SpaceIndex, scope: Scope, keys: np.ndarray, *, texts: Sequence[str | None], metas: list[dict[str, Any]],
               labels: Sequence[str | None] | None = None, values: np.ndarray | None = None, dedup: bool,
               resolver: Resolver | None = None) -> list[Slot]:
        n = len(keys)
        plans = self._plan(sp, scope, keys, texts, resolver) if dedup else [Plan("add")] * n
        b = _Batch(plans, texts, metas, state.now())
        fresh_keys = keys[b.fresh] if len(b.fresh) != n else keys
        columns = _columns(sp, scope, b, fresh_keys, labels, values)
        # The index's part of the add that changes nothing (normalising; on an IVF, choosing each
        # key's list) runs in a thread while the rows go to SQL; the add itself waits for the
        # commit, so the index never holds a key that SQL does not.
        prep = self._prepare(sp, fresh_keys)
        behind = self._checkpoints.behind(len(b.fresh))
        try:
            with self._shared.sessions() as s, s.begin():
                got = self._insert(s, sp, b, columns, behind, fresh_keys)
        except SQLAlchemyError as exc:
            if prep is not None:
                prep.result()
            raise DatabaseError(f"write failed, nothing was stored: {exc}") from exc
        if behind:
            self._checkpoints.later()
        made = [i for i in b.fresh if b.new_ids[i] not in got]  # a reinforced new slot was read back
        got.update(zip((b.new_ids[i] for i in made), new_slots(
            [b.new_ids[i] for i in made], sp.name, scope, [texts[i] for i in made], [metas[i] for i in made],
            [None] * len(made) if labels is None else [labels[i] for i in made], b.at, Written)))
        # Committed: now the derived index.
        if b.new_ids:
            ids = np.array(list(b.new_ids.values()), dtype=np.int64)
            if prep is not None:
                sp.index.add(ids, prepared=prep.result())
            else:
                sp.index.add(ids, fresh_keys)
        sp.local_events.update(int(e) for e in b.event_ids)
        self._registry.changed(sp, len(b.fresh) + b.versions)
        self._deleter.evict(sp, [scope])
        return _written(b, got) if dedup and b.versioned else [got[b.slot_id(i)] for i in range(n)]

    def _insert(self, s: Session, sp: SpaceIndex, b: _Batch, columns: dict[str, Any], behind: bool, fresh_keys: np.ndarray) -> dict[int, Slot]:
        """Inside the add's transaction: the new rows, their history, the versions they make.
        Returns the reinforced slots, read back (the only rows that changed after their insert;
        new ones are built from what was inserted)."""
        if self._shared.sqlite:  # the write lock first: ids are allocated up front
            lock_space(s, sp.space_id)
        if behind:
            Checkpoints.autocheckpoint_off(s)
        fresh_ids = insert_columns(s, SlotRow, len(b.fresh), columns)
        b.new_ids = dict(zip(b.fresh, fresh_ids))
        # A key table's keys and BM25 terms commit with the slots.
        self._registry.write_keys(s, sp, fresh_ids, fresh_keys, texts=True, docs=list(zip(columns["text"], columns["metadata_"])))
        if _one_range_event(fresh_ids, columns["text"], columns["metadata_"]):
            # Contiguous new slots, no texts, one metadata: their history is one event.
            b.event_ids = insert_with_ids(s, EventRow, [{
                "space_id": sp.space_id, "slot_id": min(fresh_ids), "slot_last": max(fresh_ids), "kind": "add", "old_text": None,
                "new_text": None, "old_metadata": None, "new_metadata": columns["metadata_"][0], "at": b.at}])
        else:
            b.event_ids = insert_columns(s, EventRow, len(b.fresh), {
                "space_id": Same(sp.space_id), "slot_id": fresh_ids, "kind": Same("add"), "old_text": Same(None),
                "new_text": columns["text"], "old_metadata": Same(None), "new_metadata": columns["metadata_"], "at": Same(b.at)})
        if b.versioned:
            events = _versions_in(s, sp, b)
            b.versions = len(events)
            b.event_ids += insert_with_ids(s, EventRow, events)
            if b.reinforced:  # a restatement's metadata may name a speaker or date that BM25 indexes
                self._registry.write_keys(s, sp, list(b.reinforced), None, texts=True)
        if not b.reinforced:
            return {}
        return {r.id: to_slot(r, sp.name) for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(list(b.reinforced)))).all()}

    def _plan(self, sp: SpaceIndex, scope: Scope, keys: np.ndarray, texts: Sequence[str | None], resolver: Resolver | None) -> list[Plan]:
        """Each text's plan against the scope's current memories (see :mod:`mindstore.versions`)."""
        unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
        sp.catch_up()
        with self._shared.sessions() as s:
            scope_ids = np.array(s.scalars(select(SlotRow.id).where(
                *scope_where(sp.space_id, scope, exact=True), SlotRow.superseded_by.is_(None))).all(), dtype=np.int64)
            nearest: list[list[tuple[int, float]]] = [[] for _ in range(len(keys))]
            existing: dict[int, str] = {}
            if len(scope_ids):
                # A few neighbours at any similarity: a restatement reinforces whatever its cosine
                # (casing alone moves it well below 1); a change needs the threshold.
                scores, ids = sp.index.search(unit, min(_RESTATE_DEPTH, len(scope_ids)), subset=scope_ids)
                nearest = [[(int(i), float(c)) for i, c in zip(ids[r], scores[r]) if i >= 0] for r in range(len(keys))]
                wanted = sorted({i for row in nearest for i, _ in row})
                if wanted:
                    existing = dict(s.execute(select(SlotRow.id, SlotRow.text).where(SlotRow.id.in_(wanted))).all())
        return plan_writes([t or "" for t in texts], unit, nearest, existing, self._shared.config.dedup_threshold, resolver)

    def _prepare(self, sp: SpaceIndex, keys: np.ndarray) -> Future[Prepared] | None:
        """``sp.index.prepare(keys)`` started in the prepare thread, for batches big enough to
        gain from it (None: the add prepares them itself)."""
        if len(keys) < _PREPARE_IN_THREAD:
            return None
        return self._prep.submit(sp.index.prepare, keys)

    def update(self, id: Any, text: Any, metadata: Any) -> Slot:
        """Change a slot's text (re-embedded) and/or replace its metadata (``MindStore.update``)."""
        if text is None and metadata is None:
            raise InvalidInputError("nothing to update: pass text=... and/or metadata=...")
        if text is not None:
            check_text(text)
        new_meta = check_metadata(metadata) if metadata is not None else None
        with self._shared.lock:
            row, space = self._reader.row(id)
            sp = self._registry.index(space)
            key = None
            if text is not None and text != row.text and sp.key_source == self._keys.name:
                key = self._keys.embed([text])[0]
            at = state.now()
            values: dict[str, Any] = {"writes": SlotRow.writes + 1, "updated_at": at, "last_access": at}
            if text is not None:
                values["text"] = text
            if new_meta is not None:
                values["metadata_"] = new_meta
            if key is not None:
                values["key"] = key.tobytes()
            with self._shared.sessions() as s, s.begin():
                s.execute(sql_update(SlotRow).where(SlotRow.id == row.id).values(**values))
                if key is not None or new_meta is not None:
                    doc = (text if text is not None else row.text, new_meta if new_meta is not None else row.metadata_)
                    self._registry.write_keys(s, sp, [row.id], None if key is None else key[None, :], texts=True, docs=[doc])
                eid = s.execute(insert(EventRow).returning(EventRow.id), [{
                    "space_id": sp.space_id, "slot_id": row.id, "kind": "update",
                    "old_text": row.text, "new_text": text if text is not None else row.text,
                    "old_metadata": row.metadata_, "new_metadata": new_meta if new_meta is not None else row.metadata_,
                    "at": at,
                }]).scalar_one()
                new_row = s.get(SlotRow, row.id)
            if key is not None:
                sp.index.add(np.array([row.id]), key[None, :])
            sp.local_events.add(int(eid))
            self._registry.changed(sp, 1)
            return to_slot(new_row, space)

    def update_vectors(self, ids: Any, keys: Any, labels: Any, metadata: Any) -> list[Slot]:
        """Replace the keys (and labels, metadata) of vector-space slots (``MindStore.update_vectors``)."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InvalidInputError(f"ids must be a list of slot ids, not {type(ids).__name__}")
        ids = [check_id(i) for i in ids]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("update_vectors takes each slot id once")
        labels = optional_strings(labels, len(ids), "labels") if labels is not None else None
        metas = metadata_list(metadata, len(ids)) if metadata is not None else None
        if not ids:
            return []
        with self._shared.lock:
            sp, rows = self._vector_rows(ids)
            keys = check_vectors(keys, sp.dim, "keys")
            if len(keys) != len(ids):
                raise InvalidVectorError(f"got {len(keys)} keys for {len(ids)} slot ids")
            at = state.now()
            values = [{"id": i, "key": keys[j].tobytes(), "writes": rows[i].writes + 1, "updated_at": at, "last_access": at,
                       **({"label": labels[j]} if labels is not None else {}),
                       **({"metadata_": metas[j]} if metas is not None else {})} for j, i in enumerate(ids)]
            events = [{"space_id": sp.space_id, "slot_id": i, "kind": "update", "old_text": rows[i].text, "new_text": rows[i].text,
                       "old_metadata": rows[i].metadata_, "new_metadata": rows[i].metadata_ if metas is None else metas[j],
                       "at": at} for j, i in enumerate(ids)]
            try:
                with self._shared.sessions() as s, s.begin():
                    s.execute(sql_update(SlotRow), values)
                    self._registry.write_keys(s, sp, ids, keys)
                    eids = s.execute(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True), events).scalars().all()
                    got = {r.id: r for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(ids))).all()}
            except SQLAlchemyError as exc:
                raise DatabaseError(f"update failed, nothing was changed: {exc}") from exc
            sp.index.add(np.array(ids, dtype=np.int64), keys)
            sp.local_events.update(int(e) for e in eids)
            self._registry.changed(sp, len(ids))
            return [to_slot(got[i], sp.name) for i in ids]

    def _vector_rows(self, ids: list[int]) -> tuple[SpaceIndex, dict[int, SlotRow]]:
        """The rows of slots to re-key, all of one vector space, and that space."""
        with self._shared.sessions() as s:
            rows = {r.id: r for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(ids))).all()}
            names = Registry.names(s)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFoundError(f"no slots with ids {missing[:10]}")
        if len({rows[i].space_id for i in ids}) > 1:
            raise InvalidInputError("update_vectors changes slots of one space at a time")
        sp = self._registry.index(names[rows[ids[0]].space_id])
        if sp.key_source == self._keys.name:
            raise SpaceError(f"space {sp.name!r} is keyed by its text embedder; change a slot's text with update()")
        return sp, rows


def _columns(sp: SpaceIndex, scope: Scope, b: _Batch, fresh_keys: np.ndarray, labels: Sequence[str | None] | None,
             values: np.ndarray | None) -> dict[str, Any]:
    """The new rows column by column: most columns hold one value for the whole batch (Same:
    bound once)."""
    fresh = b.fresh
    return {
        "space_id": Same(sp.space_id),
        "user_id": Same(scope.user_id),
        "agent_id": Same(scope.agent_id),
        "session_id": Same(scope.session_id),
        "text": [b.texts[i] for i in fresh],
        "label": Same(None) if labels is None else [labels[i] for i in fresh],
        "key": [k.tobytes() for k in fresh_keys],
        "value": Same(None) if values is None else [values[i].tobytes() for i in fresh],
        "metadata_": [b.metas[i] for i in fresh],
        "reads": Same(0),
        "writes": Same(1),
        "last_access": Same(b.at),
        "created_at": Same(b.at),
        "updated_at": Same(b.at),
    }


def _versions_in(s: Session, sp: SpaceIndex, b: _Batch) -> list[dict[str, Any]]:
    """Inside the add's transaction: reinforce the restated slots (write count, merged metadata)
    and mark the superseded ones (filling ``b.reinforced`` and ``b.superseded``). Returns their
    events."""
    events: list[dict[str, Any]] = []
    merged: dict[int, dict[str, Any]] = {}
    for i, t in enumerate(b.target):
        if t is not None:
            slot_id = b.slot_id(i)
            b.reinforced[slot_id] = b.reinforced.get(slot_id, 0) + 1
            merged.setdefault(slot_id, {}).update(b.metas[i])
            events.append({"space_id": sp.space_id, "slot_id": slot_id, "kind": "reinforce", "old_text": None,
                           "new_text": b.texts[i], "old_metadata": None, "new_metadata": b.metas[i], "at": b.at})
        elif b.plans[i].kind == "supersede":
            p = b.plans[i]
            old = p.old if p.old is not None else b.new_ids[p.prior]
            b.superseded[old] = b.new_ids[i]
            events.append({"space_id": sp.space_id, "slot_id": old, "kind": "supersede", "old_text": None,
                           "new_text": b.texts[i], "old_metadata": None, "new_metadata": {"superseded_by": b.new_ids[i]}, "at": b.at})
    if b.reinforced:
        before = dict(s.execute(select(SlotRow.id, SlotRow.metadata_).where(SlotRow.id.in_(list(b.reinforced)))).all())
        for slot_id, times in b.reinforced.items():
            values: dict[str, Any] = {"writes": SlotRow.writes + times, "last_access": b.at}
            meta = {**(before.get(slot_id) or {}), **merged[slot_id]}
            if meta != (before.get(slot_id) or {}):  # a restatement's new metadata is kept, newest wins per key
                values.update(metadata_=meta, updated_at=b.at)
            s.execute(sql_update(SlotRow).where(SlotRow.id == slot_id).values(**values))
    for old, new in b.superseded.items():
        s.execute(sql_update(SlotRow).where(SlotRow.id == old).values(superseded_by=new))
    return events


def _written(b: _Batch, got: dict[int, Slot]) -> list[Written]:
    """Each item's result, saying what its write did to the scope's versions."""
    out = []
    for i, p in enumerate(b.plans):
        slot_id = b.slot_id(i)
        slot = got[slot_id]
        if not isinstance(slot, Written):
            slot = Written(**{f.name: getattr(slot, f.name) for f in fields(Slot)})
        if slot_id in b.superseded:
            slot = replace(slot, superseded_by=b.superseded[slot_id])
        if p.kind == "reinforce":
            slot = replace(slot, change="reinforced")
        elif p.kind == "supersede":
            slot = replace(slot, change="superseded", supersedes=p.old if p.old is not None else b.new_ids[p.prior])
        out.append(slot)
    return out
