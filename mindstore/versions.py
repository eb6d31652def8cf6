"""Versions of a fact: what a write does to the near-duplicates its scope already holds, and how
a search orders two versions of one fact.

A text added to a scope is compared with the scope's current memories (and the batch's earlier
texts) by cosine similarity of their keys. At or above ``Config.dedup_threshold`` the two are
*near-duplicates*, and then:

- the same statement after :func:`normalise` (letter case, Unicode width, quote style,
  punctuation and spacing set aside) **reinforces** the memory: no new slot, its write count
  grows and history records the restatement with its metadata;
- anything else (a changed number, date, name, a negation, an added clause) **supersedes** it: a
  new slot holds the new text and metadata, the old one is kept with ``superseded_by`` set and is
  skipped by searches unless they ask for it.

A caller may pass a resolver (an LLM, a rule) that decides for near-duplicates that differ.

Near-duplicates below the threshold stay separate slots. A search then breaks their tie by
recency: hits whose keys are at least ``Config.version_threshold`` alike, and that the question
does not tell apart (it names no value in which they differ: "what is the codeword w10x?" is no
tie between notes on w10x and w20x), are versions of one fact; among them the newest (by
``occurred_at``, then by write order; undated ones count as older) comes first, in the place the best of them earned
(oldest first when the question asks for the first time).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError

__all__ = ["Resolver", "Plan", "normalise", "plan_writes", "newest_first", "states_a_change", "CHANGE_CUES", "RESOLUTIONS"]

Resolver = Callable[[str, str], str]
"""``resolve(old_text, new_text)`` -> ``"reinforce"``, ``"supersede"`` or ``"add"`` (keep both)."""
RESOLUTIONS = ("reinforce", "supersede", "add")

# Punctuation is dropped unless a digit follows it: "555-1234", "3.5", "10:30", "-18", ".5" keep
# theirs (a sign or a decimal point is part of the number), a full stop after "200" does not.
_PUNCT = re.compile(r"[^\w\s]+(?!\d)")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'", "`": "'"})


def normalise(text: str) -> str:
    """The statement a text makes, for telling a restatement from a new version: NFKC (full-width
    letters become plain), case-folded, quotes unified, punctuation outside numbers and runs of
    white space reduced to one space."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)
    return " ".join(_PUNCT.sub(" ", t).split())


@dataclass(frozen=True)
class Plan:
    """What one text of a write does: ``"add"`` a slot, ``"reinforce"`` or ``"supersede"`` a
    memory, named by ``old`` (an existing slot id) or ``prior`` (an earlier text of the batch)."""

    kind: str
    old: int | None = None
    prior: int | None = None


