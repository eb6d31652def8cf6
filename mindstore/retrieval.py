"""How a text search finds its slots beyond the dense key: the text each index sees, rank fusion,
reranking, and the time of a memory.

- **Context.** A turn of a conversation ("I ran it yesterday!") says less than what it meant: who
  said it and when. ``indexed_text`` folds the speaker and the date kept in a slot's metadata into
  the text the lexical index sees, so a question naming a person or a month finds the turn without
  the user repeating either. The slot's own text, and the dense key made from it, are left as
  given (folded into the key, the context blurred it: see docs/benchmarks.md).
- **Fusion.** Dense and lexical candidates are merged by a weighted sum of the two scores, each
  min-max scaled over the candidates (``Config.fusion="weighted"``, the default: ``fused_scores``),
  or by reciprocal rank fusion (Cormack et al. 2009; ``fusion="rrf"``):
  ``score(d) = sum_r 1 / (RRF_K + rank_r(d))``, which needs no score calibration between cosine
  similarities and BM25.
- **Reranking.** When the caller supplies a cross-encoder (anything with sentence-transformers'
  ``CrossEncoder.predict([(query, text), ...])``), the fused head is reordered by its scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from .errors import InvalidInputError

__all__ = ["FUSIONS", "MODES", "RRF_K", "Reranker", "check_mode", "check_reranker", "fuse", "fused_scores", "indexed_text", "occurred_at_value", "rerank",
           "reranked", "rrf_scores", "time_filter"]

FUSIONS = ("weighted", "rrf")

MODES = ("hybrid", "dense", "lexical")
RRF_K = 60  # the constant of Cormack et al.; large enough that no single ranking dominates


class Reranker(Protocol):
    def predict(self, sentences: list[tuple[str, str]], /, **kwargs: Any) -> Any: ...


def check_reranker(reranker: Any) -> Reranker | None:
    """None, or an object with a ``predict`` method (a sentence-transformers CrossEncoder)."""
    if reranker is not None and not callable(getattr(reranker, "predict", None)):
        raise InvalidInputError(f"reranker must be a CrossEncoder (an object with predict(pairs)) or None, not {type(reranker).__name__}")
    return reranker


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(repr(m) for m in MODES)}, not {mode!r}")
    return mode


def occurred_at_value(when: Any, what: str = "occurred_at") -> str:
    """A datetime or ISO 8601 string as the UTC ISO string kept in metadata (naive means UTC):
    one format, so that time ranges compare as strings."""
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError as exc:
            raise InvalidInputError(f"{what} {when!r} is not an ISO 8601 date or datetime; pass e.g. '2023-05-08T13:56'") from exc
    if not isinstance(when, datetime):
        raise InvalidInputError(f"{what} must be a datetime or an ISO 8601 string, not {type(when).__name__}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.astimezone(timezone.utc).isoformat(timespec="seconds")
    except OverflowError:  # e.g. 9999-12-31T23:59-01:00 is in the year 10000 in UTC
        raise InvalidInputError(f"{what} {when.isoformat()!r} lies outside the years 1 to 9999 in UTC; pass a date within them") from None


def time_filter(filters: Mapping[str, Any] | None, since: Any, until: Any) -> Mapping[str, Any] | None:
    """``filters`` narrowed to slots whose ``occurred_at`` lies in [since, until] (either may be None)."""
    if since is None and until is None:
        return filters
    rng: dict[str, str] = {}
    if since is not None:
        rng["$gte"] = occurred_at_value(since, "since")
    if until is not None:
        rng["$lte"] = occurred_at_value(until, "until")
    if "$gte" in rng and "$lte" in rng and rng["$gte"] > rng["$lte"]:
        raise InvalidInputError(f"since ({rng['$gte']}) is after until ({rng['$lte']}); swap them")
    window = {"occurred_at": rng}
    return window if not filters else {"$and": [dict(filters), window]}


def indexed_text(text: str, metadata: Mapping[str, Any]) -> str:
    """The text the indexes see: ``"<speaker> (<day month year>): <text>"`` from the metadata keys
    ``speaker`` (or ``name``) and ``occurred_at``; the text alone when neither is set."""
    speaker = metadata.get("speaker") or metadata.get("name")
    when = metadata.get("occurred_at")
    date = ""
    if isinstance(when, str):
        try:
            d = datetime.fromisoformat(when)
            date = f"{d.day} {d:%B %Y}"
        except ValueError:
            date = ""
    head = " ".join(p for p in (speaker if isinstance(speaker, str) else "", f"({date})" if date else "") if p)
    return f"{head}: {text}" if head else text


def rrf_scores(rankings: Sequence[Sequence[int]]) -> dict[int, float]:
    """The reciprocal rank fusion score of every id of ``rankings`` (each best first)."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, i in enumerate(ranking):
            score[i] = score.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
    return score


def fuse(rankings: Sequence[Sequence[int]], limit: int | None = None) -> list[int]:
    """Reciprocal rank fusion of id rankings (best first); ties go to the smaller id."""
    score = rrf_scores(rankings)
    order = sorted(score, key=lambda i: (-score[i], i))
    return order if limit is None else order[:limit]


def fused_scores(dense: Mapping[int, float], lexical: Mapping[int, float], dense_weight: float) -> dict[int, float]:
    """A score for every id of ``dense`` (cosine of every candidate): a convex combination of the
    two scores, each scaled to [0, 1] over the candidates (min-max; BM25 is 0 where a word is
    absent): ``w * cos' + (1 - w) * bm25'``. Unlike rank fusion it keeps how far apart two scores
    are, so a clear winner of one index is not outvoted by slots both rank as mediocre (Bruch et
    al. 2023, 'An analysis of fusion functions for hybrid retrieval')."""
    if not dense:
        return {}
    lo, hi = min(dense.values()), max(dense.values())
    top = max(lexical.values(), default=0.0)
    def norm(i: int) -> float:
        c = (dense[i] - lo) / (hi - lo) if hi > lo else 1.0
        b = lexical.get(i, 0.0) / top if top > 0 else 0.0
        return dense_weight * c + (1.0 - dense_weight) * b
    return {i: norm(i) for i in dense}


def reranked(reranker: Reranker, query: str, ids: Sequence[int], texts: Mapping[int, str]) -> list[tuple[int, float]]:
    """``(id, score)`` for ``ids`` by the cross-encoder's score of (query, text), best first; ties
    keep the given order."""
    if not ids:
        return []
    scores = [float(s) for s in reranker.predict([(query, texts[i]) for i in ids])]
    if len(scores) != len(ids):
        raise InvalidInputError(f"the reranker returned {len(scores)} scores for {len(ids)} pairs; pass a sentence-transformers CrossEncoder")
    return [(i, -s) for s, _, i in sorted(zip([-s for s in scores], range(len(ids)), ids))]


def rerank(reranker: Reranker, query: str, ids: Sequence[int], texts: Mapping[int, str]) -> list[int]:
    """``ids`` reordered by the cross-encoder's score of (query, text), best first; ties keep the
    given order."""
    return [i for i, _ in reranked(reranker, query, ids, texts)]
