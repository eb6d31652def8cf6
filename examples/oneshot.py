"""Rapid task adaptation with a memory that lasts: the packaged MANN (trained conv encoders,
hand-set prototype-memory heads) binds classes it has never seen from one example each, into a
SQLite store, and recalls them after the store is reopened.

    python examples/oneshot.py --out oneshot.png     # the held-out alphabets; plot saved there
    python examples/oneshot.py --data path/to/omniglot --classes 5 --runs 20

Per run, ``--classes`` classes never seen in training (Sanskrit and Tagalog characters: 2 of the
8 background alphabets in the local zips, kept out of training) get a fresh space. Each drawing
is shown in turn: the learner first recalls it (1st presentation: nothing is bound yet), then
binds it to its label. Accuracy by presentation is printed beside the LSTM baseline, and plotted
into ``--out`` when given. Then the store is closed, reopened, and unseen drawings recalled.
Data: ``--data``, else $MINDSTORE_DATA, else ../shared/data/omniglot beside the repository, else
the user cache (downloaded there on first use, ``mindstore.neural.data.download()``). Offline
without any of these it says so and runs a synthetic task instead; a ``--data`` without Omniglot
in it is an error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from mindstore import Config, DataNotFoundError, MindStore
from mindstore.neural import DEFAULT_CHECKPOINT, OneShotLearner, evaluate
from mindstore.neural.data import EVAL_ALPHABETS, OmniglotEpisodes, SyntheticEpisodes, load_omniglot
from mindstore.neural.train import load_checkpoint

PRESENTATIONS = 10
LATER = 5  # drawings recalled after reopening, never shown before


def classes_to_learn(data: str | None, size: int):
    """(images (C, drawings, S, S) uint8, names, episode sampler, what they are)."""
    try:
        # a --data given must hold Omniglot; the default place is filled by a download if empty
        ev = load_omniglot(data, size=size, allow_download=data is None).split()["eval"]
    except DataNotFoundError as e:
        if data is not None:
            sys.exit(f"error: {e}")
        print(f"{e}.\nFalling back to the synthetic task: random binary patterns, noisy copies of "
              "one per class (accuracies are not comparable to Omniglot's).\n")
        synth = SyntheticEpisodes(size=size)
        imgs = synth.drawings(60, PRESENTATIONS + LATER, torch.Generator().manual_seed(0))
        return imgs, [f"pattern-{i}" for i in range(60)], synth, "synthetic patterns"
    return ev.images, ev.characters, OmniglotEpisodes(ev, rotate=False), f"{'/'.join(EVAL_ALPHABETS)} characters"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="Omniglot zip or folder")
    ap.add_argument("--db", default=None, help="store URL (default: a SQLite file in a temporary folder)")
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--baseline", default=str(DEFAULT_CHECKPOINT.with_name("lstm_baseline.pt")),
                    help="LSTM baseline checkpoint (default: the packaged one)")
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20, help="independent sets of new classes, averaged")
    ap.add_argument("--out", "--plot", dest="out", default=None, metavar="PNG",
                    help="write the accuracy-by-presentation plot here (default: no plot)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    tmp = tempfile.TemporaryDirectory(prefix="mindstore-oneshot-")
    url = args.db or f"sqlite:///{tmp.name}/oneshot.db"
    config = Config(index_dir=Path(tmp.name) / "index")
    model, _ = load_checkpoint(args.checkpoint)
    imgs, names, sampler, what = classes_to_learn(args.data, model.cfg.image_size)
    print(f"store: {url}\nclasses: {args.runs} runs x {args.classes} {what}, never seen in training\n")

    gen = torch.Generator().manual_seed(0)
    right = torch.zeros(PRESENTATIONS + 1)
    runs: list[tuple[str, torch.Tensor]] = []
    stamp = int(time.time())
    with MindStore(url, config=config) as store:
        for r in range(args.runs):
            space = f"oneshot-{stamp}-{r}"
            learner = OneShotLearner.load(args.checkpoint, store=store, space=space)
            cls = torch.randperm(len(names), generator=gen)[: args.classes]
            labels = [names[c] for c in cls.tolist()]
            for p in range(PRESENTATIONS):  # presentation p + 1 of every class, in a random order
                order = torch.randperm(args.classes, generator=gen)
                x = imgs[cls[order], p]
                preds = learner.recall(x)
                right[p + 1] += sum(pr.label == labels[i] for pr, i in zip(preds, order.tolist()))
                learner.bind(x, [labels[i] for i in order.tolist()])
            runs.append((space, cls))
        before = recall_later(store, args.checkpoint, runs, imgs, names)
    acc = {p: (right[p] / (args.runs * args.classes)).item() for p in range(1, PRESENTATIONS + 1)}

    rows = {"OneShotLearner (MindStore space)": acc}
    rows.update(baselines(args, model, sampler))
    print(f"Accuracy % by presentation ({args.classes}-way, {args.runs} runs):\n")
    print(evaluate.table(rows, evaluate.INSTANCES))
    if args.out:
        evaluate.plot(rows, args.out, f"{args.classes}-way one-shot binding, {what}")
        print(f"\nplot saved to {Path(args.out).resolve()}")
    else:
        print("\n(no plot written: pass --out FILE.png to save one)")

    with MindStore(url, config=config) as store:  # a new store object: only what SQL kept
        after = recall_later(store, args.checkpoint, runs, imgs, names)
    print(f"\n{LATER} unseen drawings of each class, recalled before closing the store: {100 * before:.1f}%; "
          f"after reopening it: {100 * after:.1f}% ({args.runs * args.classes} classes, {url})")
    print(f"done in {time.time() - start:.0f} s")
    tmp.cleanup()


def recall_later(store: MindStore, checkpoint: str, runs, imgs, names) -> float:
    hits = total = 0
    for space, cls in runs:
        learner = OneShotLearner.load(checkpoint, store=store, space=space, create=False)
        preds = learner.recall(imgs[cls, PRESENTATIONS:PRESENTATIONS + LATER].reshape(-1, *imgs.shape[-2:]))
        truth = [names[c] for c in cls.tolist() for _ in range(LATER)]
        hits += sum(p.label == t for p, t in zip(preds, truth))
        total += len(truth)
    return hits / total


def baselines(args: argparse.Namespace, model, sampler) -> dict[str, dict[int, float]]:
    """The same checkpoint inside one training-style episode (in-tensor memory), and the LSTM
    baseline: the trained one if ``--baseline`` exists, else Santoro et al.'s published row."""
    kw = dict(ways=args.classes, presentations=PRESENTATIONS, episodes=100, seed=0)
    rows = {"same MANN, one episode (in-tensor memory)": evaluate.accuracy_by_instance(model, sampler, **kw)}
    if Path(args.baseline).is_file():
        lstm, _ = load_checkpoint(args.baseline)
        rows["LSTM baseline (no external memory)"] = evaluate.accuracy_by_instance(lstm, sampler, **kw)
    else:
        print(f"(no LSTM baseline checkpoint at {args.baseline}: docs/neural.md (Training) gives the "
              f"`mindstore train --model lstm ...` command that trains the packaged one; showing Santoro et al.'s "
              "published LSTM instead)\n")
        rows["LSTM (Santoro)"] = evaluate.SANTORO["LSTM (Santoro)"]  # published; drawn dashed
    return rows


if __name__ == "__main__":
    main()
