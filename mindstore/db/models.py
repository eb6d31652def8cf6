"""SQLAlchemy models: the SQL store is the source of truth for every slot and its history.

``events.id`` doubles as the store's change sequence: every add, update, reinforce and delete
appends one event, so "what changed since sequence s" is an indexed range scan. Key indexes
remember the last sequence they applied and catch up from here.

An event names one slot (``slot_id``), or, when ``slot_last`` is set, every slot from ``slot_id``
to ``slot_last``: a bulk add of slots with no texts and one shared metadata dict logs its
contiguous ids as one event (the same history, a row per 10,000 slots instead of one per slot).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..slots import Scope

# A change sequence number below the newest one seen but not yet visible belongs to a transaction
# that has not committed or that rolled back: derived indexes look for it again on every catch-up
# for this long (seconds), then take it as rolled back.
GAP_WAIT_S = 120.0

# 2: events.slot_last (one event for a range of slots); a version-1 database gains the column on open.
# 3: slots.superseded_by (a newer version of the fact); older databases gain it on open.
SCHEMA_VERSION = 3

# SQLite only autoincrements an INTEGER PRIMARY KEY; BigInteger elsewhere for billions of rows.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class MetaRow(Base):
    """Key/value facts about the database itself (schema version)."""

    __tablename__ = "mindstore_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


class SpaceRow(Base):
    """A named set of slots sharing one key kind (``key_source``) and dimension."""

    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    dim: Mapped[int] = mapped_column(Integer)
    key_source: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlotRow(Base):
    """One memory. ``key`` is the float32 key vector as stored; the index holds a normalised copy."""

    __tablename__ = "slots"
    # AUTOINCREMENT on SQLite so that a deleted slot's id is never handed out again: ids are
    # also FAISS ids and history keys.
    __table_args__ = (
        Index("ix_slots_scope", "space_id", "user_id", "agent_id", "session_id", "id"),
        # A whole space in id order (MindStore.list): without it SQLite sorts every row of the
        # space to return one page (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
        Index("ix_slots_space", "space_id", "id"),
        Index("ix_slots_agent", "space_id", "agent_id"),
        Index("ix_slots_session", "space_id", "session_id"),
        # Least recently accessed first: where a bounded memory writes (MindStore.least_used).
        Index("ix_slots_lru", "space_id", "last_access", "id"),
        # The few superseded slots: whether a space has any is one probe of this partial index.
        Index("ix_slots_superseded", "space_id", "superseded_by", sqlite_where=text("superseded_by IS NOT NULL"),
              postgresql_where=text("superseded_by IS NOT NULL")),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(255))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    session_id: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(500))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    value: Mapped[bytes | None] = mapped_column(LargeBinary)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    reads: Mapped[int] = mapped_column(Integer, default=0)
    writes: Mapped[int] = mapped_column(Integer, default=1)
    last_access: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The slot holding the newer version of this fact (no foreign key: history outlives slots).
    superseded_by: Mapped[int | None] = mapped_column(BigInteger)


class EventRow(Base):
    """One change of one slot. The id is the change sequence number."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_space_seq", "space_id", "id"),
        Index("ix_events_slot", "slot_id", "id"),
        # The few range events, by first slot: history() finds a slot's one in O(log n).
        Index("ix_events_range", "slot_id", sqlite_where=text("slot_last IS NOT NULL"), postgresql_where=text("slot_last IS NOT NULL")),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    # No foreign key: a deleted slot keeps its history.
    slot_id: Mapped[int] = mapped_column(BigInteger)
    # Set on an event of a range of slots (slot_id..slot_last, a bulk add): see the module doc.
    slot_last: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    old_text: Mapped[str | None] = mapped_column(Text)
    new_text: Mapped[str | None] = mapped_column(Text)
    old_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StagedKeyRow(Base):
    """A slot's key from the embedder a re-embedding (``MindStore.reindex``) is moving its space to.

    The new keys wait here, beside the live ones, until every slot has one; one transaction then
    copies them into ``slots.key`` and switches the space's ``key_source``. A re-embedding cut
    short leaves the live keys whole (the space searchable with its old model), and a rerun with
    the same embedder keeps each staged key whose slot has not changed since (``updated_at``)."""

    __tablename__ = "staged_keys"

    slot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # no foreign key: a slot deleted meanwhile is skipped
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    key_source: Mapped[str] = mapped_column(String(500))
    key: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the slot's, when its text was read


