"""Compare trained neural-memory checkpoints on the held-out alphabets, 5-way and 20-way.

    python bench/neural_compare.py NAME=CHECKPOINT ... [--episodes 1000] [--write-docs]

Prints the accuracy-by-instance tables (with Santoro et al.'s published rows for 5-way), writes
docs/neural_5way.png and docs/neural_20way.png, and with --write-docs replaces the block between
the results markers in docs/neural.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import replace_block  # noqa: E402

from mindstore.neural import evaluate
from mindstore.neural.model import config_from_dict
from mindstore.neural.train import TrainConfig, load_checkpoint, make_sampler

DOCS = Path(__file__).resolve().parents[1] / "docs"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="NAME=CHECKPOINT")
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--episodes-20", type=int, default=300)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="runs/neural_compare_cache.json",
                    help="reuse numbers measured earlier for an unchanged checkpoint ('' : off)")
    ap.add_argument("--slots-20", type=int, default=0, help="also run 20-way with this many slots")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, dict[str, dict[int, float]]] = {"5": {}, "20": {}}
    meta = {}
    t0 = time.time()
    cache_file = Path(args.cache) if args.cache else None
    cache = json.loads(cache_file.read_text()) if cache_file and cache_file.exists() else {}
    reused: list[str] = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        model, blob = load_checkpoint(path)
        key = f"{Path(path).resolve()}:{Path(path).stat().st_mtime}:{args.episodes}:{args.episodes_20}"
        if key in cache:  # same checkpoint file, same episodes: reuse the measured numbers
            meta[name] = cache[key]["meta"]
            reused.append(name)
            for w, rows in cache[key]["results"].items():
                for n, acc in rows.items():
                    results[w][n.replace("@", name)] = {int(i): a for i, a in acc.items()}
            continue
        tcfg = TrainConfig(model=config_from_dict(blob["model_config"]), task=blob["config"]["task"],
                           data=blob["config"]["data"])
        sampler = make_sampler(tcfg, "eval")
        meta[name] = {"checkpoint": path, "steps": blob["metrics"].get("steps"),
                      "kept": blob["metrics"].get("kept_step", blob["metrics"].get("steps")),
                      "train_seconds": blob["metrics"].get("seconds"),
                      "params": blob["metrics"].get("params")}
        results["5"][name] = evaluate.accuracy_by_instance(model, sampler, ways=5,
                                                           episodes=args.episodes, seed=0)
        results["20"][name] = evaluate.accuracy_by_instance(model, sampler, ways=20,
                                                            episodes=args.episodes_20, seed=0)
        if args.slots_20 and blob["model_config"]["model"] == "mann":
            big, _ = load_checkpoint(path, slots=args.slots_20)
            results["20"][f"{name}, {args.slots_20} slots"] = evaluate.accuracy_by_instance(
                big, sampler, ways=20, episodes=args.episodes_20, seed=0)
        if cache_file:
            mine = {w: {n.replace(name, "@", 1): acc for n, acc in rows.items()
                        if n == name or n.startswith(name + ",")} for w, rows in results.items()}
            cache[key] = {"meta": meta[name], "results": mine}
            cache_file.write_text(json.dumps(cache))
        print(name, json.dumps({w: {i: round(a, 4) for i, a in results[w][name].items()}
                                for w in results}), flush=True)
    five = {**results["5"], **evaluate.SANTORO}
    text = "\n".join([
        f"5-way, 10 presentations per class (50-step episodes), {args.episodes} episodes on the "
        "held-out alphabets (Sanskrit, Tagalog); accuracy % by instance:", "",
        evaluate.table(five), "",
        f"20-way, 10 presentations per class (200-step episodes), {args.episodes_20} episodes, "
        "same checkpoints:", "",
        evaluate.table(results["20"]), "",
        "| model | checkpoint | training steps | kept (best on validation) | training seconds "
        "| parameters |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {n} | `{m['checkpoint']}` | {m['steps']} | {m.get('kept', m['steps'])} | "
          f"{m['train_seconds']} | {m['params']} |" for n, m in meta.items()], "",
        f"Measured by `python bench/neural_compare.py {' '.join(map(shlex.quote, args.models))}"
        f" --episodes {args.episodes} --episodes-20 {args.episodes_20}"
        f"{f' --slots-20 {args.slots_20}' if args.slots_20 else ''}` on "
        f"{platform.machine()} CPU, {args.threads} thread(s), in {time.time() - t0:.0f} s"
        + (f" (rows of {', '.join(reused)} reused from earlier runs of the same command, cached "
           f"in {args.cache})." if reused else "."),
        "", "![5-way](neural_5way.png) ![20-way](neural_20way.png)"])
    print(text)
    evaluate.plot(five, DOCS / "neural_5way.png", "5-way, held-out alphabets")
    evaluate.plot(results["20"], DOCS / "neural_20way.png", "20-way, held-out alphabets")
    if args.write_docs:
        replace_block(DOCS / "neural.md", START, END, text)


if __name__ == "__main__":
    main()
