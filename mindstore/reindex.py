"""Re-embedding a text space with another model, without ever leaving it half done.

The new keys are written beside the old ones (``staged_keys``), batch by batch, each batch its own
transaction; the space keeps its old keys and model, and stays searchable, until every slot has a
new key. One transaction then copies them into ``slots.key`` and records the new model and
dimension. A re-embedding that fails or is killed at any batch leaves the space as it was, and a
rerun with the same model embeds only what is not staged yet (a slot changed since its key was
staged, by ``updated_at``, is embedded again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .db import SlotRow, SpaceRow, StagedKeyRow
from .errors import EmbedderMismatchError, SpaceError
from .retention import lock_space

__all__ = ["has_mixed_keys", "reembed", "stage_keys", "switch_keys"]

Embed = Callable[[Sequence[str]], np.ndarray]
_CHUNK = 10_000  # ids in one IN (...) list
_BULK = {"synchronize_session": False}  # statements over many rows: no ORM objects to keep in step


def has_mixed_keys(s: Session, space_id: int, dim: int) -> bool:
    """Whether any slot of the space holds a key of another size than its ``dim`` floats (left by
    a re-embedding that an older mindstore wrote in place and was cut short). Scans the space."""
    return s.scalar(select(SlotRow.id).where(SlotRow.space_id == space_id, func.length(SlotRow.key) != dim * 4).limit(1)) is not None


def _checked(keys: np.ndarray, n: int, dim: int, key_source: str) -> np.ndarray:
    if keys.shape != (n, dim):
        raise EmbedderMismatchError(
            f"the embedder {key_source!r} says its keys have {dim} dimensions but returned an array of shape "
            f"{keys.shape} for {n} texts; fix the embedder's dim (or its output) and reindex again"
        )
    return keys


def _stage(s: Session, space_id: int, key_source: str, rows: Sequence[Any], keys: np.ndarray) -> None:
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        s.execute(delete(StagedKeyRow).where(StagedKeyRow.slot_id.in_([r.id for r in chunk])), execution_options=_BULK)
        s.execute(insert(StagedKeyRow), [
            {"slot_id": r.id, "space_id": space_id, "key_source": key_source, "key": keys[start + j].tobytes(), "updated_at": r.updated_at}
            for j, r in enumerate(chunk)
        ])


def _no_text(space: str, n: int) -> SpaceError:
    return SpaceError(f"space {space!r} has {n} slots without text; only text spaces can be re-embedded")


def stage_keys(sessions: sessionmaker[Session], space_id: int, space: str, key_source: str, dim: int, embed: Embed,
               batch: int, progress: Callable[[int], object] = lambda n: None) -> int:
    """Embed every slot of the space that has no current staged key from ``key_source``, ``batch``
    slots a transaction; return how many were embedded. Staged keys of other models are dropped."""
    with sessions() as s, s.begin():
        s.execute(delete(StagedKeyRow).where(StagedKeyRow.space_id == space_id, StagedKeyRow.key_source != key_source), execution_options=_BULK)
    done, after = 0, 0
    while True:
        with sessions() as s:
            rows = s.execute(
                select(SlotRow.id, SlotRow.text, SlotRow.updated_at, StagedKeyRow.updated_at.label("staged_at"))
                .outerjoin(StagedKeyRow, StagedKeyRow.slot_id == SlotRow.id)
                .where(SlotRow.space_id == space_id, SlotRow.id > after)
                .order_by(SlotRow.id)
                .limit(batch)
            ).all()
        if not rows:
            return done
        todo = [r for r in rows if r.staged_at is None or r.staged_at != r.updated_at]
        if any(r.text is None for r in todo):
            raise _no_text(space, sum(r.text is None for r in todo))
        if todo:
            keys = _checked(embed([r.text for r in todo]), len(todo), dim, key_source)
            with sessions() as s, s.begin():
                _stage(s, space_id, key_source, todo, keys)
            done += len(todo)
        after = rows[-1].id
        progress(len(rows))


def switch_keys(sessions: sessionmaker[Session], space_id: int, space: str, key_source: str, dim: int, embed: Embed) -> int:
    """In one transaction, holding the space's write lock: embed the slots written or changed since
    they were staged, copy every staged key into its slot, record ``key_source`` and ``dim`` as the
    space's, and drop the staged keys. Returns how many slots it had to embed."""
    with sessions() as s, s.begin():
        lock_space(s, space_id)  # no write to the space commits between here and the switch
        stale = s.execute(
            select(SlotRow.id, SlotRow.text, SlotRow.updated_at)
            .outerjoin(StagedKeyRow, StagedKeyRow.slot_id == SlotRow.id)
            .where(SlotRow.space_id == space_id, or_(StagedKeyRow.slot_id.is_(None), StagedKeyRow.key_source != key_source,
                                                     StagedKeyRow.updated_at != SlotRow.updated_at))
        ).all()
        if any(r.text is None for r in stale):
            raise _no_text(space, sum(r.text is None for r in stale))
        if stale:
            _stage(s, space_id, key_source, stale, _checked(embed([r.text for r in stale]), len(stale), dim, key_source))
        staged = select(StagedKeyRow.key).where(StagedKeyRow.slot_id == SlotRow.id).scalar_subquery()
        s.execute(update(SlotRow).where(SlotRow.space_id == space_id).values(key=staged), execution_options=_BULK)
        s.execute(update(SpaceRow).where(SpaceRow.id == space_id).values(dim=dim, key_source=key_source), execution_options=_BULK)
        s.execute(delete(StagedKeyRow).where(StagedKeyRow.space_id == space_id), execution_options=_BULK)
    return len(stale)


def reembed(sessions: sessionmaker[Session], space_id: int, space: str, key_source: str, dim: int, embed: Embed, batch_size: int) -> int:
    """Re-embed every slot of a text space with ``embed`` (``MindStore.reindex``); returns how
    many. New keys are staged beside the old ones, then switched in one transaction: cut short,
    the space keeps its old keys and model, and a rerun embeds only what is left."""
    from tqdm.auto import tqdm

    with sessions() as s:
        total = s.scalar(select(func.count()).where(SlotRow.space_id == space_id)) or 0
        texts_missing = s.scalar(select(func.count()).where(SlotRow.space_id == space_id, SlotRow.text.is_(None))) or 0
    if texts_missing:
        raise SpaceError(f"space {space!r} has {texts_missing} slots without text; only text spaces can be re-embedded")
    with tqdm(total=total, desc=f"re-embedding {space!r}", unit="slot", disable=total < 1000 or None) as bar:
        stage_keys(sessions, space_id, space, key_source, dim, embed, batch_size * 16, bar.update)
    switch_keys(sessions, space_id, space, key_source, dim, embed)
    return total
