"""Forgetting: deletes, retention's evictions and reset. SQL first, in one transaction, then the
derived key index; every slot removed leaves a history event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import EventRow, SlotRow, SpaceRow, scope_where
from ..errors import DatabaseError, InvalidInputError, NotFoundError
from ..retention import Retention, any_expired, lock_space, to_evict
from ..slots import Scope
from ..spaces import SpaceIndex
from ..validate import check_scope
from . import state
from .registry import Registry
from .state import Shared, check_id

__all__ = ["Deleter"]

_CHUNK = 10_000  # ids in one IN (...) list


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    return (ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK))


def _delete_in(s: Session, sp: SpaceIndex, rows: Sequence[SlotRow], kind: str) -> list[int]:
    """Delete ``rows`` and log one ``kind`` event each, inside the caller's transaction."""
    at = state.now()
    eids = s.execute(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True), [
        {"space_id": sp.space_id, "slot_id": r.id, "kind": kind, "old_text": r.text, "new_text": None,
         "old_metadata": r.metadata_, "new_metadata": None, "at": at}
        for r in rows
    ]).scalars().all()
    for part in _chunks([r.id for r in rows]):
        s.execute(sql_delete(SlotRow).where(SlotRow.id.in_(part)))
    return [int(e) for e in eids] + _restore_versions(s, sp, rows, at)


def _restore_versions(s: Session, sp: SpaceIndex, rows: Sequence[SlotRow], at: datetime) -> list[int]:
    """After ``rows`` were deleted: a slot they superseded is superseded by what superseded
    them, or, when they were the newest version, current again (a ``restore`` event each)."""
    gone = {r.id: r.superseded_by for r in rows}
    older = [row for part in _chunks(list(gone)) for row in s.execute(select(SlotRow.id, SlotRow.superseded_by).where(
        SlotRow.space_id == sp.space_id, SlotRow.superseded_by.in_(part))).all()]
    events = []
    for slot_id, by in older:
        newer = gone[by]
        while newer in gone:  # a chain of versions deleted together
            newer = gone[newer]
        s.execute(sql_update(SlotRow).where(SlotRow.id == slot_id).values(superseded_by=newer))
        events.append({"space_id": sp.space_id, "slot_id": slot_id, "kind": "restore" if newer is None else "supersede", "old_text": None,
                       "new_text": None, "old_metadata": {"superseded_by": by}, "new_metadata": {"superseded_by": newer}, "at": at})
    if not events:
        return []
    return [int(e) for e in s.execute(insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True), events).scalars().all()]


class Deleter:
    """Deletes of one store, and its retention policy (``Config.capacity``,
    ``capacity_per_scope``, ``ttl``)."""

    def __init__(self, shared: Shared, registry: Registry) -> None:
        self._shared = shared
        self._registry = registry
        config = shared.config
        self.retention = Retention(config.capacity, config.capacity_per_scope, config.ttl)
        self._expiry = Retention(ttl=config.ttl)  # what a search applies before it runs

    def many(self, ids: Any) -> int:
        """Delete these slots, in any spaces, in one transaction: all or none."""
        if isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Iterable):
            raise InvalidInputError("ids must be a list of slot ids; use delete() for one")
        order = list(dict.fromkeys(check_id(i) for i in ids))
        if not order:
            return 0
        with self._shared.lock:
            with self._shared.sessions() as s:
                rows = [r for part in _chunks(order) for r in s.scalars(select(SlotRow).where(SlotRow.id.in_(part))).all()]
                names = Registry.names(s)
            missing = set(order) - {r.id for r in rows}
            if missing:
                shown = ", ".join(map(str, sorted(missing)[:5])) + (" ..." if len(missing) > 5 else "")
                raise NotFoundError(f"no slot with id {shown}; nothing was deleted (see the ids with `list()` or `mindstore list`)")
            by_space: dict[int, list[SlotRow]] = {}
            for r in rows:
                by_space.setdefault(r.space_id, []).append(r)
            spaces = {sid: self._registry.index(names[sid]) for sid in by_space}
            try:
                with self._shared.sessions() as s, s.begin():
                    eids = {sid: _delete_in(s, spaces[sid], part, "delete") for sid, part in by_space.items()}
            except SQLAlchemyError as exc:
                raise DatabaseError(f"delete failed, nothing was deleted: {exc}") from exc
            return sum(self._deleted(spaces[sid], [r.id for r in part], eids[sid]) for sid, part in by_space.items())

    def scope(self, scope_args: tuple[Any, Any, Any], space: str | None) -> int:
        """Delete every slot of a scope (one of its fields at least)."""
        scope = check_scope(*scope_args)
        if scope == Scope():
            raise InvalidInputError("delete_all needs user_id, agent_id or session_id; use reset() to empty the store")
        with self._shared.lock:
            sp = self._registry.resolve(space)
            if sp is None:
                return 0
            with self._shared.sessions() as s:
                rows = s.scalars(select(SlotRow).where(*scope_where(sp.space_id, scope))).all()
            if not rows:
                return 0
            with self._shared.sessions() as s, s.begin():
                eids = _delete_in(s, sp, rows, "delete")
            return self._deleted(sp, [r.id for r in rows], eids)

    def _deleted(self, sp: SpaceIndex, ids: list[int], eids: list[int]) -> int:
        """After the commit: drop ``ids`` from the derived index."""
        sp.index.remove(np.array(ids, dtype=np.int64))
        sp.local_events.update(eids)
        self._registry.changed(sp, len(ids))
        return len(ids)

    def evict(self, sp: SpaceIndex, scopes: Iterable[Scope] = (), *, ttl_only: bool = False) -> int:
        """Apply the retention policy to a space after a write to ``scopes`` (``ttl_only``: only
        the time to live, before a search); returns how many slots were evicted (each logged as
        ``evict``)."""
        policy = self._expiry if ttl_only else self.retention
        if not policy.active:
            return 0
        if ttl_only:
            with self._shared.sessions() as s:  # most searches find nothing expired: no write lock then
                if not any_expired(s, sp.space_id, policy.ttl, state.now()):
                    return 0
        with self._shared.sessions() as s, s.begin():
            lock_space(s, sp.space_id)
            ids = to_evict(s, sp.space_id, policy, scopes, state.now())
            rows = s.scalars(select(SlotRow).where(SlotRow.id.in_(ids))).all() if ids else []
            eids = _delete_in(s, sp, rows, "evict") if rows else []
        return self._deleted(sp, [r.id for r in rows], eids) if rows else 0

    def reset(self) -> None:
        """Delete every slot, space and history event."""
        with self._shared.lock:
            with self._shared.sessions() as s, s.begin():
                s.execute(sql_delete(EventRow))
                s.execute(sql_delete(SlotRow))
                s.execute(sql_delete(SpaceRow))
            self._registry.emptied()
