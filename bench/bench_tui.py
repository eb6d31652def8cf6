"""`mindstore tui` on a big store: time to the first page of slots, and paging.

Builds a store of N slots in the text space (384-dim keys given directly, texts like a chat
memory; embedding a million texts would take hours here and is not what is measured), then in a
fresh process starts the real app headless (Textual's pilot), waits until the slot table shows
rows, and presses PgDn repeatedly while pages load by cursor.

    python bench/bench_tui.py [--slots 1000000] [--db sqlite:///big.db] [--no-write]
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

PROBE = r"""
import asyncio, json, sys, time
t0 = time.perf_counter()
from mindstore.tui.app import MindStoreApp
imports = time.perf_counter() - t0

async def main():
    app = MindStoreApp(sys.argv[1])
    async with app.run_test(size=(150, 36)) as pilot:
        while app.browse.table.row_count == 0:
            await pilot.pause(0.005)
        first = time.time() - float(sys.argv[2])  # from the parent's clock just before it started this process
        app.browse.table.focus()
        await pilot.pause()
        times = []
        for _ in range(30):
            t = time.perf_counter()
            await pilot.press("pagedown")
            await app.workers.wait_for_complete()
            await pilot.pause()
            times.append(time.perf_counter() - t)
        rows = app.browse.table.row_count
    print(json.dumps({"first_page_s": first, "imports_s": imports, "pgdn_ms": sorted(times)[len(times) // 2] * 1000,
                      "pgdn_max_ms": max(times) * 1000, "rows_loaded": rows}))

asyncio.run(main())
"""


def build(url: str, n: int) -> None:
    from mindstore import Config, MindStore

    rng = np.random.default_rng(0)
    with MindStore(url, config=Config(save_index_every=10**9)) as store:
        store.add("warm up", user_id="warm")  # creates the text space (loads the model once)
        done, chunk = 0, 20_000
        t = time.perf_counter()
        while done < n:
            m = min(chunk, n - done)
            keys = rng.normal(size=(m, 384)).astype(np.float32)
            texts = [f"memory {done + i}: user {(done + i) % 5000} said something worth keeping" for i in range(m)]
            for u in range(10):
                sel = np.arange(m) % 10 == u
                store.add_vectors(keys[sel], space="chat", texts=[x for x, s in zip(texts, sel) if s], user_id=f"user{u}", session_id=f"s{(done // chunk) % 50}")
            done += m
            print(f"\rfilled {done:,} slots ({done / (time.perf_counter() - t):,.0f}/s)", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slots", type=int, default=1_000_000)
    ap.add_argument("--db", help="use (and fill if empty) this store instead of a temporary one")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    tmp = None
    url = args.db
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="mindstore-tui-bench-")
        url = f"sqlite:///{tmp.name}/big.db"
    from mindstore import MindStore

    with MindStore(url) as s:
        have = s.count()
    if have < args.slots:
        build(url, args.slots - have)
    with MindStore(url) as s:
        total = s.count()
    load = os.getloadavg()[0]
    results = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", PROBE, url, repr(time.time())], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    rows = [[f"{total:,}", f"{r['first_page_s']:.2f}", f"{r['imports_s']:.2f}", f"{r['pgdn_ms']:.0f}", f"{r['pgdn_max_ms']:.0f}",
             r["rows_loaded"]] for r in results]
    body = (
        "A fresh process imports the app, opens the store and starts Textual headless (pilot, 150x36);\n"
        "'first page' is the time from just before the process is started (interpreter start-up\n"
        "included) until the slot table shows rows; 'imports' is the part spent importing the app.\n"
        "Then 30 PgDn presses, each waited on until its page loads (100 rows per page, by cursor).\n"
        "A load average above the core count (machine line) means other work shared the CPUs: the\n"
        "times are then pessimistic.\n\n"
        + table(["slots", "first page s", "imports s", "PgDn p50 ms", "PgDn max ms", "rows loaded after 30 PgDn"], rows)
    )
    print(body)
    if not args.no_write:
        write_section("tui", "mindstore tui on a big store (issue 5)", f"python bench/bench_tui.py --slots {args.slots}", body,
                      machine_note=f", load average {load:.1f} when the runs began")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
