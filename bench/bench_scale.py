"""Scale: bulk add, search latency and recall, cold open, disk and memory at 1e4..1e6 slots.

Keys are 384-d like MiniLM's: 2,000 real MiniLM embeddings of generated sentences as centres, each
slot a centre plus Gaussian noise of norm ~1 (cosine ~0.7 to its centre), so neighbours are not
near-duplicates and recall@10 means something. Slots belong to 100 users in chunks of 1,000, plus
one user with 50 slots (the small scope inside a big space). The space switches to IVF at
``--approximate-from`` keys. Recall@10 is the store's top 10 against exact float32 search (numpy).

    python bench/bench_scale.py --sizes 10000 100000 1000000
    python bench/bench_scale.py --compare 100000     # IVF vs HNSW on the key index alone
    python bench/bench_scale.py --lists 1000000      # IVF list counts on the key index alone
    python bench/bench_scale.py --url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
                                                     # the same on PostgreSQL: a fresh database per size
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_store import percentiles, sentences  # noqa: E402
from report import DOC, machine, table, write_section  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402
from mindstore.embed import default_embedder  # noqa: E402
from mindstore.index import KeyIndex, normalize  # noqa: E402
from mindstore.index.ivf import ivf_lists, trained_ivf  # noqa: E402

DIM = 384
CHUNK = 1_000  # slots per user chunk
BATCH = 50_000  # slots per add_vectors call


def make_keys(centres: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = normalize(centres)
    return (centres[rng.integers(0, len(centres), n)] + rng.normal(scale=1 / np.sqrt(DIM), size=(n, DIM))).astype(np.float32)


def exact_top(keys_unit: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    out = []
    for row in normalize(q):
        sims = keys_unit @ row
        top = np.argpartition(-sims, k)[:k]
        out.append(top[np.argsort(-sims[top])])
    return np.array(out)


def cold_open(url: str, index_dir: Path, dim: int, approximate_from: int, key_index: str = "auto") -> tuple[float, float, float]:
    """(open s, open + first vector search s, peak RSS MiB) in a fresh process.

    The peak is the process's own VmHWM: ru_maxrss of a child started by fork + exec also counts
    the parent's RSS at the fork (Linux keeps the larger of the two), which here held the bench's
    copy of every key and made a cold open look like 6.4 GiB at 1e6."""
    code = (
        "import time; t=time.perf_counter(); from mindstore import MindStore, Config; "
        f"s=MindStore({url!r}, config=Config(index_dir={str(index_dir)!r}, approximate_from={approximate_from}, key_index={key_index!r})); "
        "o=time.perf_counter()-t; "
        f"s.search_vector([1.0] * {dim}, k=10); r=time.perf_counter()-t; "
        "hwm=[l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; print(o, r, int(hwm) / 1024); s.close()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    a, b, c = out.stdout.strip().splitlines()[-1].split()
    return float(a), float(b), float(c)


@contextmanager
def database(server: str | None, tmp: str, n: int) -> Iterator[tuple[str, Callable[[], int]]]:
    """(store URL, bytes its data takes): a SQLite file in ``tmp``, or a fresh database on the
    PostgreSQL server of ``server``, dropped afterwards."""
    if server is None:
        yield f"sqlite:///{tmp}/scale.db", lambda: sum(f.stat().st_size for f in Path(tmp).rglob("*.db*") if f.is_file())
        return
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"mindstore_scale_{n}"
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)

    def size() -> int:
        with engine.connect() as c:
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar())

    try:
        yield url, size
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_rss(server: str | None, approximate_from: int) -> float:
    """Peak RSS (MiB) of a cold process that opens a store holding one key and searches it: what a
    process costs before its slots (Python, SQLAlchemy, FAISS, the driver)."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp, database(server, tmp, 0) as (url, _):
        index_dir = Path(tmp) / "index"
        with MindStore(url, config=Config(index_dir=index_dir, approximate_from=approximate_from)) as store:
            store.create_space("chat", dim=DIM, key_source=store.embedder_name)
            store.add_vectors(np.ones((1, DIM), np.float32), space="chat")
        return cold_open(url, index_dir, DIM, approximate_from)[2]


