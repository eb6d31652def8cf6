"""Export and import as JSON Lines, exact enough that export -> import -> export is byte-identical.

One object per line, in this order: ``{"type": "space", ...}`` for each space, ``{"type": "slot",
...}`` for each slot (key and value vectors as base64 float32), ``{"type": "event", ...}`` for each
history event, oldest first (deleted slots keep their history; an event with ``slot_last`` is one
bulk add of the slots ``slot_id`` to ``slot_last``).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from .db import EventRow, SlotRow, SpaceRow
from .errors import InvalidInputError

__all__ = ["export_jsonl", "import_jsonl"]

_CHUNK = 5_000


def _dt(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def export_jsonl(sessions: sessionmaker[Session], path: Path) -> int:
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
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
    tmp.replace(path)
    return written


def _parse_dt(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: {value!r} is not an ISO date-time") from exc


def _parse_vec(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}: vector is not base64") from exc
    if len(raw) % 4:
        raise InvalidInputError(f"{where}: vector length is not a whole number of float32s")
    return raw


def _superseded_by(value: Any, where: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInputError(f"{where}: superseded_by must be a slot id (a positive integer) or absent")
    return value


def import_jsonl(sessions: sessionmaker[Session], engine: Engine, path: Path) -> int:
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist; give the file written by export")
    spaces: dict[str, dict] = {}
    slots: list[dict] = []
    events: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = f"{path.name}:{n}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                kind = obj["type"]
                if kind == "space":
                    spaces[obj["name"]] = {"name": str(obj["name"]), "dim": int(obj["dim"]), "key_source": str(obj["key_source"]), "created_at": _parse_dt(obj["created_at"], where)}
                elif kind == "slot":
                    sp = spaces[obj["space"]]
                    key = _parse_vec(obj["key"], where)
                    if key is None or len(key) != 4 * sp["dim"]:
                        raise InvalidInputError(f"{where}: key does not have the space's {sp['dim']} dimensions")
                    if not isinstance(obj["metadata"], dict) or not isinstance(obj["id"], int):
                        raise InvalidInputError(f"{where}: bad id or metadata")
                    slots.append({
                        "id": obj["id"], "space": obj["space"], "user_id": obj["user_id"], "agent_id": obj["agent_id"],
                        "session_id": obj["session_id"], "text": obj["text"], "label": obj["label"],
                        "metadata_": obj["metadata"], "reads": int(obj["reads"]), "writes": int(obj["writes"]),
                        "last_access": _parse_dt(obj["last_access"], where), "created_at": _parse_dt(obj["created_at"], where),
                        "updated_at": _parse_dt(obj["updated_at"], where), "key": key, "value": _parse_vec(obj["value"], where),
                        "superseded_by": _superseded_by(obj.get("superseded_by"), where),
                    })
                elif kind == "event":
                    spaces[obj["space"]]  # noqa: B018 - must name a known space
                    last = obj.get("slot_last")
                    if last is not None and (not isinstance(last, int) or last < int(obj["slot_id"])):
                        raise InvalidInputError(f"{where}: slot_last must be a slot id at or after slot_id")
                    events.append({
                        "slot_id": int(obj["slot_id"]), "slot_last": last, "space": obj["space"], "kind": str(obj["kind"]),
                        "old_text": obj["old_text"], "new_text": obj["new_text"], "old_metadata": obj["old_metadata"],
                        "new_metadata": obj["new_metadata"], "at": _parse_dt(obj["at"], where),
                    })
                else:
                    raise InvalidInputError(f"{where}: unknown line type {kind!r}")
            except InvalidInputError:
                raise
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInputError(f"{where}: not a mindstore export line ({exc.__class__.__name__}: {exc})") from exc
    with sessions() as s, s.begin():
        existing = {r.name: r for r in s.scalars(select(SpaceRow))}
        for name, sp in spaces.items():
            have = existing.get(name)
            if have is not None and (have.dim != sp["dim"] or have.key_source != sp["key_source"]):
                raise InvalidInputError(f"space {name!r} exists here with dim {have.dim} / {have.key_source}, the file has {sp['dim']} / {sp['key_source']}")
        ids = [sl["id"] for sl in slots]
        if len(set(ids)) != len(ids):
            raise InvalidInputError(f"{path.name} repeats slot ids")
        for start in range(0, len(ids), _CHUNK):
            clash = s.scalars(select(SlotRow.id).where(SlotRow.id.in_(ids[start : start + _CHUNK])).limit(5)).all()
            if clash:
                raise InvalidInputError(f"slot ids {clash} already exist in this store; import into an empty store or one without them")
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
