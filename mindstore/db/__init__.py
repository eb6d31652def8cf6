from .engine import open_database, sqlite_path
from .models import Base, EventRow, MetaRow, SlotRow, SpaceRow, event_slots, last_seq, slot_count

__all__ = ["open_database", "sqlite_path", "Base", "EventRow", "MetaRow", "SlotRow", "SpaceRow", "event_slots", "last_seq", "slot_count"]