def run_size(n: int, centres: np.ndarray, emb, queries: list[str], approximate_from: int, nq: int, server: str | None = None,
             rss0: float = 0.0, key_index: str = "faiss") -> tuple[list[object], dict[str, float]]:
    """One size: the table's row, and its figures for the plot. ``key_index="pgvector"``: the
    space is filled with FAISS keys, as a store that outgrew one host would be, then moved into
    pgvector (``move_keys``, the migration path: the HNSW graph is built once after the copy),
    and every search after that runs in PostgreSQL."""
    keys = make_keys(centres, n, seed=n)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp, database(server, tmp, n) as (url, data_size):
        index_dir = Path(tmp) / "index"
        config = Config(index_dir=index_dir, approximate_from=approximate_from)
        with MindStore(url, config=config) as store:
            store.create_space("chat", dim=DIM, key_source=store.embedder_name)
            t = time.perf_counter()
            for start in range(0, n, BATCH):
                part = keys[start : start + BATCH]
                for c in range(0, len(part), CHUNK * 10):  # 10 users' chunks per call
                    sub = part[c : c + CHUNK * 10]
                    store.add_vectors(sub, space="chat", user_id=f"user{((start + c) // CHUNK) % 100}")
            fill_s = time.perf_counter() - t
            store.wait_trained("chat")  # lists trained in the background: measure searches on them
            trained_s = time.perf_counter() - t - fill_s
            small = make_keys(centres, 50, seed=-1 % 2**32)
            small_ids = [s.id for s in store.add_vectors(small, space="chat", user_id="small")]
            print(f"  {n}: filled in {fill_s:.1f} s ({n / fill_s:,.0f} slots/s), lists trained {trained_s:.1f} s later", flush=True)
            if key_index == "pgvector":
                t = time.perf_counter()
                store.move_keys("pgvector")
                trained_s = time.perf_counter() - t  # the column's "+ s": here the move and the HNSW build
                print(f"  {n}: keys moved into pgvector and indexed in {trained_s:.1f} s", flush=True)

            if server is not None:
                # The load's dirty pages (gigabytes at 1e6: the slots, the HNSW graph) are written
                # now, not by a checkpoint in the middle of the timed searches.
                with store.engine.connect() as c:
                    c.execute(text("CHECKPOINT"))
            qv = make_keys(centres, nq, seed=n + 1)
            kidx = store.key_index("chat")  # the key index alone, for its own latency
            for q in qv[:20]:
                store.search_vector(q, k=10)
            lat_store, lat_index, found = [], [], []
            for q in qv:
                t = time.perf_counter()
                hits = store.search_vector(q, k=10)
                lat_store.append(time.perf_counter() - t)
                found.append([h.slot.id for h in hits])
                t = time.perf_counter()
                kidx.search(q[None], 10)
                lat_index.append(time.perf_counter() - t)
            # exact reference over every key (the bench's own float32 copy); slot ids = row + 1
            allkeys = normalize(np.vstack([keys, small]))
            ids_all = np.concatenate([np.arange(1, n + 1), np.array(small_ids)])
            truth = ids_all[exact_top(allkeys, qv, 10)]
            recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
            # the small scope: exactly its own top 10
            tq = make_keys(centres, 20, seed=7)
            small_truth = np.array(small_ids)[exact_top(normalize(small), tq, 10)]
            small_ok = np.mean([[h.slot.id for h in store.search_vector(q, k=10, user_id="small")] == list(t) for q, t in zip(tq, small_truth)])
            lat_text, lat_scoped = [], []
            for q in queries[:10]:
                store.search(q, k=10)
            for i, q in enumerate(queries):
                t = time.perf_counter()
                store.search(q, k=10)
                lat_text.append(time.perf_counter() - t)
                t = time.perf_counter()
                store.search(q, k=10, user_id=f"user{i % 100}")  # one user's slots: 1% of the space
                lat_scoped.append(time.perf_counter() - t)
            kind = store.index_info("chat").kind
        disk = data_size() + sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
        # the row's own key index (auto would move a FAISS space of 1e5 slots into pgvector here)
        opened, ready, rss = cold_open(url, index_dir, DIM, approximate_from, key_index)
    sp50, sp95 = percentiles(lat_store)
    ip50, ip95 = percentiles(lat_index)
    tp50, tp95 = percentiles(lat_text)
    up50, up95 = percentiles(lat_scoped)
    mem = (rss - rss0) * 2**20 / (n + 50)
    row = [f"{n:,}", kind, f"{n / fill_s:,.0f} (+{trained_s:.1f} s)", f"{ip50:.2f} / {ip95:.2f}", f"{sp50:.2f} / {sp95:.2f}", f"{tp50:.1f} / {tp95:.1f}",
           f"{up50:.1f} / {up95:.1f}", f"{recall:.3f}", f"{small_ok:.2f}", f"{opened:.2f} / {ready:.2f}", f"{disk / (n + 50):,.0f}", f"{rss:,.0f}", f"{mem:,.0f}"]
    return row, {"n": n, "add": n / fill_s, "index p50": ip50, "index p95": ip95, "vector p50": sp50, "vector p95": sp95,
                 "text p50": tp50, "text p95": tp95, "disk": disk / (n + 50), "memory": mem}