def plan_writes(
    texts: Sequence[str],
    unit: np.ndarray,
    nearest: Sequence[Sequence[tuple[int, float]]],
    existing_text: Mapping[int, str],
    threshold: float,
    resolve: Resolver | None = None,
) -> list[Plan]:
    """Decide each text's :class:`Plan`. ``unit``: the texts' normalised keys; ``nearest[i]``:
    the scope's current memories closest to text i, as (slot id, cosine), best first (at any
    similarity: a restatement reinforces however its key came out); ``existing_text``: their
    texts. Texts are taken in order, so a batch behaves like the same adds one by one: a later
    text is compared with the versions the earlier ones left."""
    plans: list[Plan] = []
    retired: set[int] = set()  # existing slots superseded by an earlier text of this batch
    kept: list[int] = []  # batch texts that are current memories (added and not superseded since)
    said: dict[str, int] = {}  # normalised statement -> the batch text that holds it
    for i, text in enumerate(texts):
        norm = normalise(text)
        same = next((oid for oid, _ in nearest[i] if oid not in retired and normalise(existing_text.get(oid) or "") == norm), None)
        if same is not None:
            plans.append(Plan("reinforce", old=same))
            continue
        if norm in said:
            plans.append(Plan("reinforce", prior=said[norm]))
            continue
        best: tuple[float, str, int] | None = None
        for oid, sim in nearest[i]:
            if oid not in retired and sim >= threshold:
                best = (sim, "old", oid)
                break
        if kept:
            sims = unit[kept] @ unit[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold and (best is None or sims[j] >= best[0]):
                best = (float(sims[j]), "new", kept[j])
        kind = "add"
        if best is not None:
            kind = "supersede"
            if resolve is not None:
                kind = resolve(existing_text[best[2]] if best[1] == "old" else texts[best[2]], text)
                if kind not in RESOLUTIONS:
                    raise InvalidInputError(f"the resolver returned {kind!r}; it must return one of {', '.join(map(repr, RESOLUTIONS))}")
        if kind == "reinforce":
            plans.append(Plan("reinforce", old=best[2]) if best[1] == "old" else Plan("reinforce", prior=best[2]))
            continue
        if kind == "supersede":
            if best[1] == "old":
                retired.add(best[2])
                plans.append(Plan("supersede", old=best[2]))
            else:
                kept.remove(best[2])
                said = {k: v for k, v in said.items() if v != best[2]}
                plans.append(Plan("supersede", prior=best[2]))
        else:
            plans.append(Plan("add"))
        kept.append(i)
        said[norm] = i
    return plans


def _names_a_value(words: frozenset[str]) -> bool:
    return any(any(c.isdigit() for c in w) for w in words)


# Stemmed words (as ``lexical.tokenize`` writes them) by which a statement says that something
# changed: "now", "instead", "no longer", "anymore", "changed", "switched", "moved", "started",
# "stopped", "quit", "left", "done", "upgraded", "replaced". A reworded update ("Priya left, so I
# report to Daniel now") is often far from the fact it replaces ("My manager is Priya Shah"), but
# it says so.
CHANGE_CUES = frozenset({"now", "instead", "anymor", "longer", "chang", "switch", "move", "start", "stop", "quit", "left", "done",
                         "upgrad", "replac"})


# The change rule is for statements of a fact (a memory, a short turn): in a long chat turn
# "now" or "started" says little about which fact it updates. At most this many distinct words
# (after stemming and stop words) on both sides.
STATEMENT_WORDS = 30


def states_a_change(words: frozenset[str]) -> bool:
    """Whether a text's stemmed words say that something changed (:data:`CHANGE_CUES`)."""
    return not CHANGE_CUES.isdisjoint(words)


def newest_first(
    order: Sequence[int], unit: Mapping[int, np.ndarray], when: Callable[[int], Any], words: Callable[[int], frozenset[str]],
    query_words: frozenset[str], threshold: float, *, earliest: bool = False, change_threshold: float | None = None,
    relevance: Mapping[int, float] | None = None, k: int | None = None,
) -> list[int]:
    """The first ``k`` of ``order`` (all of it when ``k`` is None) with each group of versions
    re-sorted newest first (``earliest``: oldest first) into the places the group holds.

    A group gathers, around its best-ranked member, the hits that the question does not tell
    apart (it names no value, a word with a digit, in which they differ; ``words(i)``: a hit's
    stemmed words) and whose keys are

    - at least ``threshold`` alike, or
    - at least ``change_threshold`` alike when the newer of the two states a change
      (:func:`states_a_change`) and the pair is singled out: neither is closer to another hit returned, or
      the question finds the newer one as relevant as the older (``relevance``: cosine to the
      question, within 10 %).

    Of the hits past the first ``k`` only a statement of a change newer than the group's members
    joins it (by the second rule): the hits returned lack it. It is returned with them, and the
    last hits give way. ``when(i)`` is any
    comparable recency key."""
    order = list(order)
    head = len(order) if k is None else min(k, len(order))
    order = order[: 2 * head]
    if len(order) < 2:
        return order[:head]
    keys = np.stack([unit[i] for i in order])
    sims = keys @ keys.T
    np.fill_diagonal(sims, -np.inf)
    closest = sims[:, :head].max(axis=1)  # each one's closest hit among those returned

    def singled_out(p: int, q: int) -> bool:
        if sims[p, q] >= closest[p] and sims[p, q] >= closest[q]:
            return True
        older, newer = sorted((order[p], order[q]), key=when)
        return relevance is not None and relevance[newer] >= 0.9 * relevance[older]

    def versions(p: int, q: int) -> bool:
        if _names_a_value(query_words & (words(order[p]) ^ words(order[q]))):
            return False
        if sims[p, q] >= threshold and q < head:
            return True
        return (change_threshold is not None and sims[p, q] >= change_threshold
                and len(words(order[p])) <= STATEMENT_WORDS and len(words(order[q])) <= STATEMENT_WORDS
                and states_a_change(words(max(order[p], order[q], key=when))) and singled_out(p, q))

    blocks = [[i] for i in order[:head]]
    taken = np.zeros(len(order), dtype=bool)
    for p in range(head):
        if taken[p]:
            continue
        group = [p, *(q for q in range(p + 1, head) if not taken[q] and versions(p, q))]
        newest = max((order[q] for q in group), key=when)
        group += [q for q in range(head, len(order)) if not taken[q] and when(order[q]) > when(newest) and versions(p, q)]
        if len(group) == 1:
            continue
        taken[group] = True
        places = [q for q in group if q < head]
        members = sorted((order[q] for q in group), key=when, reverse=not earliest)
        for q, i in zip(places, members):
            blocks[q] = [i]
        blocks[places[-1]].extend(members[len(places):])
    return [i for block in blocks for i in block][:head]
