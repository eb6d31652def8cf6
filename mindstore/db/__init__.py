from .engine import open_database, sqlite_path
from .identity import cache_header, foreign_cache, seq_tip, store_id
from .models import (
    Base,
    EventRow,
    MetaRow,
    SlotRow,
    SpaceRow,
    StagedKeyRow,
    event_slots,
    insert_or_get,
    last_seq,
    read_changes,
    scope_where,
    slot_count,
    table_exists,
)

__all__ = ["open_database", "sqlite_path", "Base", "EventRow", "MetaRow", "SlotRow", "SpaceRow", "StagedKeyRow", "event_slots", "insert_or_get", "last_seq", "read_changes", "scope_where", "slot_count", "table_exists", "cache_header", "foreign_cache", "seq_tip", "store_id"]
