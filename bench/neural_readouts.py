"""Readouts over a checkpoint's frozen encoder, on validation characters: which memory rule would
lift the MANN, before building it into the model.

Each episode is the MANN's own (5 classes x 10 presentations, labels one step late); every
readout sees the embeddings of the drawings before x_t with their labels and predicts x_t's label:

- ``1-NN``: every drawing its own slot, the label of the most similar one (cosine).
- ``4-NN``: the 4 most similar slots vote, weighted by softmax(10 cosine): what the MANN's
  sparse reads (K = 4, key strength about 11) compute at its matching-network start.
- ``pool``: as 1-NN, but a drawing whose label the memory got right is added into the slot it
  read instead of taking a new one, so slots become sums of a class's drawings (an LRUA write
  gated towards the slot just read).
- ``pool-L2``: the same pooling, but each slot keeps how many drawings it holds and is read as
  their mean, nearest by Euclidean distance on the raw embeddings (what a Euclidean score with a
  per-slot write count would give the MANN).
- ``prototype``: the class means of all earlier drawings, nearest by cosine.
- ``prototype-L2``: the same means, nearest by Euclidean distance on the raw embeddings (Snell et
  al. 2017, what the encoder was trained for).

Validation characters only (never the held-out alphabets: choices are made here). At 5-way the
10th presentation is at its ceiling for every rule; ``--ways 20`` tells them apart.

    python bench/neural_readouts.py mindstore/neural/checkpoints/mann_sparse.pt --episodes 400
    python bench/neural_readouts.py mindstore/neural/checkpoints/mann_sparse.pt --ways 20 --episodes 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import table  # noqa: E402

from mindstore.neural.evaluate import _nth  # noqa: E402
from mindstore.neural.model import config_from_dict  # noqa: E402
from mindstore.neural.train import TrainConfig, load_checkpoint, make_sampler  # noqa: E402

READOUTS = ("1-NN", "4-NN", "pool", "pool-L2", "prototype", "prototype-L2")
RAW = ("pool-L2", "prototype-L2")  # rules on the raw embeddings; the others on unit-length ones
SHOWN = (2, 3, 5, 10)


def predict(kind: str, keys: list[np.ndarray], labels: list[int], q: np.ndarray,
            counts: list[int] | None = None) -> tuple[int, int]:
    """(predicted label or -1, index of the slot read most or -1). The ``RAW`` rules get raw
    embeddings, the others unit-length ones; ``pool-L2`` needs each slot's drawing ``counts``."""
    if not keys:
        return -1, -1
    K = np.stack(keys)
    if kind == "pool-L2":
        near = int(np.argmin(((K / np.array(counts)[:, None] - q) ** 2).sum(1)))
        return labels[near], near
    if kind.startswith("prototype"):
        classes = sorted(set(labels))
        lab = np.array(labels)
        means = np.stack([K[lab == c].mean(0) for c in classes])
        if kind == "prototype-L2":
            return classes[int(np.argmin(((means - q) ** 2).sum(1)))], -1
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        return classes[int(np.argmax(means @ q))], -1
    sims = (K / np.linalg.norm(K, axis=1, keepdims=True)) @ q
    top = np.argsort(-sims)[: 4 if kind == "4-NN" else 1]
    weights = np.exp(10 * (sims[top] - sims[top[0]]))
    votes: dict[int, float] = {}
    for j, w in zip(top, weights):
        votes[labels[j]] = votes.get(labels[j], 0.0) + float(w)
    return max(votes, key=votes.get), int(top[0])


def run(checkpoint: str, episodes: int, seed: int, ways: int = 5) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    model, blob = load_checkpoint(checkpoint)
    cfg = TrainConfig(model=config_from_dict(blob["model_config"]))
    val = make_sampler(cfg, "val")
    gen = torch.Generator().manual_seed(seed)
    tally = {k: np.zeros((11, 2)) for k in READOUTS}
    done = 0
    with torch.no_grad():
        while done < episodes:
            n = min(50, episodes - done)
            ep = val.sample(n, ways, 10, cfg.model.label_space, gen)
            B, T = ep.y.shape
            raw = model.encoder(ep.x.flatten(0, 1)).view(B, T, -1)
            unit = F.normalize(raw, dim=-1).numpy()
            raw = raw.numpy()
            y, inst = ep.y.numpy(), ep.instance.numpy()
            for i in range(B):
                for kind in READOUTS:
                    e = raw if kind in RAW else unit
                    keys: list[np.ndarray] = []
                    labels: list[int] = []
                    counts: list[int] = []
                    for t in range(T):
                        pred, slot = predict(kind, keys, labels, e[i, t], counts)
                        tally[kind][inst[i, t]] += (pred == y[i, t], 1)
                        if kind.startswith("pool") and pred == y[i, t] and slot >= 0:
                            keys[slot] = keys[slot] + e[i, t]
                            counts[slot] += 1
                        else:
                            keys.append(e[i, t].copy())
                            labels.append(int(y[i, t]))
                            counts.append(1)
            done += n
    return {k: 100 * v[:, 0] / np.maximum(v[:, 1], 1) for k, v in tally.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--ways", type=int, default=5, help="classes per episode (10 presentations each)")
    args = ap.parse_args()
    acc = run(args.checkpoint, args.episodes, args.seed, args.ways)
    rows = [[k] + [f"{a[n]:.1f}" for n in SHOWN] + [f"{a[2:].mean():.2f}"] for k, a in acc.items()]
    print(table(["readout"] + [_nth(n) for n in SHOWN] + ["mean 2nd-10th"], rows))


if __name__ == "__main__":
    main()
