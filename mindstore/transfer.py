"""Export and import as JSON Lines, exact enough that export -> import -> export is byte-identical.

One object per line, in this order: ``{"type": "space", ...}`` for each space, ``{"type": "slot",
...}`` for each slot (key and value vectors as base64 float32), ``{"type": "event", ...}`` for each
history event, oldest first (deleted slots keep their history; an event with ``slot_last`` is one
bulk add of the slots ``slot_id`` to ``slot_last``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .db import EventRow, SlotRow, SpaceRow
from .errors import DatabaseError, InvalidInputError
from .validate import MAX_DIM, MAX_TEXT_CHARS, check_chars, check_metadata, check_space_name, check_text

__all__ = ["export_jsonl", "import_jsonl"]

_CHUNK = 5_000
_INT32 = 2**31  # reads, writes and dim are INTEGER columns: PostgreSQL refuses more, SQLite would keep it


def _dt(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _file_path(path: Any, doing: str) -> Path:
    """``path`` as a Path, or InvalidInputError for what cannot name a file."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"give a file path to {doing}, not {type(path).__name__}")
    path = Path(path)
    if not str(path).strip() or str(path) == ".":
        raise InvalidInputError(f"give a file path to {doing}, not an empty one")
    if "\x00" in str(path):
        raise InvalidInputError(f"the path to {doing} contains a NUL character; remove it")
    return path


def export_jsonl(sessions: sessionmaker[Session], path: Any) -> int:
    """Write the file through ``<path>.tmp`` and a rename: ``path`` holds a whole export or what it
    held before, and a failed export leaves no temp file."""
    path = _file_path(path, "export to")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give a file name, e.g. {path / 'memory.jsonl'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot make the folder {path.parent} ({exc.strerror}); choose another path") from None
    tmp = path.with_name(path.name + ".tmp")
    try:
        written = _write_export(sessions, tmp)
        tmp.replace(path)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path} ({exc.strerror}); choose a path you can write to") from None
    finally:
        tmp.unlink(missing_ok=True)
    return written


def _write_export(sessions: sessionmaker[Session], tmp: Path) -> int:
    written = 0
    with sessions() as s, open(tmp, "w", encoding="utf-8") as f:
        names = {}
        for sp in s.scalars(select(SpaceRow).order_by(SpaceRow.id)):
            names[sp.id] = sp.name
            f.write(json.dumps({"type": "space", "name": sp.name, "dim": sp.dim, "key_source": sp.key_source, "created_at": _dt(sp.created_at)}) + "\n")
        after = 0
        while rows := s.scalars(select(SlotRow).where(SlotRow.id > after).order_by(SlotRow.id).limit(_CHUNK)).all():
            for r in rows:
                f.write(json.dumps({
                    "type": "slot", "id": r.id, "space": names[r.space_id],
                    "user_id": r.user_id, "agent_id": r.agent_id, "session_id": r.session_id,
                    "text": r.text, "label": r.label, "metadata": r.metadata_ or {},
                    "reads": r.reads, "writes": r.writes, "last_access": _dt(r.last_access),
                    "created_at": _dt(r.created_at), "updated_at": _dt(r.updated_at),
                    "key": _b64(r.key), "value": _b64(r.value),
                    **({"superseded_by": r.superseded_by} if r.superseded_by is not None else {}),
                }, ensure_ascii=False) + "\n")
            written += len(rows)
            after = rows[-1].id
            s.expunge_all()
        after = 0
        while rows := s.scalars(select(EventRow).where(EventRow.id > after).order_by(EventRow.id).limit(_CHUNK)).all():
            for e in rows:
                record = {
                    "type": "event", "slot_id": e.slot_id, "space": names[e.space_id], "kind": e.kind,
                    "old_text": e.old_text, "new_text": e.new_text,
                    "old_metadata": e.old_metadata, "new_metadata": e.new_metadata, "at": _dt(e.at),
                }
                if e.slot_last is not None:  # one event for slots slot_id..slot_last (a bulk add)
                    record["slot_last"] = e.slot_last
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            after = rows[-1].id
            s.expunge_all()
    return written


class _Bad(Exception):
    """A field of one line is not usable (turned into InvalidInputError with the line's place)."""


