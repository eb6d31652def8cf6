"""Search: scoped dense, lexical and hybrid retrieval over a space's derived indexes, checked
against SQL rows (invariant 2: nothing outside the scope and filters is ever returned)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from ..db import SlotRow, scope_where
from ..errors import InvalidInputError, InvalidVectorError
from ..filters import Predicate, compile_filter
from ..lexical import tokenize
from ..retrieval import Reranker, check_mode, check_reranker, fused_scores, reranked, rrf_scores, time_filter
from ..slots import Hit, Scope, occurred_at_of
from ..spaces import SpaceIndex, keys_from_bytes
from ..timeref import TimeHint, check_now, parse_time, parse_when
from ..validate import check_k, check_min_score, check_scope, check_text, check_vectors
from ..versions import newest_first
from .deletes import Deleter
from .keys import TextKeys
from .reads import to_slot
from .registry import Registry
from .state import Shared
from .usage import Reads

__all__ = ["Searcher"]

# A search's candidate rows: Core rows (no ORM identity map) from a statement built once.
_HIT_ROWS = select(*(c.label("metadata_") if c.name == "metadata" else c for c in SlotRow.__table__.c)).where(
    SlotRow.__table__.c.id.in_(bindparam("ids", expanding=True))
)
# Whether a space holds any superseded slot: one probe of a partial index, built once.
_ANY_SUPERSEDED = select(SlotRow.__table__.c.id).where(
    SlotRow.__table__.c.space_id == bindparam("space"), SlotRow.__table__.c.superseded_by.is_not(None)).limit(1)
GROUPS = {"session": "session_id", "user": "user_id", "agent": "agent_id"}
_GROUP_DEPTH = 10  # a grouped search looks at this many candidates per group asked for


@dataclass(frozen=True)
class _Ask:
    """One search's checked options."""

    k: int
    scope: Scope
    pred: Predicate | None
    min_score: float | None
    query: str | None = None
    mode: str = "dense"
    reranker: Reranker | None = None
    group_by: str | None = None  # a row attribute: session_id, user_id or agent_id
    include_superseded: bool = False
    hint: TimeHint | None = None
    versions: bool = True
    count_reads: bool = True


def _recency(row: Any) -> tuple[str, int]:
    """How recent a slot's fact is: when it happened (``occurred_at``; undated slots count as
    older), then the order it was written in (ids only grow)."""
    when = (row.metadata_ or {}).get("occurred_at")
    return (when if isinstance(when, str) else ""), int(row.id)


def _in_window(row: Any, hint: TimeHint) -> float:
    """1 when a slot's ``occurred_at`` lies in the hint's window, 0.5 when it follows the window
    by no more than the window's length (at least a week), else 0."""
    t = occurred_at_of(row.metadata_ or {})
    if t is None:
        return 0.0
    if (hint.since is None or t >= hint.since) and (hint.until is None or t <= hint.until):
        return 1.0
    if hint.until is not None and t > hint.until:
        span = hint.until - hint.since if hint.since is not None else timedelta(0)
        return 0.5 if t - hint.until <= max(span, timedelta(days=7)) else 0.0
    return 0.0


def _one_per_group(order: Sequence[int], rows: Mapping[int, Any], group_by: str) -> list[int]:
    """The best-ranked slot of each group (``group_by``: a scope field), in rank order; slots
    with no value for it stand alone."""
    seen: set[Any] = set()
    out = []
    for i in order:
        g = getattr(rows[i], group_by)
        key = ("slot", i) if g is None else g
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def _check_flags(**flags: Any) -> None:
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidInputError(f"{name} must be True or False, not {flag!r:.40}")


def _any_superseded(s: Connection, sp: SpaceIndex) -> bool:
    """Whether the space holds a superseded version: one probe of a partial index."""
    return s.execute(_ANY_SUPERSEDED, {"space": sp.space_id}).first() is not None


