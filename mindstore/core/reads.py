"""Plain reads: rows to values, get, list (keyset pages), count, scopes, history, keys, usage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..db import EventRow, SlotRow, scope_where
from ..errors import InvalidInputError, NotFoundError
from ..filters import compile_filter
from ..retention import LEAST_USED
from ..slots import Event, Page, Scope, Slot, Usage
from ..spaces import keys_from_bytes
from ..validate import MAX_K, check_k, check_scope
from .registry import Registry
from .state import Shared, aware, check_id

__all__ = ["Reader", "to_slot"]

_USAGE_BINS = {"1": (0, 1), "2-3": (2, 3), "4-9": (4, 9), "10-99": (10, 99), "100+": (100, None)}


def to_slot(row: Any, space: str, unwritten_reads: int = 0, accessed: datetime | None = None) -> Slot:
    """The value a caller gets for a slot row (an ORM row or a Core row with ``metadata_``)."""
    return Slot(
        id=row.id,
        space=space,
        scope=Scope(row.user_id, row.agent_id, row.session_id),
        text=row.text,
        metadata=dict(row.metadata_ or {}),
        label=row.label,
        usage=Usage(row.reads + unwritten_reads, row.writes, accessed or aware(row.last_access)),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        superseded_by=row.superseded_by,
    )


def _check_cursor(cursor: Any) -> int:
    if cursor is None:
        return 0
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not isinstance(cursor, str) or not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 or int(cursor) >= 2**63:
        raise InvalidInputError(f"cursor {cursor!r:.40} is not one this store handed out; pass page.next_cursor")
    return int(cursor)


class Reader:
    """Reads that touch SQL only (no key index is loaded for them)."""

    def __init__(self, shared: Shared, registry: Registry) -> None:
        self._shared = shared
        self._registry = registry

    def row(self, id: Any) -> tuple[SlotRow, str]:
        """A slot's row and its space's name, or NotFoundError."""
        with self._shared.sessions() as s:
            row = s.get(SlotRow, check_id(id))
            if row is None:
                raise NotFoundError(f"no slot with id {id}; see the ids with `list()` or `mindstore list`")
            return row, Registry.names(s)[row.space_id]

    def get(self, id: Any) -> Slot:
        return to_slot(*self.row(id))

    def page(self, scope_args: tuple[Any, Any, Any], space: str | None, filters: Mapping[str, Any] | None, limit: Any, cursor: Any) -> Page:
        """A keyset page of slots in id order, after ``cursor``."""
        scope = check_scope(*scope_args)
        pred = compile_filter(filters)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_K:
            raise InvalidInputError(f"limit must be an integer from 1 to {MAX_K}")
        after = _check_cursor(cursor)
        ref = self._registry.space_id(space)
        if ref is None:
            return Page([], None)
        where = scope_where(ref[0], scope)
        out: list[SlotRow] = []
        with self._shared.sessions() as s:
            while len(out) < limit:
                batch = s.scalars(select(SlotRow).where(*where, SlotRow.id > after).order_by(SlotRow.id).limit(limit if pred is None else max(limit, 500))).all()
                if not batch:
                    break
                for r in batch:
                    after = r.id
                    if pred is None or pred(r.metadata_ or {}):
                        out.append(r)
                        if len(out) == limit:
                            break
            more = len(out) == limit and s.scalar(select(SlotRow.id).where(*where, SlotRow.id > out[-1].id).limit(1)) is not None
        return Page([to_slot(r, ref[1]) for r in out], str(out[-1].id) if more else None)

    def count(self, scope_args: tuple[Any, Any, Any], space: str | None) -> int:
        scope = check_scope(*scope_args)
        ref = self._registry.space_id(space)
        if ref is None:
            return 0
        with self._shared.sessions() as s:
            return s.scalar(select(func.count()).where(*scope_where(ref[0], scope))) or 0

    def scopes(self, kind: Any, space: str | None, limit: Any) -> list[tuple[str, int]]:
        if kind not in ("user_id", "agent_id", "session_id"):
            raise InvalidInputError(f"kind must be 'user_id', 'agent_id' or 'session_id', not {kind!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer or None, got {limit!r}")
        ref = self._registry.space_id(space)
        if ref is None:
            return []
        col = getattr(SlotRow, kind)
        n = func.count()
        query = select(col, n).where(SlotRow.space_id == ref[0], col.is_not(None)).group_by(col).order_by(n.desc(), col)
        with self._shared.sessions() as s:
            return [(v, int(c)) for v, c in s.execute(query.limit(limit) if limit else query).all()]

    def history(self, id: Any) -> list[Event]:
        id = check_id(id)
        with self._shared.sessions() as s:
            rows = list(s.scalars(select(EventRow).where(EventRow.slot_id == id, EventRow.slot_last.is_(None))).all())
            # A bulk add's range event: the one starting at or before this id (ranges never overlap).
            span = s.scalars(select(EventRow).where(EventRow.slot_last.is_not(None), EventRow.slot_id <= id)
                             .order_by(EventRow.slot_id.desc()).limit(1)).first()
        if span is not None and span.slot_last >= id:
            rows.append(span)
        if not rows:
            raise NotFoundError(f"no slot with id {id} was ever stored here")
        rows.sort(key=lambda r: r.id)
        return [Event(r.id, id, r.kind, r.old_text, r.new_text, r.old_metadata, r.new_metadata, aware(r.at)) for r in rows]

    def keys(self, ids: Any) -> np.ndarray:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InvalidInputError(f"ids must be a list of slot ids, not {type(ids).__name__}")
        ids = [check_id(i) for i in ids]
        with self._shared.sessions() as s:
            rows = dict(s.execute(select(SlotRow.id, SlotRow.key).where(SlotRow.id.in_(ids))).all())
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFoundError(f"no slots with ids {missing[:10]}")
        dims = {len(rows[i]) // 4 for i in ids}
        if len(dims) > 1:
            raise InvalidInputError("those slots belong to spaces of different dimensions")
        return keys_from_bytes([rows[i] for i in ids], dims.pop() if dims else 0)

    def least_used(self, n: Any, space: str | None) -> list[int]:
        check_k(n)
        ref = self._registry.space_id(space)
        if ref is None:
            return []
        with self._shared.sessions() as s:
            return [int(i) for i in s.scalars(select(SlotRow.id).where(SlotRow.space_id == ref[0]).order_by(*LEAST_USED).limit(n)).all()]

    def usage_histogram(self, space: str | None) -> dict[str, int]:
        ref = self._registry.space_id(space)
        if ref is None:
            return dict.fromkeys(_USAGE_BINS, 0)
        uses = SlotRow.reads + SlotRow.writes
        with self._shared.sessions() as s:
            return {
                name: int(s.scalar(select(func.count()).where(SlotRow.space_id == ref[0], uses >= lo, *([uses <= hi] if hi else []))) or 0)
                for name, (lo, hi) in _USAGE_BINS.items()
            }