def _parse_dt(value: Any, field: str, *, required: bool = True) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{field} must be an ISO date-time string, got {value!r:.40}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"{field}: {value!r:.40} is not an ISO date-time") from None
    try:  # PostgreSQL stores an instant in UTC, and would keep the years 0 and 10000 but never read them back
        (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except OverflowError:
        raise _Bad(f"{field}: {value!r:.40} lies outside the years 1 to 9999 in UTC") from None
    return when


def _parse_vec(value: Any, field: str, dim: int | None, *, required: bool) -> bytes | None:
    """A base64 float32 vector: finite, and for a key of ``dim`` numbers, not all zero."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{field} must be a base64 string of float32 numbers")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise _Bad(f"{field} is not base64") from None
    if len(raw) % 4 or (dim is not None and len(raw) != 4 * dim):
        raise _Bad(f"{field} does not hold {dim if dim is not None else 'whole'} float32 numbers")
    v = np.frombuffer(raw, dtype=np.float32)
    if not np.isfinite(v).all():
        raise _Bad(f"{field} holds NaN or infinite values")
    if dim is not None and not (v != 0).any():
        raise _Bad(f"{field} is all zeros; a key needs a direction")
    return raw


def _string(value: Any, field: str, max_len: int, *, required: bool = False) -> str | None:
    """None (unless ``required``) or a non-empty string of at most ``max_len`` characters without
    NUL or lone surrogates: what SQLite and PostgreSQL both store."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _Bad(f"{field} must be a non-empty string of at most {max_len:,} characters{'' if required else ' or null'}, got {value!r:.40}")
    try:
        return check_chars(value, field)
    except InvalidInputError as exc:
        raise _Bad(str(exc)) from None


def _count(value: Any, field: str, *, least: int, below: int = 2**63) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value < below:
        raise _Bad(f"{field} must be an integer from {least} to {below - 1:,}, got {value!r:.40}")
    return value


def _metadata(value: Any, field: str, *, required: bool) -> dict[str, Any] | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise _Bad(f"{field} must be a JSON object")
    try:
        return check_metadata(value)
    except InvalidInputError as exc:
        raise _Bad(f"{field}: {exc}") from None


def _space_line(obj: dict[str, Any], spaces: dict[str, dict]) -> None:
    name = _string(obj["name"], "space name", 200, required=True)
    try:
        check_space_name(name)  # as create_space: the name is also the space's index file name
    except InvalidInputError as exc:
        raise _Bad(str(exc)) from None
    sp = {"name": name, "dim": _count(obj["dim"], "dim", least=1, below=MAX_DIM + 1), "key_source": _string(obj["key_source"], "key_source", 500, required=True),
          "created_at": _parse_dt(obj["created_at"], "created_at")}
    if name in spaces and (spaces[name]["dim"], spaces[name]["key_source"]) != (sp["dim"], sp["key_source"]):
        raise _Bad(f"space {name!r} is declared twice, with different dimensions or key sources")
    spaces[name] = sp


def _space_of(obj: dict[str, Any], spaces: dict[str, dict]) -> dict:
    name = obj["space"]
    if not isinstance(name, str) or name not in spaces:
        raise _Bad(f"space {name!r:.40} is not declared by a space line above it")
    return spaces[name]


def _slot_line(obj: dict[str, Any], spaces: dict[str, dict], seen: dict[int, int], n: int) -> dict[str, Any]:
    sp = _space_of(obj, spaces)
    slot_id = _count(obj["id"], "id", least=1)
    if slot_id in seen:
        raise _Bad(f"slot id {slot_id} is already used on line {seen[slot_id]}")
    seen[slot_id] = n
    text = obj["text"]
    if text is not None:
        if not isinstance(text, str):
            raise _Bad(f"text must be a string or null, got {type(text).__name__}")
        try:
            check_text(text)
        except InvalidInputError as exc:
            raise _Bad(str(exc)) from None
    return {
        "id": slot_id, "space": sp["name"],
        "user_id": _string(obj["user_id"], "user_id", 255), "agent_id": _string(obj["agent_id"], "agent_id", 255),
        "session_id": _string(obj["session_id"], "session_id", 255), "text": text, "label": _string(obj["label"], "label", 500),
        "metadata_": _metadata(obj["metadata"], "metadata", required=True),
        "reads": _count(obj["reads"], "reads", least=0, below=_INT32), "writes": _count(obj["writes"], "writes", least=0, below=_INT32),
        "last_access": _parse_dt(obj["last_access"], "last_access", required=False), "created_at": _parse_dt(obj["created_at"], "created_at"),
        "updated_at": _parse_dt(obj["updated_at"], "updated_at"),
        "key": _parse_vec(obj["key"], "key", sp["dim"], required=True), "value": _parse_vec(obj["value"], "value", None, required=False),
        "superseded_by": None if obj.get("superseded_by") is None else _count(obj["superseded_by"], "superseded_by", least=1),
    }


def _event_line(obj: dict[str, Any], spaces: dict[str, dict]) -> dict[str, Any]:
    sp = _space_of(obj, spaces)
    first = _count(obj["slot_id"], "slot_id", least=1)
    last = obj.get("slot_last")
    if last is not None:
        _count(last, "slot_last (the last slot of a bulk add, at or after slot_id)", least=first)
    texts = {}
    for field in ("old_text", "new_text"):
        value = obj[field]
        if value is not None:
            if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
                raise _Bad(f"{field} must be a string of at most {MAX_TEXT_CHARS:,} characters or null")
            try:
                check_chars(value, field)
            except InvalidInputError as exc:
                raise _Bad(str(exc)) from None
        texts[field] = value
    return {
        "slot_id": first, "slot_last": last, "space": sp["name"], "kind": _string(obj["kind"], "kind", 16, required=True), **texts,
        "old_metadata": _metadata(obj["old_metadata"], "old_metadata", required=False),
        "new_metadata": _metadata(obj["new_metadata"], "new_metadata", required=False), "at": _parse_dt(obj["at"], "at"),
    }


def _read(path: Path) -> tuple[dict[str, dict], list[dict], list[dict], dict[Any, int]]:
    """Every line of the file, checked: the spaces, slots and events to insert, and the line of
    each slot id and space name. Raises on the first line that is not usable, naming it; nothing
    has been written then."""
    spaces: dict[str, dict] = {}
    slots: list[dict] = []
    events: list[dict] = []
    seen: dict[Any, int] = {}  # slot id or space name -> the line that gave it
    try:
        f = open(path, "rb")  # decoded line by line, so that a line that is not UTF-8 is named by its number
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path} ({exc.strerror}); give the file written by export") from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError(f"{path.name}:{n}: not UTF-8 text; give the file written by export; nothing was imported") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise _Bad("a line must be a JSON object")
                kind = obj["type"]
                if kind == "space":
                    _space_line(obj, spaces)
                    seen.setdefault(obj["name"], n)
                elif kind == "slot":
                    slots.append(_slot_line(obj, spaces, seen, n))
                elif kind == "event":
                    events.append(_event_line(obj, spaces))
                else:
                    raise _Bad(f"unknown line type {kind!r:.40}")
            except _Bad as exc:
                raise InvalidInputError(f"{path.name}:{n}: {exc}; nothing was imported") from None
            except KeyError as exc:
                raise InvalidInputError(f"{path.name}:{n}: field {exc} is missing; nothing was imported") from None
            except (ValueError, TypeError, RecursionError) as exc:
                raise InvalidInputError(f"{path.name}:{n}: not a mindstore export line ({exc.__class__.__name__}: {str(exc)[:80]}); "
                                        "give the file written by export; nothing was imported") from None
    return spaces, slots, events, seen