def _candidates(s: Connection, sp: SpaceIndex, scope: Scope, pred: Predicate | None, *, current_only: bool) -> np.ndarray | None:
    """Ids that a scoped or filtered search may return (None: the whole space). ``current_only``
    leaves superseded versions out (say False when the space has none: see _any_superseded)."""
    if scope == Scope() and pred is None and not current_only:
        return None
    where = scope_where(sp.space_id, scope)
    if current_only:
        where.append(SlotRow.superseded_by.is_(None))
    if pred is None:
        return np.array(s.scalars(select(SlotRow.id).where(*where)).all(), dtype=np.int64)
    rows = s.execute(select(SlotRow.id, SlotRow.metadata_).where(*where)).all()
    return np.array([r[0] for r in rows if pred(r[1] or {})], dtype=np.int64)


class Searcher:
    """The searches of one store."""

    def __init__(self, shared: Shared, registry: Registry, keys: TextKeys, reads: Reads, deleter: Deleter) -> None:
        self._shared = shared
        self._registry = registry
        self._keys = keys
        self._reads = reads
        self._deleter = deleter

    @staticmethod
    def _basics(k: Any, scope_args: tuple[Any, Any, Any], filters: Any, min_score: Any) -> tuple[int, Scope, Predicate | None, float | None]:
        return check_k(k), check_scope(*scope_args), compile_filter(filters), check_min_score(min_score)

    def text(self, query: Any, k: Any, scope_args: tuple[Any, Any, Any], filters: Any, min_score: Any, *, mode: Any, since: Any,
             until: Any, reranker: Any, now: Any, group_by: Any, include_superseded: Any, newest_first: Any, count_reads: Any,
             default_reranker: Reranker | None) -> list[Hit]:
        """``MindStore.search``: options checked, the time the question names read, then one search."""
        check_text(query, "query")
        mode = check_mode(self._shared.config.search_mode if mode is None else mode)
        check_reranker(reranker)
        if group_by is not None and group_by not in GROUPS:
            raise InvalidInputError(f"group_by must be one of {', '.join(map(repr, GROUPS))} or None, not {group_by!r}")
        _check_flags(include_superseded=include_superseded, newest_first=newest_first, count_reads=count_reads)
        at = check_now(now)
        local = check_now(now, keep_zone=True)  # calendar words are read in the caller's timezone
        window = time_filter(filters, None if since is None else parse_when(since, local, "since"), None if until is None else parse_when(until, local, "until"))
        k, scope, pred, min_score = self._basics(k, scope_args, window, min_score)
        hint = parse_time(query, local)
        if hint.since is not None and hint.since > at:  # a plan ("this weekend"): nothing has happened there yet
            hint = TimeHint(None, None, hint.order, None)
        with self._shared.lock:
            sp = self._registry.text_space(create=False)
        if sp is None:
            return []
        ask = _Ask(k, scope, pred, min_score, query, mode, reranker or default_reranker, GROUPS.get(group_by), include_superseded,
                   None if hint.empty else hint, newest_first, count_reads)
        return self._search(sp, self._keys.embed([query]), ask)[0]

    def vectors(self, vectors: Any, space: str | None, k: Any, scope_args: tuple[Any, Any, Any], filters: Any, min_score: Any,
                count_reads: Any) -> list[list[Hit]]:
        """``MindStore.search_vectors``: one index search, one SQL read and one usage count."""
        basics = self._basics(k, scope_args, filters, min_score)
        _check_flags(count_reads=count_reads)
        with self._shared.lock:
            sp = self._registry.resolve(space)
        if sp is None:
            return [[] for _ in range(len(np.atleast_2d(np.asarray(vectors))))]
        return self._search(sp, check_vectors(vectors, sp.dim, "query vector"), _Ask(*basics, count_reads=count_reads))

    @staticmethod
    def one_vector(vector: Any) -> np.ndarray:
        """``MindStore.search_vector``'s query: one row of numbers (checked further by the search)."""
        try:
            q = np.asarray(vector, dtype=np.float32) if not isinstance(vector, np.ndarray) else vector
        except (TypeError, ValueError) as exc:
            raise InvalidVectorError(f"the query vector must be numbers, one row: {exc}") from None
        if q.ndim == 2 and len(q) != 1:
            raise InvalidVectorError("search_vector takes one query vector; use search_vectors for several")
        return q

    def _search(self, sp: SpaceIndex, q: np.ndarray, ask: _Ask) -> list[list[Hit]]:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        with self._shared.lock:
            self._shared.check_open()
            if self._deleter.retention.ttl is not None:
                sp.catch_up()
                self._reads.flush()  # a read not yet written still counts as an access
                self._deleter.evict(sp, ttl_only=True)  # expired slots are never returned
            found = self._gather(sp, q, ask)
            if found is None:
                return [[] for _ in q]
            cands, lexical, rows = found
            results = [self._order(q[qi], cand, lexical[qi] if lexical else None, rows, ask) for qi, cand in enumerate(cands)]
            if not ask.count_reads:
                return [[Hit(sc, to_slot(r, sp.name, *self._reads.unwritten(r.id)), at) for sc, at, r in ranked] for ranked in results]
            unwritten, now = self._reads.count(sorted({r.id for ranked in results for _, _, r in ranked}))
            return [[Hit(sc, to_slot(r, sp.name, unwritten[r.id], now), at) for sc, at, r in ranked] for ranked in results]

    def _gather(self, sp: SpaceIndex, q: np.ndarray, ask: _Ask) -> tuple[list[list[int]], list[tuple[list[int], dict[int, float]]], dict[int, Any]] | None:
        """Candidates from the key index and, for hybrid and lexical, BM25 (per query: ranking and
        scores), and their rows, read in one snapshot. None when the scope holds nothing."""
        # Fusion and reranking look deeper than k: a slot ranked 30th by one index can win.
        depth = ask.k + max(ask.k, 10) if ask.mode == "dense" else max(ask.k + max(ask.k, 10), self._shared.config.fusion_depth)
        if ask.group_by is not None:
            depth = max(depth, ask.k * _GROUP_DEPTH)  # k sessions need more than k turns
        lexical: list[tuple[list[int], dict[int, float]]] = []
        with self._shared.read_connection() as s:  # reads only: a Connection costs less than an ORM Session
            if not sp.in_sql or ask.mode != "dense":  # a key table has nothing to catch up; BM25's statistics follow the sequence
                sp.catch_up(s)  # on this connection: one indexed max() when nothing changed
            # A pgvector space filters by scope in its own statement: the ids are read first
            # only for what it cannot do there (a metadata filter; BM25's subset).
            scoped_in_sql = sp.in_sql and ask.pred is None and ask.mode == "dense"
            # Leaving superseded versions out costs a filter (FAISS: the ids; pgvector: a join
            # with the slots), needed only when the space has any.
            current = not ask.include_superseded and _any_superseded(s, sp)
            subset = None if scoped_in_sql else _candidates(s, sp, ask.scope, ask.pred, current_only=current)
            if subset is not None and len(subset) == 0:
                return None
            cands: list[list[int]] = [[] for _ in q]
            if ask.mode != "lexical":
                # The index proposes candidates (FAISS: from float16 codes, with a margin); the
                # float32 keys in SQL decide the order and the scores.
                if sp.in_sql:  # the scope in SQL; ids only for what SQL cannot filter (metadata)
                    _, ids = sp.search_scoped(q, depth, ask.scope, current, subset if ask.pred is not None else None, s)
                else:
                    _, ids = sp.index.search(q, depth, subset=subset)
                cands = [[int(i) for i in row if i >= 0] for row in ids]
            if ask.mode != "dense" and ask.query is not None:
                lex = self._registry.lexical(sp)
                lex.catch_up(sp.index.seq)  # the key index has just caught up to the space's last change
                found, bm25 = lex.search(ask.query, depth, subset, **({"conn": s} if sp.in_sql else {}))  # PostgreSQL's BM25: on this connection
                lexical = [(found.tolist(), dict(zip(found.tolist(), bm25.tolist())))]
            wanted = sorted({i for c in cands + [ranking for ranking, _ in lexical] for i in c})
            rows = {r.id: r for r in s.execute(_HIT_ROWS, {"ids": wanted})} if wanted else {}
        return cands, lexical, rows

    def _allowed(self, cand: list[int], words: list[int], rows: dict[int, Any], ask: _Ask) -> dict[int, Any]:
        """Invariant 2, checked again on the rows themselves: nothing outside scope and filters
        leaves, from either index; nor does a superseded version unless asked for."""
        def keep(r: Any) -> bool:
            return ask.scope.contains(r) and (ask.pred is None or ask.pred(r.metadata_ or {})) and (ask.include_superseded or r.superseded_by is None)

        return {i: rows[i] for i in dict.fromkeys(cand + words) if i in rows and keep(rows[i])}

    def _order(self, q: np.ndarray, cand: list[int], lexical: tuple[list[int], dict[int, float]] | None, rows: dict[int, Any],
               ask: _Ask) -> list[tuple[float, float, Any]]:
        """One query's hits: (cosine, rank score, row), best first."""
        allowed = self._allowed(cand, lexical[0] if lexical else [], rows, ask)
        if not allowed:
            return []
        keys = keys_from_bytes([r.key for r in allowed.values()], len(q))
        unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
        cosine = dict(zip(allowed, (unit @ q).tolist()))
        dense = sorted((i for i in cand if i in allowed), key=lambda i: (-cosine[i], i))
        words = [i for i in lexical[0] if i in allowed] if lexical else []
        rank = self._rank(ask.mode, dense, words, cosine, lexical[1] if lexical else {}, allowed, ask.hint)
        order = sorted(rank, key=lambda i: (-rank[i], i))
        config = self._shared.config
        if ask.reranker is not None and ask.query is not None and ask.mode != "dense":
            head = order[: max(ask.k, config.rerank_depth)]
            rank = dict(reranked(ask.reranker, ask.query, head, {i: allowed[i].text or "" for i in head}))
            order = list(rank)
        if ask.group_by is not None:
            order = _one_per_group(order, allowed, ask.group_by)
        if ask.query is not None and ask.versions:
            # Versions are reordered among the hits returned; a newer version of one of them that
            # ranked just below k is returned with it.
            tokens = functools.lru_cache(maxsize=None)(lambda i: frozenset(tokenize(allowed[i].text or "")))
            order = newest_first(order, dict(zip(allowed, unit)), lambda i: _recency(allowed[i]), tokens, frozenset(tokenize(ask.query)),
                                 config.version_threshold, earliest=ask.hint is not None and ask.hint.order == "earliest",
                                 # sessions and users are not statements of a fact
                                 change_threshold=config.change_threshold if ask.group_by is None else None,
                                 relevance=cosine, k=ask.k)
        order = order[: ask.k]
        # Hit.rank_score: a newer version moved into an older one's place takes that place's
        # score, so the scores go down the list as the order does.
        places = sorted((rank[i] for i in order), reverse=True)
        return [(cosine[i], place, allowed[i]) for i, place in zip(order, places) if ask.min_score is None or cosine[i] >= ask.min_score]

    def _rank(self, mode: str, dense: list[int], words: list[int], cosine: dict[int, float], bm25: dict[int, float],
              rows: Mapping[int, Any], hint: TimeHint | None) -> dict[int, float]:
        """The score a search orders the candidates by (before reranking and versions; ties go to
        the smaller id): each mode's score in [0, 1], plus ``Config.time_weight`` for a slot whose
        ``occurred_at`` lies in the window the question names (half of it within the window's
        length after it: a conversation often tells of something days after it happened)."""
        config = self._shared.config
        if mode == "hybrid" and config.fusion == "rrf":
            return rrf_scores([dense, words])
        if mode == "lexical":
            top = max((bm25[i] for i in words), default=0.0) or 1.0
            scores = {i: bm25[i] / top for i in words}
        elif mode == "dense":
            scores = fused_scores({i: cosine[i] for i in dense}, {}, 1.0)
        else:  # every candidate of either index, the lexical-only ones included
            scores = fused_scores(cosine, {i: bm25[i] for i in words}, config.dense_weight)
        if hint is not None and (hint.since is not None or hint.until is not None) and config.time_weight > 0 and scores:
            inside = {i: _in_window(rows[i], hint) for i in scores}
            # A window that holds most candidates says little about which one is meant.
            weight = config.time_weight * (1.0 - sum(v == 1.0 for v in inside.values()) / len(inside))
            for i in scores:
                scores[i] += weight * inside[i]
        return scores
