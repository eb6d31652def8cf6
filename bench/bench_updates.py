"""Fact updates on the default store: does a search return the newer version first?

Loads the hand-written corpus bench/data/updates.json into one scope, as one user's memory: every
``old`` statement (``occurred_at`` 2023-01-01), then every ``new`` one (2023-06-01), then asks each
``query`` (k = 10). Per update kind: the share of pairs whose new text ranks above the old one
(or the old one is gone, superseded), the share where it is the first hit, and how each add was
taken (added / superseded). Restatements: the share that reinforced. With ``--sweep``, the same
for other ``Config.version_threshold`` and ``Config.change_threshold`` values.

    python bench/bench_updates.py [--sweep] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "updates.json"


def run(config: Config, corpus: dict) -> tuple[dict[str, list[float]], list[str], Counter, float]:
    updates, restatements = corpus["updates"], corpus["restatements"]
    with MindStore("sqlite://", config=config) as store:
        olds = store.add_many([u["old"] for u in updates], user_id="u", occurred_at="2023-01-01")
        news = store.add_many([u["new"] for u in updates], user_id="u", occurred_at="2023-06-01")
        changes = Counter(n.change for n in news)
        per_kind: dict[str, list[float]] = defaultdict(list)
        missed = []
        for u, old, new in zip(updates, olds, news):
            ranked = [h.slot.id for h in store.search(u["query"], user_id="u", k=10)]
            above = new.id in ranked and (old.id not in ranked or ranked.index(new.id) < ranked.index(old.id))
            for kind in (u["kind"], "all"):
                per_kind[kind].append((above, ranked[:1] == [new.id]))
            if not above:
                missed.append(u["old"] + " -> " + u["new"])
        firsts = store.add_many([r["text"] for r in restatements], user_id="r")
        again = store.add_many([r["again"] for r in restatements], user_id="r")
        reinforced = sum(a.id == f.id and a.change == "reinforced" for a, f in zip(again, firsts)) / len(restatements)
    return per_kind, missed, changes, reinforced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="store_true", help="also try other version_threshold and change_threshold values (1.0: off)")
    ap.add_argument("--no-write", action="store_true", help="print the tables, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    corpus = json.loads(DATA.read_text(encoding="utf-8"))
    per_kind, missed, changes, reinforced = run(Config(), corpus)
    rows = [[k, len(v), f"{sum(a for a, _ in v) / len(v):.3f}", f"{sum(f for _, f in v) / len(v):.3f}"] for k, v in per_kind.items() if k != "all"]
    a = per_kind["all"]
    rows.append(["**all**", len(a), f"**{sum(x for x, _ in a) / len(a):.3f}**", f"{sum(f for _, f in a) / len(a):.3f}"])
    main_table = table(["kind", "pairs", "new ranked above old", "new is the first hit"], rows)
    sweep = ""
    if args.sweep:
        srows = []
        for v, c in ((1.0, 1.0), (0.85, 1.0), (0.7, 1.0), (0.6, 1.0), (0.6, 0.5), (0.6, 0.4), (0.6, 0.35), (0.6, 0.3)):
            pk, _, _, _ = run(Config(version_threshold=v, change_threshold=c), corpus)
            srows.append([v, c, f"{sum(x for x, _ in pk['all']) / len(pk['all']):.3f}", f"{sum(f for _, f in pk['all']) / len(pk['all']):.3f}"])
        sweep = ("`Config.version_threshold` and `Config.change_threshold` (1.0: that rule off):\n\n"
                 + table(["version_threshold", "change_threshold", "new above old", "new first"], srows))
    print(main_table)
    print(sweep)
    print("adds of the new texts:", dict(changes), f"restatements reinforced: {reinforced:.3f}")
    print("missed:", *missed, sep="\n  ")
    if args.no_write:
        return
    body = f"""
`bench/data/updates.json`: {len(corpus['updates'])} hand-written updates in 10 kinds (a changed number,
date, time, name, place, a negation, an added clause, a changed status or quantity, near-identical
notes), a fifth of them reworded as people restate things, and {len(corpus['restatements'])} restatements
(case, punctuation, quotes, spacing, full-width letters). A smoke test written here, not a public
benchmark. All updates in one scope (one user's memory): the olds, then the news a few months
later; each query (which names no value of either) asked with k = 10, default `Config`.

The new texts were taken as {dict(changes)}; restatements reinforced: {reinforced:.3f}.

{main_table}

{sweep}

Missed (the newer below the older or not found):

{chr(10).join('- ' + m for m in missed) or '- none'}
"""
    write_section("updates", "Fact updates: the newer version first (issue 24)", "python bench/bench_updates.py --sweep", body)


if __name__ == "__main__":
    main()
