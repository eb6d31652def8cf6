"""mindstore: a memory that learns and lasts.

>>> from mindstore import MindStore
>>> with MindStore("sqlite:///memory.db") as store:
...     store.add("Alice is allergic to peanuts", user_id="alice")
...     hits = store.search("what can't alice eat?", user_id="alice")
"""

from __future__ import annotations

from .config import Config
from .errors import (
    DatabaseError,
    DataNotFoundError,
    EmbedderMismatchError,
    InvalidFilterError,
    InvalidInputError,
    InvalidVectorError,
    MindStoreError,
    MixedKeysError,
    NotFoundError,
    PgVectorMissingError,
    SpaceError,
    StoreClosedError,
)
from .slots import Event, Hit, Page, Scope, Slot, Usage, Written
from .spaces import IndexInfo, SpaceInfo
from .store import MindStore

__version__ = "0.1.0"

__all__ = [
    "MindStore",
    "Config",
    "Slot",
    "Written",
    "Hit",
    "Event",
    "Page",
    "Scope",
    "Usage",
    "SpaceInfo",
    "IndexInfo",
    "MindStoreError",
    "InvalidInputError",
    "InvalidVectorError",
    "InvalidFilterError",
    "NotFoundError",
    "EmbedderMismatchError",
    "MixedKeysError",
    "SpaceError",
    "StoreClosedError",
    "DatabaseError",
    "PgVectorMissingError",
    "DataNotFoundError",
]
