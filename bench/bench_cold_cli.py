"""Cold command-line latency: how long one `mindstore` call takes from a fresh process (issue 27).

Each figure is the median of N runs, each a new process (cold Python, warm OS file cache: one
untimed run of each command goes first), on a small store (20 memories). Besides wall time it
reports the CPU time the process used (user + system), which on a machine shared with other jobs
is the better guide to what an idle machine's wall time would be. The `torch` rows run the same
commands with MINDSTORE_EMBED_BACKEND=torch (sentence-transformers, the path before issue 27).

    python bench/bench_cold_cli.py [--runs 5] [--no-torch] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

MINDSTORE = str(Path(sys.executable).with_name("mindstore"))
FACTS = [
    "Alice is allergic to peanuts", "Bob moved to Lisbon in March", "Carol's daughter is called Maya",
    "Dan prefers tea over coffee", "Erin runs a marathon every October", "Frank drives a blue Volvo",
    "Gina lost a bag in Kyoto", "Hugo works night shifts at the hospital", "Iris is learning Portuguese",
    "Jack's birthday is on the 4th of July", "Kim keeps two cats, Miso and Tofu", "Leo is vegetarian",
    "Mia plays the cello in an orchestra", "Nico is afraid of flying", "Olga grows tomatoes on her balcony",
    "Paul's flat is on the fifth floor", "Quinn collects vinyl records", "Rosa teaches maths at a high school",
    "Sam broke his wrist skiing in 2022", "Tess is saving for a trip to Patagonia",
]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, user + system CPU s) of one run of ``cmd``, which must succeed."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(name: str, make_cmd, runs: int, env: dict[str, str]) -> list[object]:  # noqa: ANN001 - run index -> argv
    timed(make_cmd(-1), env)  # untimed: fills the OS file cache, exports the model on a first use
    walls, cpus = zip(*(timed(make_cmd(i), env) for i in range(runs)))
    row = [name, f"{statistics.median(walls):.2f}", f"{min(walls):.2f} - {max(walls):.2f}", f"{statistics.median(cpus):.2f}"]
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true", help="skip the sentence-transformers rows")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("MINDSTORE_EMBED_BACKEND", None)
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'small.db'}"
        from mindstore import MindStore

        with MindStore(db) as store:
            store.add_many(FACTS, user_id="alice")
        rows.append(measure("`python -c pass`", lambda i: [sys.executable, "-c", "pass"], args.runs, env))
        rows.append(measure("`mindstore --help`", lambda i: [MINDSTORE, "--help"], args.runs, env))
        backends = [("onnx", env)] + ([] if args.no_torch else [("torch", {**env, "MINDSTORE_EMBED_BACKEND": "torch"})])
        for backend, benv in backends:
            add = lambda i, b=backend: [MINDSTORE, "add", f"{b} run {i}: Uma's train to Porto leaves at 7:40", "--user", "alice", "--db", db]  # noqa: E731
            search = lambda i: [MINDSTORE, "search", "what is alice allergic to?", "--user", "alice", "--db", db]  # noqa: E731
            rows.append(measure(f"`mindstore add \"...\"` ({backend})", add, args.runs, benv))
            rows.append(measure(f"`mindstore search \"...\"` ({backend})", search, args.runs, benv))
    load_after = os.getloadavg()
    out = table(["command", f"wall s, median of {args.runs}", "wall s, min - max", "CPU s (user + sys), median"], rows)
    print(out)
    if args.no_write:
        return
    before, after = (", ".join(f"{x:.1f}" for x in load) for load in (load_before, load_after))
    body = f"""
Each figure: {args.runs} runs, each a new process (cold Python; the OS file cache warm from one
untimed run of each command), on a SQLite store of {len(FACTS)} memories; `add` stores a new text
each run, `search` embeds its question and returns the top hits. `onnx` is the default since issue
27: the bundled MiniLM exported once to ONNX (user cache dir) and run by onnxruntime, no torch
import; `torch` is `MINDSTORE_EMBED_BACKEND=torch`, sentence-transformers as before. Load
average {before} (1 / 5 / 15 min) at the start, {after} at the end, on {os.cpu_count()} cores
(this benchmark's own processes count in it). Where wall time exceeds CPU time the process waited for a core; the CPU
column (what the process itself used) is close to what an idle machine's wall time would be. The
first use on a machine also exports the model to ONNX (~4 s of CPU more, once; not in these figures).

{out}
"""
    write_section("cold_cli", "Cold CLI latency (issue 27)", "python bench/bench_cold_cli.py", body)


if __name__ == "__main__":
    main()
