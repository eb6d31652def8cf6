"""Hybrid search latency at 100k text slots: dense, lexical and hybrid ``search`` p50 / p95.

The store is filled through ``add_vectors`` like bench/bench_store.py (its ``fill``): 20,000 varied
sentences (people, places, things, times) are embedded with MiniLM once and cached in the user
cache dir, and each slot takes one of them with its own suffix and a slightly perturbed key. The
texts are what BM25 indexes, so they vary in the words that matter (names, places). Each search
includes embedding the query. 'user scope' searches one of 100 users (about 1% of the slots).

    python bench/bench_hybrid.py [--slots 100000] [--queries 200] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import platformdirs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import fill, percentiles  # noqa: E402
from report import table, write_section  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402
from mindstore.embed import default_embedder  # noqa: E402

NAMES = ["Caroline", "Melanie", "Jon", "Gina", "Priya", "Tomasz", "Dev", "Hannah", "Lucas", "Amara", "Yuki", "Rosa", "Omar", "Elena", "Sam", "Ingrid", "Marco", "Lena", "Kofi", "Aisha"]
DID = ["visited", "talked about", "booked a trip to", "moved to", "ran a race in", "bought a flat in", "had dinner in", "lost a bag in", "studied in", "got married in"]
PLACES = ["Lisbon", "Kyoto", "Denver", "Edinburgh", "Marrakesh", "Vancouver", "Tallinn", "Oaxaca", "Melbourne", "Bergen", "Porto", "Seville", "Halifax", "Krakow", "Hanoi", "Valparaiso"]
WITH = ["with her sister", "with the kids", "with a colleague", "alone", "with old friends", "with the dog", "for work", "for a wedding"]
WHEN = ["last weekend", "in May 2023", "yesterday", "two years ago", "in the spring", "on her birthday", "after the exams", "in January"]
QUESTIONS = ["When did {n} go to {p}?", "Who travelled to {p} {w}?", "What did {n} do in {p}?", "Did {n} move to {p}?", "Where did {n} go {w}?"]


def varied_sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, 1 << 30, size=(n, 5))
    return [f"{NAMES[a % 20]} {DID[b % 10]} {PLACES[c % 16]} {WITH[d % 8]} {WHEN[e % 8]}." for a, b, c, d, e in picks]


def base(n: int) -> tuple[list[str], np.ndarray]:
    """``n`` sentences and their MiniLM keys, embedded once and cached outside the repository."""
    texts = varied_sentences(n, seed=8)
    cache = Path(platformdirs.user_cache_dir("mindstore")) / "bench" / f"hybrid_base_{n}.npy"
    if cache.exists():
        keys = np.load(cache)
        if keys.shape[0] == n:
            return texts, keys
    print(f"embedding {n} sentences once (cached in {cache})", flush=True)
    keys = default_embedder().embed(texts).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, keys)
    return texts, keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=100_000)
    ap.add_argument("--base", type=int, default=20_000, help="distinct sentences embedded")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    base_texts, base_keys = base(args.base)
    rng = np.random.default_rng(1)
    queries = [QUESTIONS[i % 5].format(n=NAMES[rng.integers(20)], p=PLACES[rng.integers(16)], w=WHEN[rng.integers(8)]) for i in range(args.queries)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url, config = f"sqlite:///{tmp}/bench.db", Config(index_dir=Path(tmp) / "index")
        with MindStore(url, config=config) as store:
            store.add("warm up the space", user_id="warm")
            t = time.perf_counter()
            fill(store, args.slots, users=100, base_keys=base_keys, base_texts=base_texts)
            fill_s = time.perf_counter() - t
            t = time.perf_counter()
            store.search("warm up", mode="lexical")  # builds the lexical index from SQL
            build_s = time.perf_counter() - t
            total = store.count()
        t = time.perf_counter()
        with MindStore(url, config=config) as store:
            store.search("warm up", mode="lexical")  # loads the saved lexical index
            load_s = time.perf_counter() - t
            info = store.index_info(recall_sample=200)
            index_kind = f"{info.kind}, recall@10 {info.recall_at_10:.3f} against exact"
            embed = []
            for q in queries:
                t = time.perf_counter()
                store.embedder.embed([q])
                embed.append(time.perf_counter() - t)
            embed_p50 = percentiles(embed)[0]
            load_avg = os.getloadavg()
            for mode in ("dense", "lexical", "hybrid"):
                for q in queries[:10]:
                    store.search(q, k=10, mode=mode)
                whole, user = [], []
                for i, q in enumerate(queries):
                    t = time.perf_counter()
                    store.search(q, k=10, mode=mode)
                    whole.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    store.search(q, k=10, mode=mode, user_id=f"user{i % 100}")
                    user.append(time.perf_counter() - t)
                (wp50, wp95), (up50, up95) = percentiles(whole), percentiles(user)
                rows.append([mode, f"{total:,}", f"{wp50:.1f} / {wp95:.1f}", f"{up50:.1f} / {up95:.1f}", f"{embed_p50:.1f}"])
                print(rows[-1], flush=True)
    out = table(["mode", "slots", "search p50 / p95 ms (all)", "search p50 / p95 ms (user scope)", "of which: query embedding p50 ms"], rows)
    load = ", ".join(f"{x:.1f}" for x in load_avg)
    print(out)
    print(f"fill {fill_s:.0f} s, lexical index built from SQL in {build_s:.1f} s, saved index loaded in {load_s:.1f} s")
    if args.no_write:
        return
    body = f"""
{total:,} text slots in one SQLite store (100 users), filled through `add_vectors` with the
cached MiniLM keys of {args.base:,} varied sentences (names, places, times), each slot its own
suffix and a perturbed key, default `Config` (key index: {index_kind}). k = 10, {args.queries} questions naming people, places and times; each
search includes embedding the query with MiniLM on the CPU. Run with `OMP_NUM_THREADS=1` on a
machine whose load average was {load} over 1 / 5 / 15 minutes when the searches began. The embedding column times the same questions embedded alone, before the
searches. Building the lexical index from SQL took
{build_s:.1f} s; loading the saved one (open + first lexical search) {load_s:.1f} s.

{out}
"""
    write_section("hybrid", "Hybrid search latency at 100k text slots (issue 8)", "OMP_NUM_THREADS=1 python bench/bench_hybrid.py", body)


if __name__ == "__main__":
    main()
