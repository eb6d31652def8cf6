"""MindStore speed on the embedded default (SQLite, CPU FAISS, bundled MiniLM).

Measures, at 10k and 100k slots: add_many throughput against the raw sentence-transformers encode
of the same texts (the embedder should be the limit, not the store), text search p50/p95 with the
query embedding included (whole space and one user's scope), get latency, and cold open time.

The stores are filled through ``add_vectors`` with keys that are MiniLM embeddings of real
sentences (slightly perturbed so every key is distinct): embedding 100k texts here would take
minutes and would measure the model, which the add_many row measures already.

    python bench/bench_store.py [--sizes 10000 100000] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402
from mindstore.embed import default_embedder  # noqa: E402

SUBJECTS = ["Alice", "Bob", "my sister", "the landlord", "our team", "Grandma", "the dentist", "Mia", "the neighbours", "my manager"]
VERBS = ["is allergic to", "loves", "cannot stand", "bought", "is worried about", "asked about", "forgot", "recommended", "booked", "sold"]
OBJECTS = ["peanuts", "the blue car", "jazz concerts", "a trip to Lisbon", "the quarterly report", "orchids", "a new laptop", "hiking boots", "the spare key", "sushi on Fridays"]


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{SUBJECTS[a]} {VERBS[b]} {OBJECTS[c]} (note {seed}-{i})" for i, (a, b, c) in enumerate(rng.integers(0, 10, size=(n, 3)))]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def fill(store: MindStore, n: int, users: int, base_keys: np.ndarray, base_texts: list[str]) -> None:
    rng = np.random.default_rng(n)
    done = 0
    while done < n:
        m = min(10_000, n - done)
        pick = rng.integers(0, len(base_keys), size=m)
        keys = base_keys[pick] + rng.normal(scale=0.02, size=(m, base_keys.shape[1])).astype(np.float32)
        texts = [f"{base_texts[p]} #{done + j}" for j, p in enumerate(pick)]
        for u in range(users):
            sel = np.arange(m) % users == u
            store.add_vectors(keys[sel], space="chat", texts=[t for t, s in zip(texts, sel) if s], user_id=f"user{u}")
        done += m


def cold_open(url: str, index_dir: Path, dim: int) -> tuple[float, float]:
    """(open, open + first vector search) in a fresh process: the key index loads on first use."""
    code = (
        "import time; t=time.perf_counter(); from mindstore import MindStore, Config; "
        f"s=MindStore({url!r}, config=Config(index_dir={str(index_dir)!r})); o=time.perf_counter()-t; "
        f"s.search_vector([1.0] * {dim}, k=10); print(o, time.perf_counter()-t); s.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    opened, ready = out.stdout.strip().splitlines()[-1].split()
    return float(opened), float(ready)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--add-texts", type=int, default=1024, help="texts per add_many measurement")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="torch and FAISS threads (default: their own, one per core)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)

    emb = default_embedder()
    base_texts = sentences(2000, seed=0)
    base_keys = emb.embed(base_texts)
    queries = [f"what does {s.lower()} {v}?" for s, v in zip(SUBJECTS * 20, VERBS * 20)][: args.queries]
    rows, add_rows = [], []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            url, index_dir = f"sqlite:///{tmp}/bench.db", Path(tmp) / "index"
            config = Config(index_dir=index_dir)
            with MindStore(url, config=config) as store:
                store.add("warm up the space", user_id="warm")
                t = time.perf_counter()
                fill(store, n, users=100, base_keys=base_keys, base_texts=base_texts)
                fill_s = time.perf_counter() - t

                # add_many vs raw encode of the same texts (interleaved, best of 3 each)
                new_texts = sentences(args.add_texts, seed=n)
                raw, add = [], []
                for rep in range(3):
                    t = time.perf_counter()
                    emb.embed([f"{x} r{rep}" for x in new_texts], batch_size=config.embed_batch_size)
                    raw.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    store.add_many([f"{x} a{rep}" for x in new_texts], user_id=f"adder{rep}")
                    add.append(time.perf_counter() - t)
                raw_tps, add_tps = args.add_texts / min(raw), args.add_texts / min(add)

                search_all, search_user, gets, embeds, vec_all = [], [], [], [], []
                qvecs = emb.embed(queries)
                for q in queries[:10]:
                    store.search(q, k=10)  # warm caches
                for i, q in enumerate(queries):
                    t = time.perf_counter()
                    store.search(q, k=10)
                    search_all.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    store.search(q, k=10, user_id=f"user{i % 100}")
                    search_user.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    emb.embed([q])
                    embeds.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    store.search_vector(qvecs[i], k=10)
                    vec_all.append(time.perf_counter() - t)
                ids = [s.id for s in store.list(limit=1000).slots]
                for i in ids[: args.queries]:
                    t = time.perf_counter()
                    store.get(i)
                    gets.append(time.perf_counter() - t)
                total = store.count()
            open_s, ready_s = cold_open(url, index_dir, base_keys.shape[1])
            db_mb = Path(tmp, "bench.db").stat().st_size / 2**20
            idx_mb = sum(p.stat().st_size for p in index_dir.iterdir()) / 2**20
        sa, su, g = percentiles(search_all), percentiles(search_user), percentiles(gets)
        em, va = percentiles(embeds), percentiles(vec_all)
        rows.append([f"{total:,}", f"{sa[0]:.1f} / {sa[1]:.1f}", f"{su[0]:.1f} / {su[1]:.1f}", f"{em[0]:.1f}", f"{va[0]:.1f} / {va[1]:.1f}", f"{g[0]:.2f} / {g[1]:.2f}", f"{open_s:.2f} / {ready_s:.2f}", f"{total / fill_s:,.0f}", f"{db_mb:.0f} + {idx_mb:.0f}"])
        add_rows.append([f"{total:,}", f"{raw_tps:.0f}", f"{add_tps:.0f}", f"{add_tps / raw_tps:.0%}"])
        print(rows[-1], add_rows[-1], flush=True)

    import faiss
    import torch

    threads = f"torch {torch.get_num_threads()} / FAISS {faiss.omp_get_max_threads()} threads"
    body = (
        f"Threads: {threads}. Text search includes embedding the query with MiniLM on the CPU; vector\n"
        "search is the same search with the query already embedded (the store's own cost). 'user scope' searches one of\n"
        "100 users (about 1% of the slots). Cold open is a fresh process opening the store; first search\n"
        "adds loading and checking the saved key index and one vector search (the model loads on first embed). Bulk fill is `add_vectors` with\n"
        "precomputed keys, 100 users.\n\n"
        + table(["slots", "text search p50 / p95 ms (all)", "text search p50 / p95 ms (user scope)", "of which: query embedding p50 ms", "vector search p50 / p95 ms (all)", "get p50 / p95 ms", "cold open / first search s", "bulk fill slots/s", "SQLite + index MiB"], rows)
        + f"\n\n`add_many` of {args.add_texts} new texts into the filled store against the raw\n"
        "`SentenceTransformer.encode` of the same texts (same batch size; best of 3 each):\n\n"
        + table(["slots", "raw encode texts/s", "add_many texts/s", "add_many / raw"], add_rows)
    )
    print(body)
    if not args.no_write:
        command = "python bench/bench_store.py" + (f" --threads {args.threads}" if args.threads else "")
        write_section("store", "MindStore on the embedded default (issue 2)", command, body)


if __name__ == "__main__":
    main()
