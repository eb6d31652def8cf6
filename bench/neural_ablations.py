"""Does the MANN's controller do work? The trained MANN against its ablations and the simple
readouts of the same frozen encoder, paired on the same episodes (issue 25).

For each task (``standard``: Santoro's episodes; ``relabel``: half the classes swap labels at
the episode's midpoint; ``capacity``: standard episodes with a memory of ways + 1 slots, see
mindstore/neural/tasks.py) and 5-way / 20-way, on episodes of the
held-out characters (``--split eval``: Sanskrit and Tagalog, 2 of the 8 background alphabets,
never trained on; not Omniglot's 20 evaluation alphabets), the score is the share of knowable
steps labelled right (relabel: the steps after the change). Rows:

- the MANN of ``--checkpoint`` as it is;
- (i) its controller state reset before every step; (ii) its output h_t zeroed; (iii) its
  controller, heads and output re-drawn at random (``--redraws`` seeds, averaged);
- (iv) nearest prototype, (v) 1-NN, (vi) recency-weighted 1-NN (the weight per step of age chosen
  on validation episodes, per task and ways) of the same encoder's embeddings; on capacity
  episodes they get the MANN's budget, the newest ways + 1 drawings, and one more row shows the
  nearest prototype of every drawing seen, which pools each class into one slot (the write
  policy the MANN's head must find; it fits the budget because the labels are given);
- the LSTM baseline of ``--lstm``, when given.

Each row's difference to the MANN is the mean over episodes of the paired difference, +- its
standard error. Embeddings of every drawing are computed once by the checkpoint's encoder and
cached (``--cache``).

    python bench/neural_ablations.py --checkpoint runs/mann_ctrl.pt [--lstm runs/lstm_ctrl.pt] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table, write_section  # noqa: E402

from mindstore.neural import DEFAULT_CHECKPOINT  # noqa: E402
from mindstore.neural.model import build_model  # noqa: E402
from mindstore.neural.tasks import (  # noqa: E402
    EmbeddedEpisodes,
    accuracy,
    budget,
    embedding_cache,
    evaluate_tasks,
    nearest_neighbour,
    nearest_prototype,
)
from mindstore.neural.train import load_checkpoint  # noqa: E402

RECENCY_GRID = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def readout_scores(readout, sampler: EmbeddedEpisodes, *, task: str, ways: int, label_space: int,
                   episodes: int, seed: int = 1234, batch: int = 50) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, episodes, batch):
        ep = sampler.sample(min(batch, episodes - start), ways, 10, label_space, gen, task)
        out.append(accuracy(readout(ep.e, ep.y_prev, label_space), ep, after_only=task == "relabel"))
    return torch.cat(out)


def redrawn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same encoder; controller, heads and output drawn afresh (the init of a random MANN)."""
    from dataclasses import replace

    torch.manual_seed(seed)
    fresh = build_model(replace(model.cfg, init="random"))
    fresh.encoder.load_state_dict(model.encoder.state_dict())
    return fresh.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="the MANN to measure (default: the packaged one)")
    ap.add_argument("--lstm", default=None, help="an LSTM baseline checkpoint trained on the same tasks")
    ap.add_argument("--cache", default="runs/emb_cache.pt", help="embeddings of every drawing by the checkpoint's encoder")
    ap.add_argument("--split", default="eval", choices=("val", "eval"))
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--redraws", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print the table, leave docs/neural.md alone")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model, _ = load_checkpoint(args.checkpoint)
    cache = Path(args.cache)
    if cache.exists():
        emb = torch.load(cache, weights_only=True)
    else:
        emb = embedding_cache(args.checkpoint)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(emb, cache)
    test, val = EmbeddedEpisodes(emb[args.split]), EmbeddedEpisodes(emb["val"])
    L = model.cfg.label_space
    lstm = load_checkpoint(args.lstm)[0] if args.lstm else None
    sections = []
    for task in ("standard", "relabel", "capacity"):
        for ways in (5, 20):
            n = args.episodes if ways == 5 else max(50, args.episodes // 3)
            kw = {"task": task, "ways": ways, "episodes": n}
            M = budget(task, ways)  # the newest M drawings: what a memory of M slots that keeps the newest holds
            base = evaluate_tasks(model, test, **kw)
            rows = {"MANN": base}
            rows["(i) controller state reset every step"] = evaluate_tasks(model, test, ablate="reset", **kw)
            rows["(ii) controller output h_t zeroed"] = evaluate_tasks(model, test, ablate="zero_h", **kw)
            rows[f"(iii) controller and heads re-drawn ({args.redraws} seed{'s' if args.redraws > 1 else ''})"] = torch.stack(
                [evaluate_tasks(redrawn(model, s), test, **kw) for s in range(args.redraws)]).mean(0)
            newest = f", newest {M}" if M else ""
            rows[f"(iv) nearest prototype{newest}"] = readout_scores(
                lambda e, y, L_: nearest_prototype(e, y, L_, window=M), test, label_space=L, **kw)
            rows[f"(v) 1-NN{newest}"] = readout_scores(
                lambda e, y, L_: nearest_neighbour(e, y, L_, window=M), test, label_space=L, **kw)
            tuned = max(RECENCY_GRID, key=lambda r: readout_scores(
                lambda e, y, L_, r=r: nearest_neighbour(e, y, L_, recency=r, window=M), val, label_space=L, task=task,
                ways=ways, episodes=100, seed=99).mean().item())
            rows[f"(vi) recency-weighted 1-NN (weight {tuned}){newest}"] = readout_scores(
                lambda e, y, L_: nearest_neighbour(e, y, L_, recency=tuned, window=M), test, label_space=L, **kw)
            if M:
                rows["nearest prototype of every drawing (one slot per label)"] = readout_scores(
                    nearest_prototype, test, label_space=L, **kw)
            if lstm is not None:
                rows["LSTM baseline"] = evaluate_tasks(lstm, test, **kw)
            body = []
            for name, acc in rows.items():
                d = acc - base
                diff = "-" if name == "MANN" else f"{100 * d.mean():+.1f} +- {100 * d.std() / len(d) ** 0.5:.1f}"
                body.append([name, f"{100 * acc.mean():.1f}", diff])
            what = "after the change" if task == "relabel" else "2nd-10th presentation"
            if M:
                what += f", memory of {M} slots"
            sections.append(f"**{task}, {ways}-way** ({n} episodes; % right, {what}):\n\n"
                            + table(["readout", "accuracy %", "vs MANN (paired, +- s.e.)"], body))
            print(sections[-1], "\n", flush=True)
    if args.no_write:
        return
    cmd = f"python bench/neural_ablations.py --checkpoint {args.checkpoint}" + (f" --lstm {args.lstm}" if args.lstm else "")
    cmd += "".join(f" --{k} {v}" for k, v in (("episodes", args.episodes), ("redraws", args.redraws), ("split", args.split))
                   if v != ap.get_default(k))
    write_section("neural_ablations", "Ablations: what the controller contributes (issue 25)", cmd,
                  "\n\n".join(sections), doc=Path(__file__).resolve().parent.parent / "docs" / "neural.md", level=4)


if __name__ == "__main__":
    main()
