"""The plain, frozen values mindstore hands back: slots, hits, history events, scopes, pages."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

CHANGES = ("added", "reinforced", "superseded")

__all__ = ["Scope", "Usage", "Slot", "Written", "Hit", "Event", "Page", "CHANGES", "occurred_at_of"]


def occurred_at_of(metadata: dict[str, Any]) -> datetime | None:
    """Metadata ``occurred_at`` (an ISO string) as an aware datetime (naive means UTC), or None."""
    when = metadata.get("occurred_at")
    if not isinstance(when, str):
        return None
    try:
        dt = datetime.fromisoformat(when)
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to. ``None`` in a query means "any"; in a slot it means "unset"."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}

    def contains(self, slot: Any) -> bool:
        """Whether a slot (a :class:`Slot` or a slot row) is in this scope, read as a query:
        ``None`` matches any value. The SQL twin is :func:`mindstore.db.scope_where`."""
        return all(want is None or getattr(slot, name) == want for name, want in self.as_dict().items())


@dataclass(frozen=True)
class Usage:
    """Access statistics of one slot; they drive least-recently-used writes and eviction."""

    reads: int = 0
    writes: int = 1
    last_access: datetime | None = None


@dataclass(frozen=True)
class Slot:
    """One memory: its text (or label and value vector), scope, metadata, usage and times."""

    id: int
    space: str
    scope: Scope
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    usage: Usage = field(default_factory=Usage)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    superseded_by: int | None = None
    """The slot holding the newer version of this fact, if one was added (searches skip this one)."""

    @property
    def occurred_at(self) -> datetime | None:
        """When what it says happened (metadata ``occurred_at``, e.g. its conversation's date), as UTC."""
        return occurred_at_of(self.metadata)

    @property
    def user_id(self) -> str | None:
        return self.scope.user_id

    @property
    def agent_id(self) -> str | None:
        return self.scope.agent_id

    @property
    def session_id(self) -> str | None:
        return self.scope.session_id


@dataclass(frozen=True, eq=False)
class Written(Slot):
    """The slot a write left, and what the write did to it (``change``):

    - ``"added"``: a new slot;
    - ``"reinforced"``: the text restated a memory of the same scope (the same words once case,
      punctuation and spacing are set aside): that slot, its write count one higher;
    - ``"superseded"``: a new slot holding a newer version of a near-duplicate memory, whose id
      is ``supersedes``; searches return the new one and skip the old (kept, with its history).
    """

    change: str = "added"
    supersedes: int | None = None

    def __eq__(self, other: object) -> bool:
        """Equal to the slot it wrote: what the write did is not part of the slot."""
        if not isinstance(other, Slot):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Slot))

    __hash__ = Slot.__hash__


def new_slots(
    ids: list[int], space: str, scope: Scope, texts: list[str | None], metadata: list[dict[str, Any]], labels: list[str | None], now: datetime,
    cls: type[Slot] = Slot,
) -> list[Slot]:
    """The slots a write has just inserted, equal to ``Slot(...)`` for each, built in bulk.

    A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``, a cost a
    bulk add pays per slot; filling ``__dict__`` at once halves it (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
    Every slot gets its own copy of its metadata; the one ``Usage`` (frozen) is shared."""
    usage = Usage(0, 1, now)
    new = object.__new__
    extra = {"change": "added", "supersedes": None} if cls is Written else {}
    out = []
    for id_, text, meta, label in zip(ids, texts, metadata, labels):
        slot = new(cls)
        slot.__dict__.update(id=id_, space=space, scope=scope, text=text, metadata=dict(meta), label=label, usage=usage, created_at=now,
                             updated_at=now, superseded_by=None, **extra)
        out.append(slot)
    return out


@dataclass(frozen=True)
class Hit:
    """A search result: the slot and its similarity to the query (cosine, higher is closer).

    ``score`` is the cosine in every search mode (what ``min_score`` applies to). ``rank_score``
    is what the list is ordered by, so it never grows down a search's hits: the fused score in
    hybrid search, BM25 scaled by the best in lexical, the cosine scaled over the candidates in
    dense, each plus the time weight; a reranker's own score; where a newer version takes an
    older one's place, that place's score. It is relative to one search's candidates: compare
    it within a list, not across searches. A hit made by hand ranks by its ``score``."""

    score: float
    slot: Slot
    rank_score: float | None = None

    def __post_init__(self) -> None:
        if self.rank_score is None:
            object.__setattr__(self, "rank_score", self.score)

    @property
    def occurred_at(self) -> datetime | None:
        """When what the slot says happened (see :attr:`Slot.occurred_at`)."""
        return self.slot.occurred_at


@dataclass(frozen=True)
class Event:
    """One change in a slot's history: ``add``, ``reinforce``, ``supersede`` (a newer version was
    added: ``new_metadata`` names it), ``restore`` (that version was deleted), ``update``,
    ``delete`` or ``evict``."""

    id: int
    slot_id: int
    kind: str
    old_text: str | None
    new_text: str | None
    old_metadata: dict[str, Any] | None
    new_metadata: dict[str, Any] | None
    at: datetime


@dataclass(frozen=True)
class Page:
    """One page of :meth:`MindStore.list`; pass ``next_cursor`` back to get the next one."""

    slots: list[Slot]
    next_cursor: str | None