def plot(points: list[dict[str, float]], path: Path, title: str) -> None:
    """Latency, bulk add rate and bytes a slot against the number of slots, with the targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["n"] for p in points]
    fig, (lat, add, size) = plt.subplots(1, 3, figsize=(12, 3.8), dpi=110)
    for what, colour in (("index", "tab:blue"), ("vector", "tab:orange"), ("text", "tab:green")):
        lat.loglog(xs, [p[f"{what} p50"] for p in points], "-o", color=colour, markersize=3, label=f"{what} search p50")
        lat.loglog(xs, [p[f"{what} p95"] for p in points], "--", color=colour, label=f"{what} search p95")
    lat.axhline(2, color="grey", lw=0.8, ls=":", label="target: vector p50 2 ms")
    lat.set(xlabel="slots", ylabel="ms per query (k=10, one query a call)", title="search latency")
    lat.legend(fontsize=6)
    add.semilogx(xs, [p["add"] for p in points], "-o", markersize=3, label="add_vectors, 10,000 keys a call")
    add.axhline(50_000, color="grey", lw=0.8, ls=":", label="target 50,000 slots/s")
    add.set(xlabel="slots", ylabel="slots/s until the last add returned", title="bulk add of precomputed keys", ylim=(0, None))
    add.legend(fontsize=6)
    size.semilogx(xs, [p["disk"] for p in points], "-o", markersize=3, label="disk (database + index files)")
    size.semilogx(xs, [p["memory"] for p in points], "-o", markersize=3, label="memory (cold process RSS above an empty store)")
    size.set(xlabel="slots", ylabel="bytes a slot", title="disk and memory per slot", ylim=(0, None))
    size.legend(fontsize=6)
    for ax in (lat, add, size):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


def latency_recall(qv: np.ndarray, truth: np.ndarray, search) -> tuple[float, float, float]:  # noqa: ANN001
    """(p50 ms, p95 ms, recall@10) of ``search`` (one query (1, d) -> its top-10 ids), one query at a time."""
    lat, got = [], []
    for q in qv:
        t = time.perf_counter()
        got.append(search(q[None]))
        lat.append(time.perf_counter() - t)
    p50, p95 = percentiles(lat)
    return p50, p95, float(np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, truth)]))


def compare(n: int, centres: np.ndarray, nq: int) -> str:
    """IVF (this index) against HNSW (faiss IndexHNSWFlat, M=32) on the key index alone."""
    import faiss

    keys = normalize(make_keys(centres, n, seed=n))
    qv = normalize(make_keys(centres, nq, seed=n + 1))
    truth = exact_top(keys, qv, 10)
    rows = []

    def measure(name: str, build_s: float, search) -> None:  # noqa: ANN001
        p50, p95, rec = latency_recall(qv, truth, search)
        rows.append([name, f"{build_s:.1f}", f"{p50:.2f} / {p95:.2f}", f"{rec:.3f}"])
        print(" ", rows[-1], flush=True)

    t = time.perf_counter()
    ivf = KeyIndex(DIM, device="cpu", approximate_from=min(n, 50_000))
    for s in range(0, n, BATCH):
        ivf.add(np.arange(s, min(n, s + BATCH)), keys[s : s + BATCH])
    measure(f"IVF{ivf.nlist},SQfp16 (nprobe {ivf.nprobe})", time.perf_counter() - t, lambda q: ivf.search(q, 10)[1][0])
    faiss.omp_set_num_threads(1)
    for ef in (64, 128):
        t = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        hnsw.add(keys)
        faiss.omp_set_num_threads(1)
        build = time.perf_counter() - t
        hnsw.hnsw.efSearch = ef
        measure(f"HNSW32,Flat (efSearch {ef})", build, lambda q: hnsw.search(q, 10)[1][0])
    return table(["index", "build s", "search p50 / p95 ms", "recall@10"], rows)


def list_counts(n: int, centres: np.ndarray, nq: int) -> str:
    """The IVF alone at ``n`` keys for several list counts, each probed to scan ~8k and ~16k keys."""
    import faiss

    keys = normalize(make_keys(centres, n, seed=n))
    qv = normalize(make_keys(centres, nq, seed=n + 1))
    truth = exact_top(keys, qv, 10)
    rows = []
    for nlist, why in ((int(4 * np.sqrt(100_000)), "4 sqrt(1e5)"), (ivf_lists(n), "2 sqrt(N), the rule"), (int(4 * np.sqrt(n)), "4 sqrt(N), the old rule")):
        t = time.perf_counter()
        ivf = trained_ivf(DIM, keys, nlist)  # the key index's own IVF, before its keys
        trained = time.perf_counter() - t
        ivf.add_with_ids(keys, np.arange(n))
        built = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        for scan in (8_192, 16_384):
            ivf.nprobe = int(min(nlist, max(8, scan * nlist // n)))
            p50, _, rec = latency_recall(qv, truth, lambda q: ivf.search(q, 10)[1][0])
            rows.append([f"{nlist:,} ({why})", f"{trained:.1f}", f"{built:.1f}", f"{ivf.nprobe} (~{scan:,})", f"{p50:.2f}", f"{rec:.3f}"])
            print(" ", rows[-1], flush=True)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
    return table(["lists", "k-means s", "k-means + add s", "nprobe (keys scanned)", "search p50 ms", "recall@10"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--approximate-from", type=int, default=Config().approximate_from, help="default: the library default")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--compare", type=int, default=None, help="only compare IVF and HNSW at this many keys")
    ap.add_argument("--lists", type=int, default=None, help="only compare IVF list counts at this many keys")
    ap.add_argument("--url", default=None, help="a PostgreSQL server (SQLAlchemy URL of any database on it): each size runs "
                    "in a fresh database created there and dropped after (default: a SQLite file)")
    ap.add_argument("--key-index", nargs="+", choices=["faiss", "pgvector"], default=["faiss"],
                    help="with --url: run each size with each of these key indexes, one after the other (pgvector: the "
                    "space filled with FAISS keys, then moved into pgvector)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if "pgvector" in args.key_index and not args.url:
        ap.error("--key-index pgvector needs --url (a PostgreSQL server with pgvector)")
    emb = default_embedder()
    centres = emb.embed(sentences(2000, seed=0))
    if args.compare:
        body = compare(args.compare, centres, args.queries)
        print(body)
        if not args.no_write:
            write_section("scale-ann", f"Approximate key index: IVF against HNSW at {args.compare:,} keys (issue 7)",
                          f"python bench/bench_scale.py --compare {args.compare}",
                          "Key index alone, one query at a time on one thread, 384-d keys as described in bench_scale.py. "
                          "HNSW is built on all cores. Measured on the shared 2-core machine while other jobs ran.\n\n" + body)
        return
    if args.lists:
        body = list_counts(args.lists, centres, args.queries)
        print(body)
        if not args.no_write:
            write_section("scale-lists", f"IVF list count at {args.lists:,} keys (issue 7)", f"python bench/bench_scale.py --lists {args.lists}",
                          "The key index's IVF alone (float16 codes, no residual), k-means on 40 keys a list, 384-d keys as described "
                          "in bench_scale.py, one query at a time on one thread, recall@10 against exact float32 search. A search "
                          "probes enough lists to scan a fixed number of keys, so more lists buy a finer partition, not less "
                          "scanning; k-means costs lists x sample and the sample grows with the lists.\n\n" + body)
        return
    queries = [f"what do you remember about {s.lower()}?" for s in sentences(args.queries, seed=1)]
    rss0 = empty_rss(args.url, args.approximate_from)
    rows, points = [], []
    for n in args.sizes:
        for key_index in args.key_index:
            row, point = run_size(n, centres, emb, queries, args.approximate_from, args.queries, args.url, rss0, key_index)
            rows.append(row)
            if key_index == args.key_index[0]:
                points.append(point)
            print(" | ".join(map(str, rows[-1])), flush=True)
    headers = ["slots", "index", "bulk add slots/s (lists trained, or keys moved, s later)", "index search p50 / p95 ms", "vector search p50 / p95 ms",
               "text search p50 / p95 ms", "one user's text search p50 / p95 ms", "recall@10", "50-slot scope exact", "cold open / + first search s", "disk B/slot", "cold process peak RSS MiB", "memory B/slot"]
    body = table(headers, rows)
    print(body)
    columns = (
        "'index search' is the key index alone (`KeyIndex.search`, the same query just after the store's, its pages cached); 'vector search' is `search_vector` (catch-up check, index, SQL "
        "read of the candidates and rescoring from their float32 keys, counting the hits as reads); 'text search' adds MiniLM "
        "embedding of the query; 'one user's' searches the slots of one of the 100 users (1% of the space). The bulk add rate is until the last `add_vectors` call returned, every slot durable and "
        "searchable; the lists of an IVF then finish training in the background ('+ s'), and the searches run on them. "
        "Recall@10 is the store's top 10 against exact float32 search over all keys (numpy). '50-slot scope exact' is the "
        "share of 20 searches in a 50-slot user's scope that returned exactly its exact top 10. Cold open is a fresh "
        "process: open, then open + first vector search (loading and checking the saved index); its peak RSS is the "
        "process's own VmHWM. Memory a slot is that peak less the peak of the same cold process on a store of one key "
        f"({rss0:,.0f} MiB), over the slots. Run it with nothing else on the machine: on 2 cores any other job shows."
    )
    both = args.key_index != ["faiss"]
    if not args.no_write and not both:
        name = "scale_pg.png" if args.url else "scale.png"
        plot(points, DOC.parent / name, f"{'PostgreSQL' if args.url else 'SQLite file'} store, 384-d keys, IVF past {args.approximate_from:,} keys; {machine()}")
        body += f"\n\n![search latency, bulk add rate, disk and memory per slot against slots]({name})"
    if not args.no_write and args.url:
        server = make_url(args.url)
        engine = create_engine(args.url)
        with engine.connect() as c:
            version, buffers = c.execute(text("SELECT current_setting('server_version'), current_setting('shared_buffers')")).one()
        engine.dispose()
        section, title = ("scale-pgvector", "Scale on PostgreSQL: the FAISS and pgvector key indexes side by side (issue 29)") if both \
            else ("scale-pg", "Scale on PostgreSQL (issue 7)")
        write_section(section, title,
                      f"python bench/bench_scale.py --url {server.render_as_string(hide_password=True)} --sizes " + " ".join(map(str, args.sizes))
                      + ("" if not both else " --key-index " + " ".join(args.key_index)),
                      f"The same bench on the PostgreSQL {version} server at {server.host}:{server.port} (on this machine, loopback; "
                      f"shared_buffers {buffers}), a fresh "
                      f"database per size and key index; IVF past {args.approximate_from:,} keys, {args.queries} queries, k=10, one query per call. "
                      "A CHECKPOINT follows each load, before the searches are timed. "
                      "Disk is the database's size (pg_database_size) plus the index files. " + columns + "\n\n" + body)
    elif not args.no_write:
        write_section("scale", "Scale: 1e4 to 1e6 slots of 384 dims (issue 7)", "python bench/bench_scale.py --sizes " + " ".join(map(str, args.sizes)),
                      f"SQLite file store, `Config(approximate_from={args.approximate_from})` (IVF past that many keys), the rest default; keys as in the script's "
                      f"docstring, 100 users in chunks of 1,000 slots, `add_vectors` calls of 10,000 keys, plus one user with 50 slots; "
                      f"{args.queries} queries, k=10, one query per call. " + columns + "\n\n" + body)


if __name__ == "__main__":
    main()
