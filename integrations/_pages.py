"""Reading a whole scope through :meth:`MindStore.list`, page by page (shared by the adapters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mindstore import MindStore, Slot

__all__ = ["scan"]

_PAGE = 1000


def scan(store: MindStore, *, filters: Mapping[str, Any] | None = None, limit: int | None = None, **scope: str | None) -> list[Slot]:
    """The slots of a scope matching ``filters``, in insertion order, up to ``limit`` (None: all)."""
    out: list[Slot] = []
    cursor = None
    while limit is None or len(out) < limit:
        want = _PAGE if limit is None else min(_PAGE, limit - len(out))
        page = store.list(filters=filters, limit=want, cursor=cursor, **scope)
        out += page.slots
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return out
