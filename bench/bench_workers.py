"""Resident memory and cold start of N app-server workers sharing one PostgreSQL memory, with the
FAISS key index (a copy per worker) and the pgvector one (none): issue 29's point 1.

    python bench/bench_workers.py --n 10000 --n 100000 --workers 1 --workers 2 --workers 4
    python bench/bench_workers.py --n 1000000 --kind pgvector     # one key index only
    python bench/bench_workers.py --n 100000 --search hybrid      # text questions: model + BM25 + keys

For each size: a fresh database filled with clustered random 384-d keys in the text space (100
users), then for each key index, N worker processes started at once: each opens the store, runs
20 scoped vector searches (no model is loaded: the keys are given) and reports its resident set
(VmRSS) and the time from open to its first result. ``--search hybrid``: the workers ask scoped
text questions instead, so each loads the model, and BM25 answers beside the keys (per worker with
FAISS; in PostgreSQL with pgvector). Slots carry 12-word texts of made-up words (Zipf-distributed).
Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DIM = 384
WORKER = r"""
import json, sys, time
import numpy as np
from mindstore import Config, MindStore
url, kind, index_dir, seed, how = sys.argv[1:6]
rng = np.random.default_rng(int(seed))
q = rng.standard_normal((20, 384)).astype(np.float32)
words = sys.argv[6].split()
t0 = time.perf_counter()
with MindStore(url, config=Config(key_index=kind, index_dir=index_dir)) as s:
    first = None
    for i, v in enumerate(q):
        if how == "hybrid":  # the model embeds the question; BM25 and the keys answer it
            s.search(" ".join(rng.choice(words, 4)), k=10, user_id=f"user{i % 100}", count_reads=False)
        else:
            s.search_vector(v, k=10, user_id=f"user{i % 100}", count_reads=False)
        first = first or time.perf_counter() - t0
    rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
    print(json.dumps({"rss_mb": rss / 1024, "first_s": first, "kind": s.index_info().kind}))
"""


# Texts of the slots: 12 words each from 20,000 made-up words, drawn by Zipf's law as words are.
VOCAB = [f"w{i}" for i in range(20_000)]


def texts(rng: np.random.Generator, m: int) -> list[str]:
    ranks = np.minimum(rng.zipf(1.3, (m, 12)), len(VOCAB)) - 1
    return [" ".join(VOCAB[r] for r in row) for row in ranks]


def fill(url: str, n: int, index_dir: str) -> None:
    from mindstore import Config, MindStore

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    with MindStore(url, config=Config(key_index="faiss", index_dir=index_dir)) as s:
        s.create_space("chat", dim=DIM, key_source=s.embedder_name)
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            keys = centres[rng.integers(0, 2000, m)] + 0.5 * rng.standard_normal((m, DIM)).astype(np.float32)
            body = texts(rng, m)
            for u in range(100):
                part = keys[u::100]
                if len(part):
                    s.add_vectors(part, space="chat", user_id=f"user{u}", texts=body[u::100])


def workers(url: str, kind: str, n: int, index_dir: str, how: str) -> list[dict]:
    words = " ".join(VOCAB[:2000])
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, kind, index_dir, str(i), how, words], stdout=subprocess.PIPE, text=True)
             for i in range(n)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, action="append", help="slots (repeat)")
    ap.add_argument("--workers", type=int, action="append", help="worker processes (repeat)")
    ap.add_argument("--kind", choices=["faiss", "pgvector"], action="append", help="key indexes to run (repeat; default both)")
    ap.add_argument("--search", choices=["vector", "hybrid"], default="vector",
                    help="what each worker asks: scoped vector searches (no model), or scoped hybrid text searches (the model, BM25 and the keys)")
    args = ap.parse_args()
    rows = []
    for n in args.n or [10_000, 100_000]:
        name = f"mindstore_bench_workers_{uuid.uuid4().hex[:8]}"
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                index_dir = str(Path(tmp) / "index")
                t0 = time.perf_counter()
                fill(url, n, index_dir)
                print(f"filled {n:,} slots in {time.perf_counter() - t0:.0f} s", flush=True)
                for kind in args.kind or ["faiss", "pgvector"]:
                    if kind == "pgvector":
                        from mindstore import Config, MindStore

                        t0 = time.perf_counter()
                        with MindStore(url, config=Config(index_dir=index_dir)) as s:
                            s.move_keys("pgvector")
                        print(f"moved {n:,} keys to pgvector in {time.perf_counter() - t0:.0f} s", flush=True)
                    for w in args.workers or [1, 2, 4]:
                        got = workers(url, kind, w, index_dir, args.search)
                        rows.append((n, kind, w, statistics.median(g["rss_mb"] for g in got), max(g["rss_mb"] for g in got),
                                     statistics.median(g["first_s"] for g in got), got[0]["kind"]))
                        print(rows[-1], flush=True)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print("\n| slots | key index | workers | RSS per worker, median / max (MB) | open to first result, median (s) |")
    print("| --- | --- | --- | --- | --- |")
    for n, kind, w, med, top, first, k in rows:
        print(f"| {n:,} | {k} | {w} | {med:.0f} / {top:.0f} | {first:.2f} |")


if __name__ == "__main__":
    main()
