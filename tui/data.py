"""What the TUI reads from a store beyond the public verbs: scope counts, undo records, formatting.

Everything here runs in worker threads (never on the UI thread), so a slow or lost database only
shows up as a notification, never as a frozen screen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from mindstore import DatabaseError, MindStore, MindStoreError, Scope, Slot

__all__ = [
    "DeletedSlots",
    "ScopeCount",
    "ScopeFilter",
    "SpaceTree",
    "capture_for_undo",
    "describe_error",
    "fmt_scope",
    "fmt_time",
    "load_space_tree",
    "restore",
    "slot_title",
]

SCOPE_KINDS = ("user_id", "agent_id", "session_id")
MAX_SCOPES_SHOWN = 200  # per kind and space; the rest are summarised as "N more"
MAX_UNDO = 10_000  # a scope delete larger than this cannot be undone from the TUI


@dataclass(frozen=True)
class ScopeFilter:
    """What the browse table shows: a space and, optionally, one user, agent or session."""

    space: str
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.session_id)

    @property
    def is_whole_space(self) -> bool:
        return self.scope == Scope()

    def kwargs(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}

    def describe(self) -> str:
        parts = [f"{k.removesuffix('_id')} {v!r}" for k, v in self.kwargs().items() if v is not None]
        return f"{self.space}: " + (", ".join(parts) if parts else "all slots")


@dataclass(frozen=True)
class ScopeCount:
    kind: str  # user_id, agent_id or session_id
    value: str
    count: int


@dataclass(frozen=True)
class SpaceTree:
    """One space with its slot count and its users, agents and sessions, largest first."""

    name: str
    key_source: str
    count: int
    scopes: dict[str, list[ScopeCount]] = field(default_factory=dict)
    more: dict[str, int] = field(default_factory=dict)  # kind -> scopes not listed


def load_space_tree(store: MindStore) -> list[SpaceTree]:
    """Every space with its scopes and counts: one GROUP BY per scope kind, on indexed columns."""
    # MindStore has no public call listing distinct scopes yet; this reads them through the
    # store's own session factory with the same indexed columns its scoped queries use.
    from sqlalchemy import func, select

    from mindstore.db import SlotRow, SpaceRow

    out: list[SpaceTree] = []
    infos = store.spaces()
    with store._sessions() as s:
        ids = dict(s.execute(select(SpaceRow.name, SpaceRow.id)).all())
        for info in infos:
            scopes: dict[str, list[ScopeCount]] = {}
            more: dict[str, int] = {}
            for kind in SCOPE_KINDS:
                col = getattr(SlotRow, kind)
                n = func.count()
                rows = s.execute(
                    select(col, n).where(SlotRow.space_id == ids[info.name], col.is_not(None))
                    .group_by(col).order_by(n.desc(), col).limit(MAX_SCOPES_SHOWN + 1)
                ).all()
                scopes[kind] = [ScopeCount(kind, v, c) for v, c in rows[:MAX_SCOPES_SHOWN]]
                if len(rows) > MAX_SCOPES_SHOWN:
                    more[kind] = (s.scalar(select(func.count(func.distinct(col))).where(SlotRow.space_id == ids[info.name])) or 0) - MAX_SCOPES_SHOWN
            out.append(SpaceTree(info.name, info.key_source, info.count, scopes, more))
    return out


@dataclass(frozen=True)
class DeletedSlots:
    """The content of the last delete, enough to add it back (with new ids)."""

    what: str  # "slot 12" or "user 'alice' in chat"
    slots: list[Slot]
    restorable: bool  # False when some slot has no text (vector slots) or the scope was too big
    reason: str = ""


def capture_for_undo(store: MindStore, *, slot: Slot | None = None, where: ScopeFilter | None = None) -> DeletedSlots:
    """Read what a delete is about to remove, so that undo can add it back."""
    if slot is not None:
        ok = slot.text is not None and slot.space == store.space
        return DeletedSlots(f"slot {slot.id}", [slot], ok, "" if ok else "it has no text to re-embed")
    assert where is not None
    total = store.count(space=where.space, **where.kwargs())
    if total > MAX_UNDO:
        return DeletedSlots(where.describe(), [], False, f"it holds {total:,} slots (undo keeps at most {MAX_UNDO:,})")
    slots: list[Slot] = []
    cursor = None
    while True:
        page = store.list(space=where.space, limit=1000, cursor=cursor, **where.kwargs())
        slots.extend(page.slots)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ok = where.space == store.space and all(s.text is not None for s in slots)
    return DeletedSlots(where.describe(), slots, ok, "" if ok else "its slots have no text to re-embed")


def restore(store: MindStore, deleted: DeletedSlots) -> list[Slot]:
    """Add the deleted slots back: same text, metadata and scope, new ids (dedup off)."""
    groups: dict[Scope, list[Slot]] = {}
    for s in deleted.slots:
        groups.setdefault(s.scope, []).append(s)
    out: list[Slot] = []
    for scope, slots in groups.items():
        out += store.add_many(
            [s.text or "" for s in slots], metadata=[s.metadata for s in slots], dedup=False, **scope.as_dict()
        )
    return out


def describe_error(exc: BaseException) -> str:
    """A one-line message for a person, never a traceback."""
    if isinstance(exc, DatabaseError):
        return f"Database problem: {exc}"
    if isinstance(exc, MindStoreError):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"Lost the connection to the database ({first}). Check the database and try again."
    return f"Unexpected error: {type(exc).__name__}: {exc}"


def fmt_time(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt is not None else "-"


def fmt_scope(scope: Scope) -> str:
    parts = [f"{k[0]}:{v}" for k, v in (("user", scope.user_id), ("agent", scope.agent_id), ("session", scope.session_id)) if v is not None]
    return " ".join(parts) if parts else "-"


def slot_title(slot: Slot, width: int = 60) -> str:
    """Text, or label, on one line and cut to ``width``."""
    text = slot.text if slot.text is not None else (f"[label] {slot.label}" if slot.label else "(no text)")
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
