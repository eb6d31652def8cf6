"""The pgvector key index alone: bulk load, HNSW build, top-10 latency and recall, cold start.

A fresh database (dropped at the end) gets ``--n`` slots spread over ``--users`` users and their
random unit keys (``--data uniform``: uniform on the sphere, the hardest case for a graph index;
``clustered``: 2,000 random centres plus noise, like bench_scale.py's keys around MiniLM
embeddings; uniform 384-d data has no neighbourhood structure, and no graph index finds its
neighbours). Keys are loaded with the
index dropped, then the HNSW index is built once. Each query is its own transaction, as a
stateless worker's would be. Recall@10 is against exact float32 search in numpy; the scoped rows
search one random user's slots, first as the index chooses (a capped count, then exact below
2048 matching slots), then as PostgreSQL's planner chooses alone; and 10% of the users (a filter
the iterative HNSW scan serves). Prints a table; writes no docs.

    python bench/bench_pgvector.py --n 100000 --dim 384 --queries 200 --ef-search 40 100
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid

import numpy as np
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from mindstore.db.engine import open_database
from mindstore.db.models import SlotRow, scope_where
from mindstore.index.pgvector import PgVectorKeys
from mindstore.slots import Scope

COLD = """
import time, sys, numpy as np
t0 = time.perf_counter()
from sqlalchemy import create_engine
from mindstore.index.pgvector import PgVectorKeys
t1 = time.perf_counter()
engine = create_engine(sys.argv[1])
keys = PgVectorKeys(engine, int(sys.argv[2]), int(sys.argv[3]), create=False)
q = np.random.default_rng(0).standard_normal((1, int(sys.argv[3]))).astype(np.float32)
keys.search(q, 10)
t2 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t1:.4f}")
"""


def unit_keys(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray | None) -> np.ndarray:
    """``n`` unit vectors: uniform, or a unit centre plus Gaussian noise of norm ~1 (cosine ~0.7
    to it), as bench_scale.py makes them around MiniLM embeddings."""
    v = rng.standard_normal((n, dim)).astype(np.float32)
    if centres is not None:
        v = centres[rng.integers(0, len(centres), n)] + v / np.sqrt(dim)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill_slots(engine: Engine, n: int, users: int, dim: int, seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    """A space of ``n`` slots, user of each drawn at random; returns (space id, ids, user numbers)."""
    users_of = np.random.default_rng(seed).integers(0, users, n)
    with engine.begin() as c:
        space = c.execute(text("INSERT INTO spaces (name, dim, key_source, created_at) VALUES ('bench', :d, 'random', now()) RETURNING id"),
                          {"d": dim}).scalar_one()
        c.execute(text("INSERT INTO slots (space_id, user_id, key, metadata, reads, writes, created_at, updated_at) "
                       "SELECT :s, 'u' || u, '\\x'::bytea, '{}', 0, 1, now(), now() FROM unnest(CAST(:users AS int[])) WITH ORDINALITY AS t(u, o) ORDER BY o"),
                  {"s": space, "users": users_of.tolist()})
        ids = np.array(c.scalars(text("SELECT id FROM slots WHERE space_id = :s ORDER BY id"), {"s": space}).all(), dtype=np.int64)
    with engine.connect() as c:
        c.execute(text("ANALYZE slots"))  # what the store does after a bulk add: plans need the scopes' sizes
        c.commit()
    return space, ids, users_of


def latencies(fn, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:  # noqa: ANN001 - a search callable
    times, results = [], []
    for i in range(len(queries)):
        t = time.perf_counter()
        results.append(fn(i))
        times.append(time.perf_counter() - t)
    return times, results


def recall(got: list[np.ndarray], exact: list[np.ndarray]) -> float:
    return float(np.mean([len(set(g[g >= 0].tolist()) & set(e.tolist())) / max(len(e), 1) for g, e in zip(got, exact)]))


def pct(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return f"{statistics.median(ms):.2f} / {ms[int(0.95 * (len(ms) - 1))]:.2f}"


def server_ms(engine: Engine, table: str, queries: np.ndarray, where: list[str], ef: int) -> str:
    """p50 / p95 of the server's own execution time (EXPLAIN ANALYZE) of the top-10 statement
    the index sends, for the first 30 queries: the search without round trips and client work.
    ``where``: SQL conditions over ``slots`` (one per query), or empty strings for none."""
    times = []
    with engine.begin() as c:
        c.execute(text("SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"),
                  {"ef": str(ef)})
        for q, w in zip(queries[:30], where[:30]):
            join = f" JOIN slots ON slots.id = k.slot_id WHERE {w}" if w else ""
            sql = f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT k.slot_id, k.key <#> CAST(:q AS vector) AS d FROM {table} k{join} ORDER BY d LIMIT 10"
            times.append(c.execute(text(sql), {"q": "[" + ",".join(map(str, q.tolist())) + "]"}).scalar()[0]["Execution Time"] / 1000)
    return f"server {pct(times)} ms"


def run(args: argparse.Namespace, url: str) -> list[list[str]]:
    engine, _ = open_database(url)
    rng = np.random.default_rng(0)
    centres = unit_keys(rng, 2000, args.dim, None) if args.data == "clustered" else None
    rows: list[list[str]] = []
    t = time.perf_counter()
    space, ids, users_of = fill_slots(engine, args.n, args.users, args.dim, 1)
    rows.append(["slots rows (SQL)", f"{time.perf_counter() - t:.1f} s", ""])
    index = PgVectorKeys(engine, space, args.dim, half=args.half)
    index.drop_index()
    keys = np.empty((args.n, args.dim), np.float32)
    t = time.perf_counter()
    for at in range(0, args.n, 50_000):
        part = unit_keys(rng, min(50_000, args.n - at), args.dim, centres)
        keys[at : at + len(part)] = part
        index.add(ids[at : at + len(part)], part)
    rows.append(["keys COPY + upsert", f"{time.perf_counter() - t:.1f} s", f"{args.n / (time.perf_counter() - t):,.0f} keys/s"])
    t = time.perf_counter()
    index.build_index(maintenance_work_mem=args.maintenance_work_mem)
    rows.append(["HNSW build (m=16, ef_construction=64)", f"{time.perf_counter() - t:.1f} s", f"maintenance_work_mem {args.maintenance_work_mem}"])
    with engine.connect() as c:
        table_mb = c.scalar(text(f"SELECT pg_total_relation_size('{index.table.name}') / 1048576.0"))
        index_mb = c.scalar(text(f"SELECT pg_relation_size('{index.table.name}_hnsw') / 1048576.0"))
    rows.append(["table + index size", f"{table_mb:,.0f} MB", f"HNSW index {index_mb:,.0f} MB"])
    queries = unit_keys(rng, args.queries, args.dim, centres)
    exact = [ids[np.argpartition(-(keys @ q), 10)[:10]] for q in queries]
    who = rng.integers(0, args.users, args.queries)
    mine = [np.flatnonzero(users_of == u) for u in who]
    exact_scoped = [ids[m[np.argsort(-(keys[m] @ q))[:10]]] for m, q in zip(mine, queries)]
    tenth = np.arange(0, args.users, 10)  # a filter too broad for the exact plan: the graph walk filters
    broad = [SlotRow.space_id == space, SlotRow.user_id.in_([f"u{u}" for u in tenth])]
    many = np.flatnonzero(np.isin(users_of, tenth))
    exact_broad = [ids[many[np.argpartition(-(keys[many] @ q), 10)[:10]]] for q in queries]
    for ef in args.ef_search:
        times, got = latencies(lambda i: index.search(queries[i : i + 1], 10, ef_search=ef)[1][0], queries)
        rows.append([f"top-10, whole space, ef_search {ef}", f"{pct(times)} ms",
                     f"recall@10 {recall(got, exact):.3f}; {server_ms(engine, index.table.name, queries, [''] * len(queries), ef)}"])
        for probe, label in ((None, "count probe, then exact"), (0, "no probe: planner's plan")):
            times, got = latencies(lambda i: index.search(queries[i : i + 1], 10, ef_search=ef, exact_below=probe,
                                                          where=scope_where(space, Scope(user_id=f"u{who[i]}")))[1][0], queries)
            mine_sql = [f"slots.space_id = {space} AND slots.user_id = 'u{u}'" for u in who]
            note = f"; {server_ms(engine, index.table.name, queries, mine_sql, ef)}" if probe == 0 else ""
            rows.append([f"top-10, one user (~{args.n // args.users} slots), {label}, ef_search {ef}", f"{pct(times)} ms",
                         f"recall@10 {recall(got, exact_scoped):.3f}{note}"])
        times, got = latencies(lambda i: index.search(queries[i : i + 1], 10, ef_search=ef, where=broad)[1][0], queries)
        broad_sql = f"slots.space_id = {space} AND slots.user_id IN ({', '.join(repr(f'u{u}') for u in tenth)})"
        rows.append([f"top-10, 10% of users (iterative HNSW scan), ef_search {ef}", f"{pct(times)} ms",
                     f"recall@10 {recall(got, exact_broad):.3f}; {server_ms(engine, index.table.name, queries, [broad_sql] * len(queries), ef)}"])
    cold = [subprocess.run([sys.executable, "-c", COLD, url, str(space), str(args.dim)], capture_output=True, text=True, check=True)
            for _ in range(3)]
    imports, first = zip(*(map(float, r.stdout.split()) for r in cold))
    rows.append(["cold start: connect + first top-10 (new process)", f"{statistics.median(first) * 1000:.0f} ms",
                 f"imports before it {statistics.median(imports) * 1000:.0f} ms"])
    engine.dispose()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres", help="server (a fresh database is made there)")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--ef-search", type=int, nargs="+", default=[100])
    p.add_argument("--data", choices=["uniform", "clustered"], default="uniform")
    p.add_argument("--half", action="store_true", help="halfvec (float16) keys")
    p.add_argument("--maintenance-work-mem", default="2GB")
    args = p.parse_args()
    name = f"mindstore_bench_pgv_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        rows = run(args, make_url(args.url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"pgvector key index: n={args.n:,} dim={args.dim} users={args.users} data={args.data} {'halfvec' if args.half else 'vector'}, "
          f"{args.queries} queries\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}} | {'time (p50 / p95)':>18} | note")
    print("-" * (width + 40))
    for r in rows:
        print(f"{r[0]:<{width}} | {r[1]:>18} | {r[2]}")


if __name__ == "__main__":
    main()
