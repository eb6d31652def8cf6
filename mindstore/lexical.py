"""The lexical index: BM25 over a text space's slots, kept in step with SQL like the key index.

Dense embeddings blur the names, places and dates that questions about long conversations turn on;
BM25 (Robertson and Zaragoza 2009) matches them exactly. Like the key index it is a derived cache:
saved with a checksum and the last change sequence (``events.id``) it applied, checked on open
(damaged, ahead of the database or miscounted: rebuilt from SQL; behind: caught up from the change
log), and caught up again before each search, so writes from other processes and a SIGKILL lose
nothing. It scores only the ids a search may return, so scoping is exact.

Postings are updated in place (add, replace, remove one slot in O(its terms)); per-term numpy
arrays are cached for scoring and dropped when a slot with that term changes. bm25s scores faster
but indexes a corpus at once, which a memory written one turn at a time cannot afford.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import zlib
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import Stemmer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .db import SlotRow, cache_header, event_slots, foreign_cache, last_seq, read_changes, slot_count
from .db.models import GAP_WAIT_S
from .retrieval import indexed_text

__all__ = ["Bm25", "LexicalIndex", "tokenize"]

log = logging.getLogger("mindstore")

_FORMAT = 1
_CHUNK = 20_000
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
# Function words: they match nearly every turn of a conversation and only add noise to BM25.
_STOP = frozenset(
    "a an and are as at be been but by did do does for from had has have he her hers him his how i i'm i've if in into is it "
    "it's its me my of on or our ours she so than that the their them then there these they this to too us was we were what "
    "when where which who whom why will with would you your yours am can could just about after before up out also very".split()
)
_stemmer = Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop words dropped, possessives cut (``Caroline's`` -> ``caroline``), stemmed."""
    words = [w[:-2] if w.endswith("'s") else w for w in _TOKEN.findall(text.lower())]
    return _stemmer.stemWords([w for w in words if w not in _STOP])