def import_jsonl(sessions: sessionmaker[Session], engine: Engine, path: Any) -> int:
    path = _file_path(path, "import from")
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist; give the file written by export")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give the file written by export")
    spaces, slots, events, lines = _read(path)
    try:
        return _insert(sessions, engine, spaces, slots, events, lambda key: f"{path.name}:{lines[key]}")
    except SQLAlchemyError as exc:  # the checks above are meant to leave nothing for the database to refuse
        raise DatabaseError(f"the database refused the import of {path.name}, and nothing was imported: {str(exc).splitlines()[0]}") from exc


def _insert(sessions: sessionmaker[Session], engine: Engine, spaces: dict[str, dict], slots: list[dict], events: list[dict],
            where: Callable[[Any], str]) -> int:
    """Insert what :func:`_read` checked, in one transaction; ``where`` names the line of a slot id
    or space name that clashes with this store's own."""
    with sessions() as s, s.begin():
        existing = {r.name: r for r in s.scalars(select(SpaceRow))}
        for name, sp in spaces.items():
            have = existing.get(name)
            if have is not None and (have.dim != sp["dim"] or have.key_source != sp["key_source"]):
                raise InvalidInputError(f"{where(name)}: space {name!r} exists here with dim {have.dim} / {have.key_source}, the file has {sp['dim']} / "
                                        f"{sp['key_source']}; import into a store without it; nothing was imported")
        ids = [sl["id"] for sl in slots]
        for start in range(0, len(ids), _CHUNK):
            chunk_ids = ids[start : start + _CHUNK]
            clash = sorted(s.scalars(select(SlotRow.id).where(SlotRow.id.in_(chunk_ids)).limit(5)).all(), key=chunk_ids.index)  # in file order
            if clash:
                raise InvalidInputError(f"{where(clash[0])}: slot ids {clash} already exist in this store; import into an empty store or one "
                                        "without them; nothing was imported")
        for name, sp in spaces.items():
            if name not in existing:
                row = SpaceRow(**sp)
                s.add(row)
                s.flush()
                existing[name] = row
        space_ids = {name: row.id for name, row in existing.items()}
        for start in range(0, len(slots), _CHUNK):
            chunk = [{**{k: v for k, v in sl.items() if k != "space"}, "space_id": space_ids[sl["space"]]} for sl in slots[start : start + _CHUNK]]
            s.execute(insert(SlotRow), chunk)
        for start in range(0, len(events), _CHUNK):
            chunk = [{**{k: v for k, v in e.items() if k != "space"}, "space_id": space_ids[e["space"]]} for e in events[start : start + _CHUNK]]
            s.execute(insert(EventRow), chunk)
        if engine.dialect.name == "postgresql":
            # Explicit ids do not advance PostgreSQL's sequence; move it past them.
            for table in ("slots", "events"):
                s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"))
    return len(slots)
