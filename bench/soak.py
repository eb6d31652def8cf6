"""Soak: several processes add, search, update and delete on one store for a fixed time, then
check that SQL, every process's key index and every acknowledged write agree exactly.

Each worker owns one user scope and picks operations at random (add 40%, search 40%, update 10%,
delete 10%); searches go to its own scope, another worker's, or the whole space, and every hit
must be in the scope asked for. A worker keeps the ids it added and has not deleted; at the end,
after every worker stopped, each reports the ids its key index holds. The workers share one index
folder, as processes using one store on one machine do by default: each keeps its own key index
and saves it to the same file. The last check opens that file and must find it sound (caught up
from the change log at most, never rebuilt).

    python bench/soak.py --minutes 10 --procs 3                      # SQLite file
    python bench/soak.py --minutes 10 --procs 3 --db postgresql+psycopg://postgres@127.0.0.1/soak
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402
from sqlalchemy import select  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402
from mindstore.db import SlotRow  # noqa: E402

DIM = 64
OPS = ("add", "search", "update", "delete")
WEIGHTS = (0.4, 0.4, 0.1, 0.1)


def worker(url: str, index_dir: str, me: int, procs: int, deadline: float, out: str, barrier: str) -> None:
    rng = np.random.default_rng(me)
    lat: dict[str, list[float]] = {op: [] for op in OPS}
    mine: set[int] = set()
    violations = 0
    with MindStore(url, config=Config(index_dir=index_dir)) as store:
        while time.time() < deadline:  # bounded: stops at the deadline whatever happens
            op = OPS[rng.choice(4, p=WEIGHTS)]
            if op in ("update", "delete") and not mine:
                op = "add"
            t = time.perf_counter()
            if op == "add":
                n = int(rng.integers(1, 20))
                mine.update(s.id for s in store.add_vectors(rng.normal(size=(n, DIM)).astype(np.float32), space="v", user_id=f"w{me}"))
            elif op == "search":
                who = rng.integers(-1, procs)
                scope = None if who < 0 else f"w{who}"
                hits = store.search_vector(rng.normal(size=DIM).astype(np.float32), space="v", k=10, user_id=scope)
                violations += sum(scope is not None and h.slot.scope.user_id != scope for h in hits)
            elif op == "update":
                ids = rng.choice(sorted(mine), size=min(len(mine), 5), replace=False).tolist()
                store.update_vectors(ids, rng.normal(size=(len(ids), DIM)).astype(np.float32))
            else:
                victim = int(rng.choice(sorted(mine)))
                store.delete(victim)
                mine.discard(victim)
            lat[op].append(time.perf_counter() - t)
        Path(f"{barrier}.{me}").touch()
        while len(list(Path(barrier).parent.glob(Path(barrier).name + ".*"))) < procs and time.time() < deadline + 120:
            time.sleep(0.1)
        store.index_info("v")  # catch up with every other worker's last writes
        index_ids = [int(i) for i in store.key_index("v").ids()]
    Path(out).write_text(json.dumps({"lat": lat, "mine": sorted(mine), "index_ids": index_ids, "violations": violations}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--db", default=None, help="database URL (default: a SQLite file in a temporary folder)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        url, index_dir, me, procs, deadline, out, barrier = args.worker
        worker(url, index_dir, int(me), int(procs), float(deadline), out, barrier)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        url = args.db or f"sqlite:///{tmp}/soak.db"
        index_dir = Path(tmp) / "index"  # shared by every worker and the final check
        with MindStore(url, config=Config(index_dir=index_dir)) as s:
            s.create_space("v", dim=DIM, key_source="soak")
        deadline = time.time() + args.minutes * 60
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        procs = [
            subprocess.Popen([sys.executable, __file__, "--worker", url, str(index_dir), str(i), str(args.procs), str(deadline), f"{tmp}/out{i}.json", f"{tmp}/done"], env=env)
            for i in range(args.procs)
        ]
        for p in procs:
            p.wait(timeout=args.minutes * 60 + 300)
        failed = [i for i, p in enumerate(procs) if p.returncode != 0]
        results = [json.loads(Path(f"{tmp}/out{i}.json").read_text()) for i in range(args.procs) if i not in failed]
        with MindStore(url, config=Config(index_dir=index_dir)) as s:
            repaired = s.index_info("v").repaired  # loads the workers' file, catches up
            with s.engine.connect() as c:
                sql_ids = sorted(int(i) for i in c.scalars(select(SlotRow.id)).all())
            parent_index = [int(i) for i in s.key_index("v").ids()]
        acked = sorted(i for r in results for i in r["mine"])
        checks = {
            "workers failed": failed,
            "acknowledged live ids == SQL ids": acked == sql_ids,
            "every worker's index == SQL": all(r["index_ids"] == sql_ids for r in results),
            "reopened index == SQL": parent_index == sql_ids,
            "the shared index file opened without a rebuild": not (repaired or "").startswith("rebuilt"),
            "how the final open repaired the index": repaired,
            "hits outside the scope asked": sum(r["violations"] for r in results),
        }
    seconds = args.minutes * 60
    rows = []
    for op in OPS:
        samples = sorted(x * 1000 for r in results for x in r["lat"][op])
        if samples:
            rows.append([op, f"{len(samples):,}", f"{len(samples) / seconds:,.1f}", f"{samples[len(samples) // 2]:.1f}", f"{samples[int(0.99 * (len(samples) - 1))]:.1f}"])
    total = sum(len(r["lat"][op]) for r in results for op in OPS)
    body = table(["op", "count", "per s", "p50 ms", "p99 ms"], rows)
    summary = f"{args.procs} processes, {args.minutes:g} min, {total:,} operations ({total / seconds:,.1f}/s), {len(sql_ids):,} slots at the end.\n\n"
    summary += "\n".join(f"- {k}: {v}" for k, v in checks.items())
    print(body)
    print(summary)
    ok = not failed and checks["acknowledged live ids == SQL ids"] and checks["every worker's index == SQL"] and checks["reopened index == SQL"] and checks["the shared index file opened without a rebuild"] and not checks["hits outside the scope asked"]
    if not args.no_write:
        backend = "PostgreSQL" if args.db and args.db.startswith("postgresql") else "SQLite file"
        write_section(f"soak-{'pg' if backend != 'SQLite file' else 'sqlite'}", f"Soak: mixed operations from several processes, {backend} (issue 7)",
                      f"python bench/soak.py --minutes {args.minutes:g} --procs {args.procs}" + (" --db <postgresql url>" if args.db else ""),
                      "Vector space of 64 dims; each process adds (1-19 slots), searches (k=10), updates (5 keys) and deletes at random. "
                      "Measured on the shared 2-core machine while other jobs ran.\n\n" + body + "\n\n" + summary)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
