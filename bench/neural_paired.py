"""Paired comparison of neural-memory checkpoints on the same episodes: is B better than A?

    python bench/neural_paired.py NAME=CHECKPOINT[,FIELD=VALUE...] ... [--split val] [--ways 5]
        [--episodes 1000] [--seed 0]

Every model answers the very same episodes (same seed, same drawings, same label order), so the
difference between two models is measured episode by episode: its standard error is that of the
per-episode differences, far smaller than either model's own spread. The first model is the
reference. ``FIELD=VALUE`` overrides a config field that holds no weights, e.g.
``shift_views=9`` or ``slots=512``.

Prints accuracy % by presentation, the mean over the 2nd..last presentation (the 1st cannot be
known), and each model's paired difference from the reference on that mean, +- its standard
error. Choices are made on ``--split val`` (characters held back from the training alphabets);
``--split eval`` is the held-out alphabets, for final numbers only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table  # noqa: E402

from mindstore.neural.evaluate import _nth  # noqa: E402
from mindstore.neural.model import MANNConfig, config_from_dict  # noqa: E402
from mindstore.neural.train import TrainConfig, load_checkpoint, make_sampler  # noqa: E402


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """``NAME=PATH[,FIELD=VALUE...]`` -> (name, path, overrides typed as MANNConfig's fields)."""
    name, _, rest = spec.partition("=")
    if not name or not rest:
        raise SystemExit(f"model {spec!r}: write NAME=CHECKPOINT[,FIELD=VALUE...]")
    path, *sets = rest.split(",")
    kinds = {f.name: f.type for f in fields(MANNConfig)}
    overrides = {}
    for item in sets:
        key, _, value = item.partition("=")
        if key not in kinds:
            raise SystemExit(f"model {name!r}: {key!r} is not a MANNConfig field")
        kind = kinds[key] if isinstance(kinds[key], str) else kinds[key].__name__
        overrides[key] = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true"),
                          "str": str}[kind](value)
    return name, path, overrides


@torch.no_grad()
def per_episode(model, sampler, *, ways: int, presentations: int, episodes: int, seed: int,
                batch: int = 50) -> torch.Tensor:
    """(episodes, presentations) accuracy of each episode at each presentation."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out, done = [], 0
    while done < episodes:
        n = min(batch, episodes - done)
        ep = sampler.sample(n, ways, presentations, model.cfg.label_space, gen)
        hit = (model(ep.x, ep.y_prev).argmax(-1) == ep.y).float()
        acc = torch.zeros(n, presentations + 1)
        for i in range(1, presentations + 1):
            acc[:, i] = (hit * (ep.instance == i)).sum(1) / (ep.instance == i).sum(1)
        out.append(acc[:, 1:])
        done += n
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=CHECKPOINT[,FIELD=VALUE...]; the first is the reference")
    ap.add_argument("--split", default="val", choices=["val", "eval"])
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--presentations", type=int, default=10)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="", help="also write the per-model figures here")
    ap.add_argument("--cache", default="runs/neural_paired_cache",
                    help="folder of per-episode results, reused for an unchanged checkpoint, "
                         "overrides and episodes ('': off)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    specs = [parse_spec(s) for s in args.models]
    samplers: dict[tuple, object] = {}
    acc: dict[str, torch.Tensor] = {}
    reused: list[str] = []
    for name, path, overrides in specs:
        model, blob = load_checkpoint(path, **overrides)
        mcfg = config_from_dict(blob["model_config"])
        tcfg = TrainConfig(model=mcfg, task=blob["config"]["task"], data=blob["config"]["data"])
        key = (tcfg.task, tcfg.data, mcfg.image_size)
        if key not in samplers:  # one sampler per data set: the same episodes for every model
            samplers[key] = make_sampler(tcfg, args.split)
        stat = Path(path).stat()
        tag = hashlib.sha1(json.dumps([str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size,
                                       sorted(overrides.items()), args.split, args.ways,
                                       args.presentations, args.episodes, args.seed]).encode())
        cached = Path(args.cache) / f"{tag.hexdigest()[:16]}.pt" if args.cache else None
        if cached and cached.exists():  # the same checkpoint file on the same episodes
            acc[name] = torch.load(cached, weights_only=True)
            reused.append(name)
        else:
            acc[name] = per_episode(model, samplers[key], ways=args.ways,
                                    presentations=args.presentations, episodes=args.episodes,
                                    seed=args.seed)
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                torch.save(acc[name], cached)
        print(f"{name}: mean 2nd..{_nth(args.presentations)} "
              f"{100 * acc[name][:, 1:].mean():.2f}%  ({time.time() - t0:.0f} s)", flush=True)
    ref = specs[0][0]
    cols = [_nth(i) for i in (1, 2, 3, 5, 10) if i <= args.presentations]
    idx = [i - 1 for i in (1, 2, 3, 5, 10) if i <= args.presentations]
    rows, report = [], {}
    for name, a in acc.items():
        mean = a[:, 1:].mean(1)  # per episode, 2nd..last
        diff = mean - acc[ref][:, 1:].mean(1)
        se = diff.std(unbiased=True) / len(diff) ** 0.5
        rows.append([name, *[f"{100 * a[:, i].mean():.2f}" for i in idx], f"{100 * mean.mean():.2f}",
                     "reference" if name == ref else f"{100 * diff.mean():+.2f} +- {100 * se:.2f}"])
        report[name] = {"by_presentation": [round(v, 5) for v in a.mean(0).tolist()],
                        "mean_2_on": round(mean.mean().item(), 5),
                        "paired_diff": round(diff.mean().item(), 5), "paired_se": round(se.item(), 5)}
    print()
    print(f"{args.ways}-way, {args.presentations} presentations, {args.episodes} episodes "
          f"(seed {args.seed}) on the {'validation characters' if args.split == 'val' else 'held-out alphabets'}; "
          "accuracy % by presentation; paired difference from the first model on the mean, +- SE:")
    print()
    print(table(["model", *cols, f"mean 2nd..{_nth(args.presentations)}", "paired difference"], rows))
    print()
    print(f"Measured by `python bench/neural_paired.py {' '.join(map(shlex.quote, args.models))} "
          f"--split {args.split} --ways {args.ways} --episodes {args.episodes} --seed {args.seed}` "
          f"on {platform.machine()} CPU, {args.threads} thread(s), in {time.time() - t0:.0f} s"
          + (f" ({', '.join(reused)} reused from an earlier run, {args.cache})." if reused else "."))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
