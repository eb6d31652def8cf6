"""One-shot binding that lasts: lifelong accuracy on the held-out alphabets, and step time at scale.

    python bench/bench_oneshot.py lifelong [--seeds 5] [--write]
    python bench/bench_oneshot.py scale [--sizes 1000 10000 100000 1000000] [--write]

``lifelong`` binds every held-out character (Sanskrit, Tagalog) from one drawing, in a random
order, into a fresh SQLite store through ``OneShotLearner`` and recalls the 19 other drawings of
the classes bound so far when 5, 20 and all of them are bound; beside it nearest-neighbour
baselines on pixels and on learned keys. With --write the table replaces the lifelong block of
docs/neural.md.

``scale`` fills one space with distractor slots (keys of training-alphabet drawings, jittered)
up to each size and times one memory step (LRUA write + top-K read) of ``PersistentMemory``, a
read-only step, and ``bind`` / ``recall`` of one image end to end; ``DenseMemory`` and the
in-tensor ``SparseMemory`` (exact top-K) are timed at the same sizes. With --write: a section of
docs/benchmarks.md and docs/oneshot_scale.png (log-log).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import replace_block, table, write_section  # noqa: E402

from mindstore import Config, MindStore  # noqa: E402
from mindstore.neural import DEFAULT_CHECKPOINT  # noqa: E402
from mindstore.neural.data import DRAWINGS, load_omniglot, with_rotations  # noqa: E402
from mindstore.neural.learner import OneShotLearner  # noqa: E402
from mindstore.neural.memory import DenseMemory, SparseMemory  # noqa: E402
from mindstore.neural.model import config_from_dict  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
START, END = "<!-- lifelong:start -->", "<!-- lifelong:end -->"


def open_store(tmp: str, **config) -> MindStore:
    return MindStore(f"sqlite:///{tmp}/oneshot.db", config=Config(index_dir=Path(tmp) / "index", **config))


def image_size(checkpoint: str | None) -> int:
    """The drawing size the checkpoint was trained on (the packaged one when None)."""
    blob = torch.load(checkpoint or DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    return config_from_dict(blob["model_config"]).image_size


def nn_accuracy(bound: torch.Tensor, queries: torch.Tensor, truth: torch.Tensor) -> float:
    """1-nearest neighbour by cosine: queries (n, ...) against one bound example per class."""
    sims = F.normalize(queries.flatten(1).float(), dim=-1) @ F.normalize(bound.flatten(1).float(), dim=-1).T
    return (sims.argmax(1) == truth).float().mean().item()


@torch.no_grad()
def lifelong(args: argparse.Namespace) -> None:
    ev = load_omniglot(args.data, size=image_size(args.checkpoint)).split()["eval"]
    C = ev.images.shape[0]
    sizes = [n for n in (5, 20, 100) if n < C] + [C]
    rows: dict[str, dict[int, list[float]]] = {}

    def add(name: str, n: int, acc: float) -> None:
        rows.setdefault(name, {}).setdefault(n, []).append(acc)

    for seed in range(args.seeds):
        order = torch.randperm(C, generator=torch.Generator().manual_seed(seed))
        with tempfile.TemporaryDirectory() as tmp, open_store(tmp) as store:
            learners = {mode: OneShotLearner.load(args.checkpoint, store=store, space=mode, persist=mode)
                        for mode in ("read_key", "write_key")}
            done = 0
            for n in sizes:
                new = order[done:n]
                for lr in learners.values():
                    lr.bind(ev.images[new, 0], [ev.characters[c] for c in new.tolist()])
                done = n
                cls = order[:n]
                queries = ev.images[cls, 1:].reshape(-1, *ev.images.shape[-2:])
                truth = torch.arange(n).repeat_interleave(ev.images.shape[1] - 1)
                names = [ev.characters[c] for c in cls.tolist()]
                for mode, lr in learners.items():
                    preds = lr.recall(queries, batch=len(queries))
                    add(f"OneShotLearner, persisted {mode.replace('_', ' ')} (K=4 vote)", n,
                        float(np.mean([p.label == names[t] for p, t in zip(preds, truth.tolist())])))
                lr = learners["read_key"]
                lr.recall(queries, batch=len(queries))
                q_keys = lr.memory.last_keys.mean(1)
                lr.recall(ev.images[cls, 0], batch=n)
                add("nearest neighbour, learned keys (mean read key)", n, nn_accuracy(lr.memory.last_keys.mean(1), q_keys, truth))
                enc = lr.model.encoder
                add("nearest neighbour, encoder embedding e_t", n,
                    nn_accuracy(enc(lr.images(ev.images[cls, 0])), enc(lr.images(queries)), truth))
                add("nearest neighbour, pixels", n, nn_accuracy(ev.images[cls, 0], queries, truth))
                add("chance", n, 1 / n)
    head = ["model"] + [f"{n}-way" for n in sizes]
    body = [[name] + [f"{100 * statistics.mean(acc[n]):.1f}" for n in sizes] for name, acc in rows.items()]
    text = "\n".join([
        f"Held-out alphabets ({C} characters): one drawing of each class bound, the other "
        f"{ev.images.shape[1] - 1} drawings of every class bound so far recalled; accuracy %, mean of "
        f"{args.seeds} random class orders (each a fresh SQLite store).",
        "", table(head, body), "",
        f"Measured by `python bench/bench_oneshot.py lifelong --seeds {args.seeds}` with "
        f"`{Path(args.checkpoint).name if args.checkpoint else 'mann_sparse.pt'}`, 1 thread.",
    ])
    print(text)
    if args.write:
        replace_block(DOCS / "neural.md", START, END, text)


def median_ms(fn, n: int, warm: int = 3) -> tuple[float, float]:
    """(CPU ms, wall ms): medians over ``n`` calls. CPU time (this process) is what a call costs;
    wall time also counts the waits for a core while other jobs share the machine."""
    for _ in range(warm):
        fn()
    cpu, wall = [], []
    for _ in range(n):
        t, p = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - p)
        wall.append(time.perf_counter() - t)
    return 1000 * statistics.median(cpu), 1000 * statistics.median(wall)


def _keys(learner: OneShotLearner, images: torch.Tensor) -> np.ndarray:
    """The key ``learner.bind`` would persist for each image (the heads' mean read key)."""
    learner.recall(images, batch=len(images))
    return learner.memory.score.as_slot(learner.memory.last_keys.mean(1).numpy())


@torch.no_grad()
def in_tensor_step_ms(memory, n_steps: int) -> tuple[float, float]:  # one round: these are not shared
    g = torch.Generator().manual_seed(0)
    state = memory.initial_state(1)
    state.M.normal_(generator=g)
    D, H = memory.width, memory.heads
    box = [state]

    def step() -> None:
        _, box[0] = memory.step(box[0], torch.randn(1, D), torch.randn(1), torch.randn(1, H, D), torch.full((1, H), 10.0))

    return median_ms(step, n_steps)


@torch.no_grad()
def scale(args: argparse.Namespace) -> None:
    data = load_omniglot(args.data, size=image_size(args.checkpoint)).split()
    ev, train = data["eval"], data["train"]
    S = ev.images.shape[-1]
    rng = np.random.default_rng(0)
    curves = {"PersistentMemory step (write + read)": {}, "PersistentMemory read-only step": {},
              "DenseMemory step": {}, "SparseMemory (in-tensor, exact top-K) step": {}}
    ops = ("step", "read-only step", "store search", "bind", "recall")
    with ExitStack() as stack:
        spaces: dict[int, OneShotLearner] = {}
        fill_s, base = 0.0, None
        for size in args.sizes:  # one store per size, all open at once: timed in turns below
            store = stack.enter_context(open_store(stack.enter_context(tempfile.TemporaryDirectory()),
                                                   approximate_from=args.approximate_from))
            learner = spaces[size] = OneShotLearner.load(args.checkpoint, store=store, space="glyphs")
            if base is None:  # the keys bindings of training drawings would persist
                train_imgs = with_rotations(train.images).reshape(-1, S, S)
                base = np.concatenate([_keys(learner, train_imgs[i:i + 2048]) for i in range(0, len(train_imgs), 2048)])
                spread = base.std(0, keepdims=True)
            t = time.perf_counter()
            for start in range(0, size, 20_000):
                m = min(20_000, size - start)
                noise = rng.standard_normal((m, base.shape[1])).astype(np.float32)
                if args.distractors == "random":
                    keys, labels = learner.memory.score.as_slot(noise), ["distractor"] * m
                else:  # bindings of other classes: a training drawing's key, jittered, under its class's label
                    pick = rng.integers(0, len(base), m)
                    keys, labels = base[pick] + 0.1 * spread * noise, [f"train-{i // DRAWINGS}" for i in pick.tolist()]
                store.add_vectors(keys, space="glyphs", labels=labels)
            store.wait_trained("glyphs")  # time the steps on the trained lists, not on what served meanwhile
            fill_s += time.perf_counter() - t
            print(f"filled {size:,} distractors ({fill_s:.0f} s so far)", flush=True)
        accuracy = {}
        for size, learner in spaces.items():
            cls = torch.randperm(ev.images.shape[0], generator=torch.Generator().manual_seed(size))[:20]
            names = [ev.characters[c] for c in cls.tolist()]
            bound = learner.bind(ev.images[cls, 0], names)
            preds = learner.recall(ev.images[cls, 1:6].reshape(-1, S, S))
            accuracy[size] = np.mean([p.label == names[i // 5] for i, p in enumerate(preds)])
            for sid in bound:
                learner.store.delete(sid)
        probe = torch.from_numpy(base[rng.integers(0, len(base), 1)])
        one, name = ev.images[:1, 0], ev.characters[:1]
        timings: dict[int, dict[str, list[tuple[float, float]]]] = {n: {op: [] for op in ops} for n in spaces}
        for _ in range(args.rounds):  # in turns, so load from other jobs falls on every size alike
            for size, learner in spaces.items():
                mem, box = learner.memory, [learner.memory.initial_state(1)]

                def step(write: bool) -> None:
                    mem.labels = ["probe"] if write else None
                    _, box[0] = mem.step(box[0], probe + 0.05 * torch.randn_like(probe), torch.randn(1),
                                         probe + 0.05 * torch.randn(1, mem.heads, mem.width), torch.full((1, mem.heads), 15.0))
                    mem.labels = None

                t = timings[size]
                t["step"].append(median_ms(lambda: step(True), args.steps))
                t["read-only step"].append(median_ms(lambda: step(False), args.steps))
                q = probe.repeat(mem.heads, 1).numpy()
                t["store search"].append(median_ms(lambda: learner.store.search_vectors(q, space="glyphs", k=mem.k), args.steps))
                t["bind"].append(median_ms(lambda: learner.bind(one, name), args.steps // 2))
                t["recall"].append(median_ms(lambda: learner.recall(one), args.steps // 2))
        rows = []
        for size, learner in spaces.items():
            best = {op: (min(c for c, _ in v), min(w for _, w in v)) for op, v in timings[size].items()}
            index = learner.store.key_index("glyphs")
            rows.append([f"{size:,}", f"{learner.store.count(space='glyphs'):,}", "IVF" if index.approximate else "flat"]
                        + [f"{best[op][0]:.2f} / {best[op][1]:.2f}" for op in ops] + [f"{100 * accuracy[size]:.0f}"])
            curves["PersistentMemory step (write + read)"][size] = best["step"][0]
            curves["PersistentMemory read-only step"][size] = best["read-only step"][0]
            print(rows[-1], flush=True)
    dense_rows = []
    width = next(iter(spaces.values())).model.cfg.width  # the checkpoint's slot width
    for size in args.sizes:
        try:
            d = in_tensor_step_ms(DenseMemory(size, width, 4, "cosine", 0.95), max(5, args.steps // 4))
            s = in_tensor_step_ms(SparseMemory(size, width, 4, "cosine", 0.95, k=4), max(5, args.steps // 4))
        except RuntimeError as exc:  # out of memory
            print(f"in-tensor memories at {size}: {exc}")
            break
        curves["DenseMemory step"][size] = d[0]
        curves["SparseMemory (in-tensor, exact top-K) step"][size] = s[0]
        dense_rows.append([f"{size:,}", f"{d[0]:.2f} / {d[1]:.2f}", f"{s[0]:.2f} / {s[1]:.2f}"])
        print(dense_rows[-1], flush=True)
    first, last = curves["PersistentMemory step (write + read)"], curves["PersistentMemory read-only step"]
    lo, hi = min(first), max(first)
    kind = ("generated Gaussian keys" if args.distractors == "random"
            else "keys of training-alphabet drawings, x4 rotations, jittered, each labelled with its class: "
                 "bindings of 596 other classes (training characters x4 rotations) that compete with the bound ones")
    body = "\n".join([
        f"One space filled with distractor slots ({kind}) "
        f"through `add_vectors` (batches of 20k; {fill_s:.0f} s for all of them), SQLite + CPU FAISS, "
        f"`Config(approximate_from={args.approximate_from:,})`, torch and FAISS on 1 thread, on a machine "
        f"other jobs (training runs, test suites) may share. One store per size, all open at once and timed in "
        f"turns ({args.rounds} rounds of {args.steps} steps each); each cell is 'CPU ms / wall ms' per step, the "
        "lowest of the rounds' medians: CPU time is what a step costs, wall time adds the waits for a core on "
        "this shared machine. Batch 1, 4 read heads, K = 4: "
        "'step' is `PersistentMemory.step` (LRUA write into the slots read before and a new slot, then the "
        "top-K read), 'read-only' the same step without the write, 'store search' the `search_vectors` call "
        "of a read (4 queries, index + SQL + usage update), 'bind' / 'recall' one image through "
        "`OneShotLearner` (encoder, controller, store). 'recall %' is the accuracy on 5 other drawings of "
        "20 held-out classes bound from one drawing each among the distractors (chance 5%; the same 20-way "
        "without distractors is in docs/neural.md, 'Lifelong binding').",
        "", table(["distractors", "slots", "index", *ops, "recall %"], rows), "",
        f"CPU time per step at {hi:,} slots against {lo:,}: {first[hi] / first[lo]:.1f}x (write + read), "
        f"{last[hi] / last[lo]:.1f}x (read only).",
        "", f"In-tensor memories (torch, one episode's memory of N slots x {width}, batch 1, write + read):", "",
        table(["slots", "DenseMemory step", "SparseMemory (exact top-K) step"], dense_rows), "",
        "![step time against slots, log-log](oneshot_scale.png)",
    ])
    print(body)
    if args.write:
        plot(curves, DOCS / "oneshot_scale.png")
        write_section("oneshot", "Neural memory at scale: step time against slots (issue 4)",
                      "python bench/bench_oneshot.py scale " + " ".join(sys.argv[2:]), body)


def plot(curves: dict[str, dict[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, pts in curves.items():
        if pts:
            xs = sorted(pts)
            ax.loglog(xs, [pts[x] for x in xs], "-o", label=name, markersize=3)
    ax.set_xlabel("slots in memory")
    ax.set_ylabel("CPU ms per step (median, batch 1, 1 thread)")
    ax.set_title("Memory step time against size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["lifelong", "scale"])
    ap.add_argument("--checkpoint", default=None, help="default: the packaged mann_sparse.pt")
    ap.add_argument("--data", default=None, help="Omniglot zip or folder (default as for mindstore train)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--approximate-from", type=int, default=50_000)
    ap.add_argument("--distractors", choices=["random", "drawings"], default="random",
                    help="random: generated Gaussian keys; drawings: keys of training-alphabet drawings, jittered "
                         "(other classes competing with the bound ones)")
    ap.add_argument("--write", action="store_true", help="write the results into docs/")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import faiss

    faiss.omp_set_num_threads(1)
    lifelong(args) if args.what == "lifelong" else scale(args)


if __name__ == "__main__":
    main()
