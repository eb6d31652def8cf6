"""Recall of long multi-session conversations: recall@1/5/10 and MRR per search mode.

Loads each conversation of a set into one store, scoped by ``user_id`` = the conversation's id,
every turn a slot with its speaker and its session's date (``add_many(..., occurred_at=...)``,
metadata ``speaker``), then asks each question in that scope and checks where its evidence turns
rank. recall@k: the share of a question's evidence turns in the top k, averaged over questions;
MRR: 1 / the rank of the first evidence turn in the top 10 (0 when none is), averaged. No LLM.

The conversation set is JSON of this shape (bench/data/recall_eval.json, made by
bench/make_recall_set.py)::

    {"conversations": [
      {"id": "conv-1", "speakers": ["Caroline", "Melanie"],
       "sessions": [{"id": "conv-1-s1", "date": "2023-05-08T13:56:00",
                     "turns": [{"id": "conv-1-t1", "speaker": "Caroline", "text": "..."}, ...]}, ...],
       "questions": [{"id": "conv-1-q1", "text": "...", "evidence": ["conv-1-t1"], "category": "temporal"}, ...]}]}

    python bench/bench_recall.py [--data bench/data/recall_eval.json] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402

MODES = ("dense", "lexical", "hybrid")
DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "recall_eval.json"


def load(store: MindStore, conversations: list[dict]) -> dict[int, str]:
    """Every turn into the store; returns slot id -> turn id."""
    turn_of: dict[int, str] = {}
    for conv in conversations:
        for session in conv["sessions"]:
            turns = session["turns"]
            slots = store.add_many(
                [t["text"] for t in turns], user_id=conv["id"], session_id=session["id"],
                metadata=[{"speaker": t["speaker"], "turn": t["id"]} for t in turns],
                occurred_at=session["date"], dedup=False,
            )
            turn_of.update((s.id, t["id"]) for s, t in zip(slots, turns))
    return turn_of


def evaluate(store: MindStore, conversations: list[dict], turn_of: dict[int, str], mode: str) -> dict[str, dict[str, float]]:
    """{category (and "all"): {"r@1", "r@5", "r@10", "mrr", "n"}}."""
    sums: dict[str, dict[str, float]] = {}
    for conv in conversations:
        for q in conv["questions"]:
            ranked = [turn_of[h.slot.id] for h in store.search(q["text"], k=10, user_id=conv["id"], mode=mode)]
            evidence = set(q["evidence"])
            first = next((r for r, t in enumerate(ranked, 1) if t in evidence), None)
            got = {f"r@{k}": len(evidence & set(ranked[:k])) / len(evidence) for k in (1, 5, 10)}
            got["mrr"] = 1.0 / first if first else 0.0
            for cat in ("all", q["category"]):
                acc = sums.setdefault(cat, {"r@1": 0.0, "r@5": 0.0, "r@10": 0.0, "mrr": 0.0, "n": 0})
                for key, v in got.items():
                    acc[key] += v
                acc["n"] += 1
    return {cat: {key: (v / acc["n"] if key != "n" else v) for key, v in acc.items()} for cat, acc in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--no-write", action="store_true", help="print the tables, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    conversations = json.loads(args.data.read_text())["conversations"]
    n_turns = sum(len(s["turns"]) for c in conversations for s in c["sessions"])
    n_q = sum(len(c["questions"]) for c in conversations)
    rows, by_cat = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for context in (True, False):
            with MindStore(f"sqlite:///{tmp}/recall-{context}.db", config=Config(index_context=context)) as store:
                t0 = time.perf_counter()
                turn_of = load(store, conversations)
                load_s = time.perf_counter() - t0
                for mode in MODES:
                    t0 = time.perf_counter()
                    res = evaluate(store, conversations, turn_of, mode)
                    per_q = (time.perf_counter() - t0) / n_q * 1000
                    a = res["all"]
                    rows.append([mode, "yes" if context else "no", f"{a['r@1']:.3f}", f"{a['r@5']:.3f}", f"{a['r@10']:.3f}", f"{a['mrr']:.3f}", f"{per_q:.1f}"])
                    print(rows[-1], f"(load {load_s:.1f} s)", flush=True)
                    if context:
                        for cat in sorted(c for c in res if c != "all"):
                            r = res[cat]
                            by_cat.append([mode, cat, int(r["n"]), f"{r['r@1']:.3f}", f"{r['r@5']:.3f}", f"{r['r@10']:.3f}", f"{r['mrr']:.3f}"])
    main_table = table(["mode", "speaker + date context", "recall@1", "recall@5", "recall@10", "MRR", "ms / question"], rows)
    cat_table = table(["mode", "category", "questions", "recall@1", "recall@5", "recall@10", "MRR"], by_cat)
    print(main_table)
    print(cat_table)
    if args.no_write:
        return
    body = f"""
Set: `{args.data.relative_to(Path(__file__).resolve().parent.parent) if args.data.is_relative_to(Path(__file__).resolve().parent.parent) else args.data.name}`:
{len(conversations)} conversations, {n_turns} turns, {n_q} questions (written by `bench/make_recall_set.py`:
template conversations with planted facts, not a public benchmark). Each conversation is one
`user_id` scope of one SQLite store; every turn is a slot with its speaker and session date.
Default settings and the bundled all-MiniLM-L6-v2, no LLM, no reranker. recall@k: share of a
question's evidence turns in the top k, averaged over questions; MRR over the top 10.
'speaker + date context' is `Config.index_context` (on by default): the speaker and the session
date folded into the text the lexical index sees (the dense key is the text alone). ms / question includes embedding the query, on a
machine shared with other jobs (2 cores, one thread each for torch and FAISS).

{main_table}

Per question category, context on:

{cat_table}
"""
    write_section("recall", "Recall on long conversations: dense, lexical, hybrid (issue 8)", "python bench/bench_recall.py", body)


if __name__ == "__main__":
    main()
