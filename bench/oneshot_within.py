"""Lake et al.'s 20-way within-alphabet one-shot runs, through ``OneShotLearner`` (issue 25).

Each run draws 20 characters of one held-out alphabet (Sanskrit or Tagalog: 2 of the 8
background alphabets, never trained on; the reviewers run the same protocol on Omniglot's 20
evaluation alphabets), binds one drawing of each (its own space of an in-memory SQLite store)
and recalls another drawing of each: error = the share recalled wrong. Every checkpoint sees the
same runs, so differences are paired (mean over runs +- standard error).

    python bench/oneshot_within.py [--checkpoint a.pt --checkpoint b.pt] [--runs 100] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from mindstore import MindStore  # noqa: E402
from mindstore.neural import DEFAULT_CHECKPOINT  # noqa: E402
from mindstore.neural.data import load_omniglot  # noqa: E402
from mindstore.neural.learner import OneShotLearner  # noqa: E402
from mindstore.neural.train import load_checkpoint  # noqa: E402


def runs(held, n: int, seed: int) -> list[tuple[list[int], list[int], list[int]]]:
    """n runs, alternating alphabets: (characters, bound drawing, queried drawing) per run."""
    gen = torch.Generator().manual_seed(seed)
    by_alpha: dict[str, list[int]] = {}
    for i, a in enumerate(held.alphabets):
        by_alpha.setdefault(a, []).append(i)
    alphas = sorted(a for a, chars in by_alpha.items() if len(chars) >= 20)
    out = []
    for r in range(n):
        chars = by_alpha[alphas[r % len(alphas)]]
        pick = [chars[int(i)] for i in torch.randperm(len(chars), generator=gen)[:20]]
        pair = [torch.randperm(held.images.shape[1], generator=gen)[:2].tolist() for _ in pick]
        out.append((pick, [p[0] for p in pair], [p[1] for p in pair]))
    return out


def errors(checkpoint: str, held, plan) -> torch.Tensor:
    """Per run, the share of the 20 queries recalled wrong."""
    import tempfile

    out = []
    with tempfile.TemporaryDirectory() as tmp, MindStore(f"sqlite:///{tmp}/within.db") as store:
        learner = OneShotLearner.load(checkpoint, store=store, space="within")
        for r, (chars, bound, queried) in enumerate(plan):
            labels = [f"{r}:{c}" for c in chars]
            ids = learner.bind([held.images[c, d].numpy() for c, d in zip(chars, bound)], labels)
            got = learner.recall([held.images[c, d].numpy() for c, d in zip(chars, queried)])
            out.append(sum(p.label != want for p, want in zip(got, labels)) / len(labels))
            store.delete_many(ids)  # the next run starts from an empty memory
    return torch.tensor(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", help="repeat to compare; default: the packaged one")
    ap.add_argument("--data", default=None, help="Omniglot zips or folder (default: ../shared/data/omniglot)")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/neural.md alone")
    args = ap.parse_args()
    checkpoints = args.checkpoint or [str(DEFAULT_CHECKPOINT)]
    size = load_checkpoint(checkpoints[0])[0].cfg.image_size
    held = load_omniglot(args.data, size=size).split()["eval"]
    plan = runs(held, args.runs, args.seed)
    first = None
    body = []
    for ck in checkpoints:
        err = errors(ck, held, plan)
        diff = "-" if first is None else f"{100 * (err - first).mean():+.2f} +- {100 * (err - first).std() / len(err) ** 0.5:.2f}"
        first = err if first is None else first
        name = Path(ck).resolve()
        name = name.relative_to(Path.cwd()) if name.is_relative_to(Path.cwd()) else name
        body.append([str(name), f"{100 * err.mean():.2f} +- {100 * err.std() / len(err) ** 0.5:.2f}", diff])
        print(body[-1], flush=True)
    text = (f"{args.runs} runs of 20 characters within one held-out alphabet (Sanskrit, Tagalog in turn), one "
            "drawing bound and another recalled per character, through `OneShotLearner`; error %:\n\n"
            + table(["checkpoint", "error % (+- s.e.)", "vs first (paired)"], body))
    print(text)
    if not args.no_write:
        cmd = "python bench/oneshot_within.py " + " ".join(f"--checkpoint {c}" for c in args.checkpoint or [])
        write_section("oneshot_within", "20-way within-alphabet runs through OneShotLearner", cmd.strip(), text,
                      doc=Path(__file__).resolve().parent.parent / "docs" / "neural.md", level=4)


if __name__ == "__main__":
    main()
