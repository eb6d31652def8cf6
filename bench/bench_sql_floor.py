"""The SQL floor of a bulk add: raw sqlite3 inserting what ``add_vectors`` inserts, nothing else.

The store's own tables and indexes (created from its SQLAlchemy models), rows prebuilt as tuples,
one ``executemany`` per table and a commit per batch of 10,000, as the store does, but no
SQLAlchemy, no key index and no Python around it. The bulk add target (50,000 slots/s at 1e6) has
to fit in what is left.

    python bench/bench_sql_floor.py --slots 1000000
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from mindstore.db.models import Base  # noqa: E402

BATCH = 10_000
NOW = "2026-01-01 00:00:00.000000"


def fill(path: Path, n: int, *, page: int, cache_kib: int, events: bool) -> tuple[float, float, float]:
    """(seconds, of which commits, bytes a slot) for ``n`` slots (and their add events)."""
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA page_size={page}")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.close()
    Base.metadata.create_all(create_engine(f"sqlite:///{path}"))
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute(f"PRAGMA cache_size=-{cache_kib}")
    c.execute("INSERT INTO spaces (id, name, dim, key_source, created_at) VALUES (1, 'v', 384, 'bench', ?)", (NOW,))
    keys = [k.tobytes() for k in np.random.default_rng(0).normal(size=(BATCH, 384)).astype(np.float32)]
    slot_sql = ("INSERT INTO slots (id, space_id, user_id, agent_id, session_id, text, label, key, value, metadata, reads, writes, "
                "last_access, created_at, updated_at) VALUES (?, 1, ?, NULL, NULL, NULL, NULL, ?, NULL, '{}', 0, 1, ?, ?, ?)")
    event_sql = "INSERT INTO events (id, space_id, slot_id, kind, old_text, new_text, old_metadata, new_metadata, at) VALUES (?, 1, ?, 'add', NULL, NULL, NULL, '{}', ?)"
    t, commits = time.perf_counter(), 0.0
    for start in range(0, n, BATCH):
        user = f"user{(start // 1000) % 100}"
        c.execute("BEGIN")
        c.executemany(slot_sql, [(start + j + 1, user, keys[j], NOW, NOW, NOW) for j in range(BATCH)])
        if events:
            c.executemany(event_sql, [(start + j + 1, start + j + 1, NOW) for j in range(BATCH)])
        tc = time.perf_counter()
        c.execute("COMMIT")
        commits += time.perf_counter() - tc
    took = time.perf_counter() - t
    c.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return took, commits, size / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=1_000_000)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for page, cache, events, what in ((4096, 2000, True, "SQLite defaults (4 KiB pages, 2 MiB cache), slot + event rows"),
                                      (16384, 16384, True, "16 KiB pages, 16 MiB cache (the store's), slot + event rows"),
                                      (16384, 16384, False, "16 KiB pages, 16 MiB cache, slot rows only")):
        with tempfile.TemporaryDirectory() as tmp:
            took, commits, per = fill(Path(tmp) / "floor.db", args.slots, page=page, cache_kib=cache, events=events)
        rows.append([what, f"{took:.1f}", f"{commits:.1f}", f"{args.slots / took:,.0f}", f"{per:,.0f}"])
        print(" | ".join(rows[-1]), flush=True)
    body = table(["configuration", "s", "of which commits s", "slots/s", "B/slot"], rows)
    print(body)
    if not args.no_write:
        write_section("sql-floor", f"SQL floor of a bulk add: raw sqlite3, {args.slots:,} slots (issue 7)",
                      f"python bench/bench_sql_floor.py --slots {args.slots}",
                      "The store's tables and indexes, 384-d float32 keys as blobs, batches of 10,000 in one transaction each, "
                      "WAL with synchronous=NORMAL; rows prebuilt as tuples (columns that hold one value for all rows written as SQL "
                      "literals) and inserted with raw sqlite3 executemany (no "
                      "SQLAlchemy, no key index). 50,000 slots/s at 1e6 is 20 s for everything.\n\n" + body)


if __name__ == "__main__":
    main()