class Bm25:
    """BM25 over ``(id, tokens)`` documents with O(terms) add and remove."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._docs: dict[int, tuple[tuple[str, int], ...]] = {}  # id -> (term, tf) pairs
        self._len: dict[int, int] = {}
        self._postings: dict[str, dict[int, int]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # term -> (ids, tf, doc length), until a doc with it changes
        self._total_len = 0

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, id: int) -> bool:
        return id in self._docs

    def add(self, id: int, tokens: list[str]) -> None:
        """Index a document, replacing any earlier one with this id."""
        self.remove(id)
        counts = tuple(Counter(tokens).items())
        self._docs[id] = counts
        self._len[id] = len(tokens)
        self._total_len += len(tokens)
        for term, tf in counts:
            self._postings.setdefault(term, {})[id] = tf
            self._arrays.pop(term, None)

    def remove(self, id: int) -> bool:
        counts = self._docs.pop(id, None)
        if counts is None:
            return False
        self._total_len -= self._len.pop(id)
        for term, _ in counts:
            post = self._postings[term]
            del post[id]
            if not post:
                del self._postings[term]
            self._arrays.pop(term, None)
        return True

    def clear(self) -> None:
        self.__init__(self.k1, self.b)

    def _term(self, term: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        arrays = self._arrays.get(term)
        if arrays is None:
            post = self._postings.get(term)
            if not post:
                return None
            n = len(post)
            arrays = (np.fromiter(post.keys(), np.int64, n), np.fromiter(post.values(), np.float32, n), np.fromiter((self._len[i] for i in post), np.float32, n))
            self._arrays[term] = arrays
        return arrays

    def search(self, tokens: list[str], k: int, subset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best (ids, scores) with a positive score, best first, ties by smaller id;
        only ids in ``subset`` (sorted) when it is given."""
        n = len(self._docs)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
        if n == 0 or not tokens:
            return empty
        avgdl = self._total_len / n
        ids_parts, score_parts = [], []
        for term, qtf in Counter(tokens).items():
            arrays = self._term(term)
            if arrays is None:
                continue
            ids, tf, dl = arrays
            df = len(ids)
            if subset is not None:
                keep = np.isin(ids, subset, assume_unique=True)
                ids, tf, dl = ids[keep], tf[keep], dl[keep]
                if len(ids) == 0:
                    continue
            idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))  # Lucene's non-negative idf
            ids_parts.append(ids)
            score_parts.append(qtf * idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / avgdl)))
        if not ids_parts:
            return empty
        uniq, inverse = np.unique(np.concatenate(ids_parts), return_inverse=True)
        scores = np.bincount(inverse, weights=np.concatenate(score_parts)).astype(np.float32)
        top = np.lexsort((uniq, -scores))[:k]
        return uniq[top], scores[top]

    # -- persistence: the documents only; postings are rebuilt on load -----------------------------

    def to_json(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "docs": [[i, self._len[i], [list(p) for p in c]] for i, c in self._docs.items()]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bm25:
        self = cls(float(data["k1"]), float(data["b"]))
        for i, length, counts in data["docs"]:
            pairs = tuple((str(t), int(tf)) for t, tf in counts)
            self._docs[int(i)] = pairs
            self._len[int(i)] = int(length)
            self._total_len += int(length)
            for term, tf in pairs:
                self._postings.setdefault(term, {})[int(i)] = tf
        return self


class LexicalIndex:
    """One text space's :class:`Bm25`, its file, and the logic that keeps it true to SQL."""

    def __init__(self, space_id: int, name: str, sessions: sessionmaker[Session], path: Path | None, *, context: bool = True, save_every: int = 10_000) -> None:
        self.space_id = space_id
        self.name = name
        self.path = path
        self.context = context
        self._sessions = sessions
        self._save_every = save_every
        self.seq = 0
        self.gaps: dict[int, float] = {}  # change sequence numbers not yet seen -> when first missed
        self.dirty = False
        self.changes_since_save = 0
        self.repaired: str | None = None
        self.bm25 = Bm25()
        self._open()

    def __len__(self) -> int:
        """How many slots the index holds (those with text)."""
        return len(self.bm25)

    def _text(self, text: str | None, metadata: dict[str, Any] | None) -> list[str]:
        if text is None:
            return []
        return tokenize(indexed_text(text, metadata or {}) if self.context else text)

    def _open(self) -> None:
        loaded = self._load() if self.path is not None and self.path.exists() else None
        if loaded is None:
            self.repaired = self.repaired or ("rebuilt: no file" if self.path is not None else None)
            self.rebuild()
            return
        self.bm25, self.seq = loaded
        with self._sessions() as s:
            db_seq = last_seq(s, self.space_id)
        if self.seq > db_seq:
            log.warning("lexical index of space %r is ahead of the database; rebuilding", self.name)
            self.repaired = "rebuilt: index ahead of database"
            self.rebuild()
            return
        if self.seq < db_seq:
            self.catch_up()
            self.repaired = "caught up from change log"
        with self._sessions() as s:
            count = slot_count(s, self.space_id)
        if count != len(self.bm25):
            log.warning("lexical index of space %r holds %d slots, SQL %d; rebuilding", self.name, len(self.bm25), count)
            self.repaired = "rebuilt: count differs"
            self.rebuild()

    def rebuild(self) -> None:
        """Index every slot of the space from SQL, then catch up with changes made meanwhile."""
        self.bm25 = Bm25(self.bm25.k1, self.bm25.b)
        with self._sessions() as s:
            self.seq = last_seq(s, self.space_id)  # read first: changes made while we stream are re-applied by catch_up
            last = 0
            while True:
                rows = s.execute(
                    select(SlotRow.id, SlotRow.text, SlotRow.metadata_)
                    .where(SlotRow.space_id == self.space_id, SlotRow.id > last)
                    .order_by(SlotRow.id)
                    .limit(_CHUNK)
                ).all()
                if not rows:
                    break
                for i, text, meta in rows:
                    self.bm25.add(int(i), self._text(text, meta))
                last = int(rows[-1][0])
        self.catch_up()
        self.save()

    def catch_up(self, db_seq: int | None = None) -> int:
        """Apply every change logged since ``seq``, and any earlier one that committed late (the
        gaps, as the key index keeps them: ``db.read_changes``); return how many slots were
        refreshed. ``db_seq``: the space's last sequence when the caller has just read it (saves a
        query when nothing changed)."""
        now = time.monotonic()
        self.gaps = {g: t for g, t in self.gaps.items() if now - t < GAP_WAIT_S}
        if db_seq is not None and db_seq == self.seq and not self.gaps:
            return 0
        with self._sessions() as s:
            db_seq = last_seq(s, self.space_id)
            if db_seq < self.seq:  # the log was emptied (reset) or replaced: start again
                self.seq = 0
                self.gaps.clear()
                self.bm25.clear()
            if db_seq == self.seq and not self.gaps:
                return 0
            logged = read_changes(s, self.space_id, self.seq, db_seq, self.gaps, now)
            touched = sorted({i for _, first, last in logged for i in event_slots(first, last)})
            for start in range(0, len(touched), 10_000):
                chunk = touched[start : start + 10_000]
                found = {r[0]: r for r in s.execute(select(SlotRow.id, SlotRow.text, SlotRow.metadata_).where(SlotRow.id.in_(chunk))).all()}
                for i in chunk:
                    if i in found:
                        self.bm25.add(int(i), self._text(found[i][1], found[i][2]))
                    else:
                        self.bm25.remove(int(i))
        self.seq = max(db_seq, self.seq)
        self.dirty = True
        self.changes_since_save += len(touched)
        if self.changes_since_save >= self._save_every:
            self.save()
        return len(touched)

    def search(self, query: str, k: int, subset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` slot ids by BM25 for ``query`` (only those in ``subset`` when given)."""
        if subset is not None:
            subset = np.unique(np.asarray(subset, dtype=np.int64))
        return self.bm25.search(tokenize(query), k, subset)

    # -- persistence ---------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the documents and their metadata atomically (temp file, then rename). A save that
        cannot write (the folder is a file, the file a folder, the disk full) logs a warning and
        leaves the index dirty: the file is a cache, and the next open rebuilds it."""
        if self.path is not None:
            try:
                self._write()
            except OSError as exc:
                log.warning("cannot save the lexical index to %s (%s); it is rebuilt on the next open", self.path, exc)
                with suppress(OSError):
                    self.path.with_name(self.path.name + ".tmp").unlink(missing_ok=True)
                self.dirty = True
                self.changes_since_save = 0
                return
        self.dirty = False
        self.changes_since_save = 0

    def _write(self) -> None:
        assert self.path is not None
        data = zlib.compress(json.dumps(self.bm25.to_json(), separators=(",", ":")).encode(), 1)
        # The sequence the file says it applied, and what its header's fingerprint is of: before the
        # oldest open gap, so a reopen replays from there (re-applying a change is harmless).
        seq = int(min(self.seq, min(self.gaps, default=self.seq + 1) - 1))
        with self._sessions() as s:
            header = cache_header(s, self.space_id, seq)
        meta = {**header, "format": _FORMAT, "seq": seq, "count": len(self.bm25), "context": self.context, "bytes": len(data), "crc32": zlib.crc32(data)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        meta_path = self.path.with_name(self.path.name + ".json")
        tmp_meta = meta_path.with_name(meta_path.name + ".tmp")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)

    def save_if_dirty(self) -> None:
        if self.dirty:
            self.save()

    def _load(self) -> tuple[Bm25, int] | None:
        assert self.path is not None
        try:
            meta = json.loads(self.path.with_name(self.path.name + ".json").read_text())
            if not isinstance(meta, dict) or any(not isinstance(meta.get(k), int) or isinstance(meta.get(k), bool) for k in ("seq", "count", "bytes", "crc32")):
                raise ValueError(f"its metadata is not a lexical index's ({str(meta)[:80]})")
            data = self.path.read_bytes()
            if meta.get("format") != _FORMAT or meta.get("context") != self.context:
                raise ValueError(f"format {meta.get('format')} / context {meta.get('context')}")
            if len(data) != meta.get("bytes") or zlib.crc32(data) != meta.get("crc32"):
                raise ValueError("size or checksum differs from its metadata")
            bm25 = Bm25.from_json(json.loads(zlib.decompress(data)))
            if len(bm25) != meta.get("count"):
                raise ValueError("document count differs from its metadata")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zlib.error) as exc:
            log.warning("lexical index of space %r is unusable (%s); rebuilding from SQL", self.name, exc)
            self.repaired = "rebuilt: damaged file"
            return None
        with self._sessions() as s:
            foreign = foreign_cache(s, self.space_id, meta, meta["seq"])
        if foreign is not None:
            log.warning("lexical index file of space %r is not this database's (%s); rebuilding from SQL", self.name, foreign)
            self.repaired = "rebuilt: index of another database"
            return None
        return bm25, meta["seq"]
