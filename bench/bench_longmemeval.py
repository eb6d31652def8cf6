"""Recall on LongMemEval_S (Wu et al., ICLR 2025): real-looking multi-session chat histories.

Each question gets its own scope (``user_id`` = the question id) in a fresh in-memory store; its
~48 haystack sessions go in through the public API, ``add_messages(session, session_id=...,
occurred_at=<session date>)``, with default settings and the bundled all-MiniLM-L6-v2, no LLM.
The question is then asked with ``now=<question_date>``. Abstention questions (ids ending
``_abs``: the answer is not in the history) are left out. Measures, per question type and mode:

- session recall_any@k: an evidence session is among the top k sessions
  (``search(group_by="session", k=k)``); recall_all@10: all of them are among the top 10;
- turn recall@10: the share of the question's evidence turns (``has_answer``) among the top 10
  turns (``search(k=10)``), averaged over questions that mark evidence turns;
- latency: p50 / p95 of the session search (the query's vector comes from the cache: the
  model's time is bench_hybrid's to measure).

Embedding ~190,000 turns takes ~1.5 h on 2 CPU cores, so vectors are cached on disk by text
(``--cache``, default ``runs/longmemeval_embed.sqlite``): a cached vector is the model's own
output, byte for byte, and the store sees the same embedder name. ``--embed-only`` fills the
cache; ``--limit N`` takes N questions spread evenly over the question types.

    python bench/bench_longmemeval.py --limit 60 --no-write     # a quick look
    python bench/bench_longmemeval.py                            # all 468, writes docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sqlite3
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from report import table, write_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "longmemeval" / "longmemeval_s.json.xz"
CACHE = ROOT / "runs" / "longmemeval_embed.sqlite"
MODES = ("hybrid", "dense", "lexical")
TYPES = ("single-session-user", "single-session-assistant", "single-session-preference", "multi-session", "knowledge-update", "temporal-reasoning")


class CachedEmbedder:
    """An embedder that keeps every vector it computed in a SQLite file, by text."""

    def __init__(self, inner, path: Path) -> None:  # noqa: ANN001 - any Embedder
        self.inner, self.name = inner, inner.name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS vec (h BLOB PRIMARY KEY, v BLOB)")
        self.lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.inner.dim

    def hash_of(self, text: str) -> bytes:
        return hashlib.sha1(f"{self.name}\0{text}".encode("utf-8", "surrogatepass")).digest()

    def cached(self, texts: Sequence[str]) -> dict[bytes, np.ndarray]:
        hashes = list({self.hash_of(t) for t in texts})
        found: dict[bytes, np.ndarray] = {}
        with self.lock:
            for i in range(0, len(hashes), 900):
                part = hashes[i : i + 900]
                rows = self.db.execute(f"SELECT h, v FROM vec WHERE h IN ({','.join('?' * len(part))})", part).fetchall()
                found.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
        return found

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        found = self.cached(texts)
        missing = list(dict.fromkeys(t for t in texts if self.hash_of(t) not in found))
        if missing:
            vecs = self.inner.embed(missing, batch_size=batch_size)
            rows = [(self.hash_of(t), v.astype(np.float32).tobytes()) for t, v in zip(missing, vecs)]
            with self.lock:
                self.db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", rows)
                self.db.commit()
            found.update((h, np.frombuffer(v, dtype=np.float32)) for h, v in rows)
        return np.stack([found[self.hash_of(t)] for t in texts]).astype(np.float32)


def load_questions(limit: int | None) -> list[dict]:
    """The non-abstention questions, interleaved over the types (so any prefix is a stratified sample)."""
    data = [q for q in json.load(lzma.open(DATA)) if not q["question_id"].endswith("_abs")]
    by_type: dict[str, list[dict]] = defaultdict(list)
    for q in data:
        by_type[q["question_type"]].append(q)
    out: list[dict] = []
    n = {t: len(v) for t, v in by_type.items()}
    # Each type's i-th question goes at fraction i / n_type of the run: every prefix keeps the mix.
    order = sorted(((i / n[t], TYPES.index(t), q) for t, qs in by_type.items() for i, q in enumerate(qs)), key=lambda x: (x[0], x[1]))
    out = [q for _, _, q in order]
    return out[:limit] if limit else out


def lme_date(s: str) -> datetime:
    """'2023/05/20 (Sat) 02:21' as a UTC datetime."""
    return datetime.strptime(s[:10] + s[-6:], "%Y/%m/%d %H:%M").replace(tzinfo=timezone.utc)


def embed_only(embedder: CachedEmbedder, questions: list[dict], chunk: int = 512) -> None:
    from tqdm import tqdm

    texts = list(dict.fromkeys([q["question"] for q in questions] + [t["content"] for q in questions for s in q["haystack_sessions"] for t in s if t["content"].strip()]))
    todo = [t for t in texts if embedder.hash_of(t) not in embedder.cached([t])] if len(texts) < 5000 else None
    if todo is None:
        todo = []
        for i in range(0, len(texts), 5000):
            part = texts[i : i + 5000]
            have = embedder.cached(part)
            todo += [t for t in part if embedder.hash_of(t) not in have]
    print(f"{len(texts)} distinct texts, {len(todo)} not cached", flush=True)
    with tqdm(total=len(todo), unit="text", mininterval=30) as bar:
        for i in range(0, len(todo), chunk):
            embedder.embed(todo[i : i + chunk])
            bar.update(len(todo[i : i + chunk]))


def run_question(store, q: dict, modes: Sequence[str], use_now: bool) -> dict:  # noqa: ANN001 - a MindStore
    """Load one question's haystack, ask it in every mode; returns the measures per mode."""
    from mindstore.messages import worth_keeping

    qid = q["question_id"]
    turn_of: dict[int, set[tuple[str, int]]] = defaultdict(set)
    evidence_turns: set[tuple[str, int]] = set()
    for sid, date, session in zip(q["haystack_session_ids"], q["haystack_dates"], q["haystack_sessions"]):
        kept = [(j, t) for j, t in enumerate(session) if t["role"] in ("user", "assistant") and isinstance(t["content"], str) and worth_keeping(t["content"])]
        evidence_turns.update((sid, j) for j, t in enumerate(session) if t.get("has_answer"))
        if not kept:
            continue
        slots = store.add_messages([{"role": t["role"], "content": t["content"]} for _, t in kept], user_id=qid, session_id=sid, occurred_at=lme_date(date))
        for (j, _), slot in zip(kept, slots):
            turn_of[slot.id].add((sid, j))
    gold = set(q["answer_session_ids"])
    now = lme_date(q["question_date"]) if use_now else None
    out = {}
    for mode in modes:
        # The turn search goes first: a store's first search of a mode builds its BM25 index, a
        # cost of loading, not of asking.
        hits = store.search(q["question"], k=10, user_id=qid, mode=mode, now=now)
        turns = [t for h in hits for t in turn_of[h.slot.id]]
        t0 = time.perf_counter()
        sessions = [h.slot.session_id for h in store.search(q["question"], k=10, user_id=qid, mode=mode, group_by="session", now=now)]
        ms = (time.perf_counter() - t0) * 1000
        r = {f"any@{k}": float(bool(gold & set(sessions[:k]))) for k in (1, 3, 5, 10)}
        r["all@10"] = float(gold <= set(sessions[:10]))
        r["turns any@5"] = float(bool(gold & {h.slot.session_id for h in hits[:5]}))  # without grouping: the 5 best turns' sessions
        r["turn@10"] = len(evidence_turns & set(turns)) / len(evidence_turns) if evidence_turns else None
        r["ms"] = ms
        out[mode] = r
    return out


