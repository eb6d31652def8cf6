"""Bulk insert with ids allocated up front: one executemany per table, no RETURNING.

An ORM insert that returns its ids in order runs one statement per row on SQLite, most of its time
in SQLAlchemy (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
Allocating the ids first lets the driver insert a whole batch in one executemany call:

- SQLite: the caller holds the write lock (see ``retention.lock_space``), so the next ids are
  ``sqlite_sequence`` + 1.. and nobody else can take them; inserting them advances the sequence.
- PostgreSQL: ``nextval`` of the table's sequence, n at once; they may commit out of order with
  other writers, which the key index's catch-up allows for (sequence gaps).
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from sqlalchemy import LargeBinary, func, insert, select, text
from sqlalchemy.orm import Session

from .models import Base

__all__ = ["Same", "insert_columns", "insert_with_ids"]


def _allocate(s: Session, table: str, n: int) -> list[int] | None:
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        seq = s.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}).scalar()
        if seq is None:  # no row yet: the table has never held a row
            seq = s.execute(select(func.max(Base.metadata.tables[table].c.id))).scalar() or 0
        return list(range(int(seq) + 1, int(seq) + 1 + n))
    if dialect == "postgresql":
        rows = s.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"), {"n": n})
        return [int(r[0]) for r in rows]
    return None


class Same:
    """A column value shared by every row of a batch: bound once, not once per row."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def insert_with_ids(s: Session, model: type, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (attribute names as keys) into ``model``'s table and return their ids, in
    order. On SQLite the caller must already hold the database's write lock."""
    if not rows:
        return []
    return insert_columns(s, model, len(rows), {a: [r[a] for r in rows] for a in rows[0]})


def insert_columns(s: Session, model: type, n: int, columns: dict[str, list[Any] | Same]) -> list[int]:
    """Insert ``n`` rows given column by column (attribute name -> one value per row, or
    ``Same(value)`` for all of them; a list holding one object in every row counts as that) and
    return their ids, in order. A bulk add builds its batch this way: most columns (space,
    scope, times, counters) hold one value, and binding it once instead of per row was most of
    the Python time of a fill. On SQLite the caller must already hold the database's write lock."""
    if n == 0:
        return []
    table = model.__table__
    ids = _allocate(s, table.name, n)
    if ids is None:  # another database: let it return the ids it gives
        rows = [{a: (c.value if isinstance(c, Same) else c[i]) for a, c in columns.items()} for i in range(n)]
        return [int(i) for i in s.execute(insert(model).returning(model.id, sort_by_parameter_order=True), rows).scalars().all()]
    # Straight to the driver: SQLAlchemy's per-row parameter processing cost more than the
    # insert itself. Each column's own bind processor is applied, once per distinct value object
    # (a batch shares its timestamps and often its metadata dict).
    conn = s.connection()
    dialect = conn.dialect
    attrs = list(columns)
    cols = [model.__mapper__.column_attrs[a].columns[0] for a in attrs]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    bound: list[Any] = [ids]
    marks = [mark]
    for a, col in zip(attrs, cols):
        values = columns[a]
        if not isinstance(values, Same) and len(values) == n and all(v is values[0] for v in values):
            values = Same(values[0])  # one object in every row (a batch's one metadata dict, no texts)
        impl = col.type.dialect_impl(dialect)
        # Bytes go to the driver as they are (both sqlite3 and psycopg take them): LargeBinary's
        # processor only wraps each value in the driver's Binary, a million calls for a fill.
        proc = None if isinstance(impl, LargeBinary) else impl.bind_processor(dialect)
        if isinstance(values, Same):
            v = values.value
            v = v if v is None or proc is None else proc(v)
            literal = _sqlite_literal(v) if mark == "?" else None
            if literal is not None:  # written into the statement: nothing to bind per row
                marks.append(literal)
            else:
                marks.append(mark)
                bound.append(repeat(v, n))
            continue
        marks.append(mark)
        if len(values) != n:
            raise ValueError(f"column {a!r} holds {len(values)} values for {n} rows")
        elif proc is None:
            bound.append(values)
        else:
            bound.append(_bind_all(values, proc))
    quote = dialect.identifier_preparer.quote
    names = [table.c.id.name] + [c.name for c in cols]
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) VALUES ({', '.join(marks)})"
    conn.exec_driver_sql(sql, list(zip(*bound)))
    return ids


def _sqlite_literal(value: Any) -> str | None:
    """``value`` (already through its column's bind processor) as an SQLite literal, or None to
    bind it. A batch's shared values (space, scope, counters, times) are written into the
    statement once rather than bound for every row, which leaves 8 parameters a slot and its
    event instead of 24 (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). Only NULL, integers and text are written (a text's quotes doubled;
    SQLite reads a ``?`` inside a quoted literal as text); anything else, and text holding NUL,
    is bound."""
    if value is None:
        return "NULL"
    if isinstance(value, int):  # bool included: SQLite stores it as 0 or 1
        return str(int(value))
    if isinstance(value, str) and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def _bind_all(values: list[Any], proc: Any) -> list[Any]:
    """``proc`` applied to each value, once per distinct object (and once for all empty dicts)."""
    cache: dict[int, tuple[Any, Any]] = {}
    empty: dict[str, Any] = {}
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if isinstance(v, (dict, list)) and not v:  # empty metadata: one object per row, one value
            key = type(v).__name__
            hit = empty.get(key)
            if hit is None:
                hit = empty[key] = proc(v)
            out.append(hit)
            continue
        hit = cache.get(id(v))
        if hit is None or hit[0] is not v:
            hit = cache[id(v)] = (v, proc(v))
        out.append(hit[1])
    return out