def insert_or_get(s: Session, model: type, values: dict[str, Any], unique: str) -> Any:
    """The row of ``model`` whose ``unique`` column equals ``values[unique]``, inserted from
    ``values`` if there is none. Race-free: when another process inserts the same row first, the
    insert does nothing (``ON CONFLICT DO NOTHING``) and its row is returned."""
    dialect = s.get_bind().dialect.name
    col = getattr(model, unique)
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        s.execute(dialect_insert(model).values(**values).on_conflict_do_nothing(index_elements=[col.property.columns[0].name]))
        return s.scalar(select(model).where(col == values[unique]).execution_options(populate_existing=True))
    row = s.scalar(select(model).where(col == values[unique]))
    if row is None:
        row = model(**values)
        s.add(row)
        s.flush()
    return row


# Built once: every search asks for it (catch-up), and a prebuilt Core statement skips the
# statement construction that cost about as much as the query itself.
_LAST_SEQ = select(func.max(EventRow.__table__.c.id)).where(EventRow.__table__.c.space_id == bindparam("space"))


def event_slots(slot_id: int, slot_last: int | None) -> range:
    """The slots one event names: ``slot_id``, or ``slot_id`` to ``slot_last`` for a range event."""
    return range(slot_id, (slot_id if slot_last is None else slot_last) + 1)


def table_exists(c: Connection, name: str) -> bool:
    """Whether PostgreSQL has the table ``name`` in the search path, as this statement sees it."""
    return c.scalar(select(func.to_regclass(name))) is not None


def last_seq(s: Session | Connection, space_id: int) -> int:
    """The space's change sequence: the id of its newest event (0 before any)."""
    return s.execute(_LAST_SEQ, {"space": space_id}).scalar() or 0


def read_changes(s: Session | Connection, space_id: int, seq: int, db_seq: int, gaps: dict[int, float], now: float,
                 own: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int, int | None]]:
    """The space's events (id, slot_id, slot_last) after ``seq`` up to ``db_seq``, and those among
    ``gaps`` that have appeared. ``gaps`` is updated in place: the numbers now seen leave it, and
    the numbers up to ``db_seq`` still missing (of no other space, not in ``own``) join it at ``now``.

    Sequence numbers can commit out of order (on PostgreSQL a writer takes its number at insert
    and shows it at commit), so "after the last one seen" alone would skip a late commit for good;
    a derived index keeps the gaps and asks for them again on each catch-up (see ``GAP_WAIT_S``)."""
    window = EventRow.id > seq
    if gaps:
        window = window | EventRow.id.in_(sorted(gaps))
    rows = [tuple(r) for r in s.execute(
        select(EventRow.id, EventRow.slot_id, EventRow.slot_last).where(EventRow.space_id == space_id, window, EventRow.id <= max(db_seq, seq))
    ).all()]
    seen = {r[0] for r in rows}
    for g in [g for g in gaps if g in seen]:
        del gaps[g]
    if db_seq > seq:
        missing = set(range(seq + 1, db_seq + 1)) - seen
        if missing:  # events of other spaces share the sequence: only numbers of no space are gaps
            other = s.scalars(select(EventRow.id).where(EventRow.id > seq, EventRow.id <= db_seq, EventRow.space_id != space_id)).all()
            gaps.update((g, now) for g in missing - set(other) - own)
    return rows


def scope_where(space_id: int, scope: Scope, *, exact: bool = False) -> list:
    """The SQL predicate of a :class:`~mindstore.Scope` in a space: ``None`` matches any value,
    or with ``exact`` only an unset one (the slots written to exactly that scope, as retention
    counts them). The Python twin is :meth:`mindstore.Scope.contains`."""
    where = [SlotRow.space_id == space_id]
    for name, want in scope.as_dict().items():
        col = getattr(SlotRow, name)
        if want is not None:
            where.append(col == want)
        elif exact:
            where.append(col.is_(None))
    return where


def slot_count(s: Session, space_id: int) -> int:
    """How many slots the space holds in SQL (what a derived index must match)."""
    return s.scalar(select(func.count()).where(SlotRow.space_id == space_id)) or 0