def summarise(results: list[tuple[str, dict]], mode: str) -> dict[str, dict[str, float]]:
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for qtype, res in results:
        for cat in ("all", qtype):
            for key, v in res[mode].items():
                if v is not None:
                    acc[cat][key].append(v)
    return {cat: {key: (statistics.median(v) if key == "ms" else sum(v) / len(v)) for key, v in d.items()} | {"n": len(d["any@5"]), "p95": sorted(d["ms"])[int(0.95 * (len(d["ms"]) - 1))]} for cat, d in acc.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--limit", type=int, default=None, help="questions to run, spread evenly over the types (default: all 468)")
    ap.add_argument("--modes", default=",".join(MODES), help="search modes to measure, comma-separated (default: %(default)s)")
    ap.add_argument("--cache", type=Path, default=CACHE, help="embedding cache file (default: %(default)s)")
    ap.add_argument("--embed-only", action="store_true", help="fill the embedding cache and stop")
    ap.add_argument("--no-now", action="store_true", help="ask without the question date (now = the wall clock)")
    ap.add_argument("--no-write", action="store_true", help="print the tables, leave docs/benchmarks.md alone")
    ap.add_argument("--json", type=Path, default=None, help="also write per-question results to this file")
    ap.add_argument("--url", default=None, help="run on this PostgreSQL database instead of an in-memory SQLite store per "
                    "question (each question empties it first; with --set key_index=pgvector its keys and BM25 live there)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a Config field for an experiment (e.g. version_threshold=0.85); the docs table is only written with defaults")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]

    from mindstore import Config, MindStore
    from mindstore.embed import default_embedder

    config = Config(**{k: json.loads(v) if v[:1] in "0123456789-[{tfn" else v for k, v in (a.split("=", 1) for a in args.set)})

    embedder = CachedEmbedder(default_embedder(), args.cache)
    questions = load_questions(args.limit)
    if args.embed_only:
        embed_only(embedder, questions)
        return
    from tqdm import tqdm

    results: list[tuple[str, dict]] = []
    per_question = []
    t_all = time.perf_counter()
    for q in tqdm(questions, unit="question", mininterval=10):
        with MindStore(args.url or "sqlite://", embedder=embedder, config=config) as store:
            if args.url:
                store.reset()
            res = run_question(store, q, modes, not args.no_now)
        results.append((q["question_type"], res))
        per_question.append({"question_id": q["question_id"], "type": q["question_type"], **{m: res[m] for m in modes}})
    wall = time.perf_counter() - t_all
    if args.json:
        args.json.write_text(json.dumps(per_question, indent=1))

    head = ["mode", "questions", "any@1", "any@3", "any@5", "any@10", "all@10", "any@5 of 5 turns", "turn r@10", "p50 ms", "p95 ms"]
    rows = []
    for mode in modes:
        a = summarise(results, mode)["all"]
        rows.append([mode, a["n"], *(f"{a[k]:.3f}" for k in ("any@1", "any@3", "any@5", "any@10", "all@10", "turns any@5", "turn@10")), f"{a['ms']:.1f}", f"{a['p95']:.1f}"])
    type_rows = []
    for mode in modes:
        s = summarise(results, mode)
        for t in TYPES:
            if t in s:
                r = s[t]
                type_rows.append([mode, t, r["n"], *(f"{r[k]:.3f}" for k in ("any@5", "any@10", "all@10", "turn@10"))])
    main_table = table(head, rows)
    type_table = table(["mode", "question type", "questions", "any@5", "any@10", "all@10", "turn r@10"], type_rows)
    print(main_table)
    print(type_table)
    print(f"{len(questions)} questions in {wall:.0f} s")
    if args.no_write or args.set or args.url:
        return
    cmd = "python bench/bench_longmemeval.py" + (f" --limit {args.limit}" if args.limit else "")
    which = (f"the first {len(questions)} of the 468 questions that are not abstentions, in the script's order (each type's questions spread evenly, so the mix of types is the full set's)"
             if args.limit else f"the {len(questions)} questions that are not abstentions")
    body = f"""
LongMemEval_S (`../shared/data/longmemeval/longmemeval_s.json.xz`, development data: see its
README): {which}. Each question is its own scope in a
fresh store; its sessions go in with `add_messages(..., session_id=..., occurred_at=<session
date>)` and the question is asked with `now=<question date>`. Default settings, the bundled
all-MiniLM-L6-v2, no LLM, no reranker. Session recall_any@k: an evidence session among the top k
sessions (`search(group_by="session")`); all@10: every evidence session in the top 10; any@5 of
5 turns: the same without grouping (the sessions of the 5 best turns); turn
r@10: the share of evidence turns among the top 10 turns (`search(k=10)`). Latency is the
session search alone, its query vector cached (bench_hybrid measures the model). Public memory
projects report session recall_any@5 of 0.95-0.97 with MiniLM + BM25 and no LLM (the data's
README); their protocol (granularity, which questions) was not checked here, so that is a
reference, not a like-for-like comparison.

{main_table}

Per question type:

{type_table}
"""
    write_section("longmemeval", "Recall on LongMemEval_S (issue 24)", cmd, body)


if __name__ == "__main__":
    main()
