"""What binds a derived cache (key index, lexical index) to the database it was derived from.

A cache file records the store's id and a fingerprint of the newest change it applied. On open,
a cache whose id is another store's (an index folder copied from elsewhere) or whose fingerprint
does not match this database's change log (a database restored from an older backup beside a
newer index, or a copy of the store that went its own way) is not this database's cache and is
rebuilt from SQL. Events are append-only, so a fingerprint that matched once matches for good.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import timezone

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .models import EventRow, MetaRow

__all__ = ["STORE_ID_KEY", "cache_header", "ensure_store_id", "foreign_cache", "store_id", "seq_tip"]

STORE_ID_KEY = "store_id"


def ensure_store_id(engine: Engine) -> str:
    """The database's random id, created on first open. Several processes may open a new database
    at once: each tries an insert that yields to an existing row, then all read the one that won."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with engine.begin() as conn:
        if engine.dialect.name in ("postgresql", "sqlite"):
            conn.execute(insert(MetaRow).values(key=STORE_ID_KEY, value=uuid.uuid4().hex).on_conflict_do_nothing(index_elements=["key"]))
        elif conn.scalar(select(MetaRow.value).where(MetaRow.key == STORE_ID_KEY)) is None:
            conn.execute(MetaRow.__table__.insert().values(key=STORE_ID_KEY, value=uuid.uuid4().hex))
        return conn.scalar(select(MetaRow.value).where(MetaRow.key == STORE_ID_KEY))


def store_id(s: Session | Connection) -> str | None:
    """The id :func:`ensure_store_id` gave this database (None for one no mindstore has opened)."""
    return s.scalar(select(MetaRow.value).where(MetaRow.key == STORE_ID_KEY))


def seq_tip(s: Session | Connection, space_id: int, seq: int) -> str:
    """A fingerprint of the space's newest change at or below ``seq``: its number, slot, kind and
    time. A cache saved at ``seq`` records it; the same database gives the same value later."""
    row = s.execute(
        select(EventRow.id, EventRow.slot_id, EventRow.kind, EventRow.at)
        .where(EventRow.space_id == space_id, EventRow.id <= seq)
        .order_by(EventRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return "none"
    at = row[3]
    if at is not None and at.tzinfo is not None:  # PostgreSQL hands back the session's zone
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    at = at.isoformat() if at is not None else ""
    return f"{row[0]}:{zlib.crc32(f'{row[1]}|{row[2]}|{at}'.encode()):08x}"


def cache_header(s: Session | Connection, space_id: int, seq: int) -> dict[str, str]:
    """What a cache of the space saved at ``seq`` records to be recognised as this database's."""
    return {"store": store_id(s) or "", "tip": seq_tip(s, space_id, seq)}


def foreign_cache(s: Session | Connection, space_id: int, header: object, seq: int) -> str | None:
    """Why a cache with ``header`` saved at ``seq`` is not this database's own, or None if it is."""
    if not isinstance(header, dict) or header.get("store") != store_id(s):
        return "it was made for another store"
    if header.get("tip") != seq_tip(s, space_id, seq):
        return "it does not match this database's change log (another or an older copy of the store)"
    return None
