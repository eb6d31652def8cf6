"""Retention: which slots a bounded memory forgets.

A space may be given a capacity (slots in the whole space), a capacity per scope (slots with the
same user_id, agent_id and session_id) and a time to live. Past a capacity the least-used slots
go first, by the LRUA usage statistics (Santoro et al. 2016): least recently accessed first, then
least often (reads + writes), then the oldest id. A slot not accessed for ``ttl`` seconds expires.
The store deletes what these functions choose and records each one as an ``evict`` event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .db import SlotRow, SpaceRow, scope_where
from .slots import Scope

__all__ = ["LEAST_USED", "Retention", "lock_space", "to_evict"]


@dataclass(frozen=True)
class Retention:
    """The limits of one store (see :class:`~mindstore.Config`); None means no limit."""

    capacity: int | None = None
    capacity_per_scope: int | None = None
    ttl: float | None = None

    @property
    def active(self) -> bool:
        return self.capacity is not None or self.capacity_per_scope is not None or self.ttl is not None


# The one "least used" order, of eviction and of MindStore.least_used: least recently accessed
# first, then least often (reads + writes), then the oldest id. The ix_slots_lru index serves the
# first key; ties on last_access (one batch's slots) are sorted among themselves.
LEAST_USED = (SlotRow.last_access, SlotRow.reads + SlotRow.writes, SlotRow.id)


def lock_space(s: Session | Connection, space_id: int) -> None:
    """Serialise eviction in a space across processes: a no-op write to its row takes the row
    lock on PostgreSQL and the write lock on SQLite, so counts read after it are current and two
    processes cannot both evict for the same excess."""
    s.execute(update(SpaceRow).where(SpaceRow.id == space_id).values(dim=SpaceRow.dim))


def _least_used(s: Session, where: list, n: int) -> list[int]:
    if n <= 0:
        return []
    return [int(i) for i in s.scalars(select(SlotRow.id).where(*where).order_by(*LEAST_USED).limit(n)).all()]


def expired_where(space_id: int, ttl: float, now: datetime) -> list:
    """The slots of a space not accessed for ``ttl`` seconds."""
    return [SlotRow.space_id == space_id, SlotRow.last_access < now - timedelta(seconds=ttl)]


def any_expired(s: Session, space_id: int, ttl: float, now: datetime) -> bool:
    """A read-only look before eviction takes the space's write lock."""
    return s.scalar(select(SlotRow.id).where(*expired_where(space_id, ttl, now)).limit(1)) is not None


def to_evict(s: Session, space_id: int, policy: Retention, scopes: Iterable[Scope], now: datetime) -> list[int]:
    """Ids of the slots the policy removes now: expired ones anywhere in the space, then the
    least used of each given scope over its capacity, then of the space over its capacity. Never
    more than the excess of each limit; never a slot outside the space or the scope counted."""
    chosen: list[int] = []
    if policy.ttl is not None:
        chosen += [int(i) for i in s.scalars(select(SlotRow.id).where(*expired_where(space_id, policy.ttl, now))).all()]
    taken = set(chosen)
    if policy.capacity_per_scope is not None:
        for scope in sorted(set(scopes), key=repr):
            where = scope_where(space_id, scope, exact=True)
            if taken:
                where.append(SlotRow.id.not_in(taken))
            excess = (s.scalar(select(func.count()).where(*where)) or 0) - policy.capacity_per_scope
            ids = _least_used(s, where, excess)
            chosen += ids
            taken.update(ids)
    if policy.capacity is not None:
        where = [SlotRow.space_id == space_id] + ([SlotRow.id.not_in(taken)] if taken else [])
        excess = (s.scalar(select(func.count()).where(*where)) or 0) - policy.capacity
        chosen += _least_used(s, where, excess)
    return chosen
