"""What the TUI reads from a store and how it shows it: scope counts, undo records, formatting.

Everything here runs in worker threads (never on the UI thread), so a slow or lost database only
shows up as a notification, never as a frozen screen.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

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
    "fmt_score",
    "fmt_time",
    "load_space_tree",
    "one_at_a_time",
    "restore",
    "slot_title",
]

SCOPE_KINDS = ("user_id", "agent_id", "session_id")
MAX_SCOPES_SHOWN = 200  # per kind and space, largest first; the sidebar says when there are more
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
    more: dict[str, bool] = field(default_factory=dict)  # kind -> some scopes are not listed


def load_space_tree(store: MindStore) -> list[SpaceTree]:
    """Every space with its largest users, agents and sessions and their slot counts."""
    out: list[SpaceTree] = []
    for info in store.spaces():
        scopes: dict[str, list[ScopeCount]] = {}
        more: dict[str, bool] = {}
        for kind in SCOPE_KINDS:
            rows = store.scopes(kind, space=info.name, limit=MAX_SCOPES_SHOWN + 1)
            scopes[kind] = [ScopeCount(kind, v, c) for v, c in rows[:MAX_SCOPES_SHOWN]]
            more[kind] = len(rows) > MAX_SCOPES_SHOWN
        out.append(SpaceTree(info.name, info.key_source, info.count, scopes, more))
    return out


@dataclass(frozen=True)
class DeletedSlots:
    """The content of the last delete, enough to put it back as it was: ids, keys, usage, times."""

    what: str  # "slot 12" or "user 'alice' in chat"
    slots: list[Slot]
    restorable: bool  # False when some slot has no text (vector slots) or the scope was too big
    reason: str = ""
    keys: Any = None  # the slots' key vectors (n, dim), read before the delete


def capture_for_undo(store: MindStore, *, slot: Slot | None = None, where: ScopeFilter | None = None) -> DeletedSlots:
    """Read what a delete is about to remove (its keys included), so that undo can put it back."""
    if slot is not None:
        ok = slot.text is not None and slot.space == store.space
        return DeletedSlots(f"slot {slot.id}", [slot], ok, "" if ok else "it has no text", store.keys([slot.id]) if ok else None)
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
    keys = store.keys([s.id for s in slots]) if ok and slots else None
    return DeletedSlots(where.describe(), slots, ok, "" if ok else "its slots have no text", keys)


def restore(store: MindStore, deleted: DeletedSlots) -> list[Slot]:
    """Put the deleted slots back as they were: same ids, text, metadata, scope, key, usage and
    times, each with an ``undelete`` event, so that its history goes on under the one id.

    Through :meth:`MindStore.import_`, the store's way to insert slots with their ids: the
    slots are written as lines of its export format to a temporary file and imported."""
    import base64
    import tempfile
    from datetime import timezone
    from pathlib import Path

    def iso(dt: datetime | None) -> str | None:
        return dt.isoformat() if dt is not None else None

    if not deleted.slots:
        return []
    now = datetime.now(timezone.utc).isoformat()
    spaces = {info.name: info for info in store.spaces()}
    lines = [{"type": "space", "name": name, "dim": spaces[name].dim, "key_source": spaces[name].key_source, "created_at": now}
             for name in sorted({s.space for s in deleted.slots})]
    for s, key in zip(deleted.slots, deleted.keys):
        lines.append({
            "type": "slot", "id": s.id, "space": s.space, **s.scope.as_dict(), "text": s.text, "label": s.label,
            "metadata": s.metadata, "reads": s.usage.reads, "writes": s.usage.writes, "last_access": iso(s.usage.last_access),
            "created_at": iso(s.created_at), "updated_at": iso(s.updated_at),
            "key": base64.b64encode(key.astype("float32").tobytes()).decode("ascii"), "value": None,
            **({"superseded_by": s.superseded_by} if s.superseded_by is not None else {}),
        })
    lines += [{"type": "event", "slot_id": s.id, "space": s.space, "kind": "undelete", "old_text": None, "new_text": s.text,
               "old_metadata": None, "new_metadata": s.metadata, "at": now} for s in deleted.slots]
    with tempfile.TemporaryDirectory(prefix="mindstore-undo-") as tmp:
        path = Path(tmp) / "undo.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
        store.import_(path)
    return list(deleted.slots)


F = TypeVar("F", bound=Callable[..., Any])


def one_at_a_time(fn: F) -> F:
    """Run a worker's store calls under the app's store lock.

    The first use of a space builds its key index, and MindStore does not guard that against two
    threads at once; the TUI's workers (page, sidebar, search, slot, writes) take turns instead.
    """

    @functools.wraps(fn)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.store_lock:
            return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


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


# Similarity scores and read weights are shown so; the snapshot tests mask them (their last digit
# may differ between CPUs) by replacing this format.
SCORE_FORMAT = "{:.3f}"


def fmt_score(x: float) -> str:
    return SCORE_FORMAT.format(x)


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
