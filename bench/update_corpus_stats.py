"""How close, to the default embedder, the fact updates and restatements of bench/data/updates.json are.

The corpus holds hand-made ``updates`` (an ``old`` statement, a ``new`` one that changes one detail,
and a ``query`` whose answer is in both) and ``restatements`` (``text`` and ``again``: the same
statement after normalisation only: case, punctuation, quote style, spaces, full-width letters).
This embeds every text with the project's embedder (all-MiniLM-L6-v2, offline) and prints, per
update kind and overall, the cosine similarity of old and new (min / 10th percentile / median /
max) with the share of pairs at or above 0.80, 0.85, 0.90 and 0.95; the same for restatements; and,
per kind, the share of updates whose query is closer to ``new`` than to ``old``. Nothing is written.

    python bench/update_corpus_stats.py [--data bench/data/updates.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mindstore.embed import default_embedder

DATA = Path(__file__).resolve().parent / "data" / "updates.json"
THRESHOLDS = (0.80, 0.85, 0.90, 0.95)


def _row(label: str, sims: np.ndarray, extra: str = "") -> str:
    dist = f"{sims.min():6.3f} {np.percentile(sims, 10):6.3f} {np.median(sims):6.3f} {sims.max():6.3f}"
    shares = " ".join(f"{(sims >= t).mean():5.2f}" for t in THRESHOLDS)
    return f"{label:<16} {len(sims):>4}  {dist}  {shares}{extra}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    corpus = json.loads(args.data.read_text(encoding="utf-8"))
    updates, restatements = corpus["updates"], corpus["restatements"]

    texts: list[str] = []
    for u in updates:
        texts += [u["old"], u["new"], u["query"]]
    for r in restatements:
        texts += [r["text"], r["again"]]
    vecs = default_embedder().embed(texts)
    n = len(updates)
    upd = vecs[: 3 * n].reshape(n, 3, -1)
    old, new, query = upd[:, 0], upd[:, 1], upd[:, 2]
    res = vecs[3 * n :].reshape(len(restatements), 2, -1)

    old_new = np.einsum("ij,ij->i", old, new)
    q_new = np.einsum("ij,ij->i", query, new)
    q_old = np.einsum("ij,ij->i", query, old)
    kinds = np.array([u["kind"] for u in updates])

    head = f"{'':<16} {'n':>4}  {'min':>6} {'p10':>6} {'median':>6} {'max':>6}  " + " ".join(
        f">={t:.2f}" for t in THRESHOLDS
    )
    print("cosine(old, new) per kind; last column: share of queries closer to new than to old")
    print(head + "  q->new")
    for kind in sorted(set(kinds), key=lambda k: list(kinds).index(k)):
        m = kinds == kind
        print(_row(kind, old_new[m], f"  {(q_new[m] > q_old[m]).mean():6.2f}"))
    print(_row("all updates", old_new, f"  {(q_new > q_old).mean():6.2f}"))
    print()
    print("cosine(text, again) for restatements")
    print(head)
    print(_row("restatements", np.einsum("ij,ij->i", res[:, 0], res[:, 1])))


if __name__ == "__main__":
    main()
