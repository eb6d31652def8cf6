"""Accuracy by instance (Santoro et al. 2016, Table 1): how often the label is right on the 1st,
2nd, 3rd, ... presentation of a class within an episode, as a markdown table and a PNG plot."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

# Santoro et al. 2016, Table 1: 5 classes, one-hot labels, accuracy % by instance.
SANTORO = {
    "Human": {1: 34.5, 2: 57.3, 3: 70.1, 4: 71.8, 5: 81.4, 10: 92.4},
    "LSTM (Santoro)": {1: 24.4, 2: 49.5, 3: 55.3, 4: 61.0, 5: 63.6, 10: 62.5},
    "MANN LRUA (Santoro)": {1: 36.4, 2: 82.8, 3: 91.0, 4: 92.6, 5: 94.9, 10: 98.1},
}
INSTANCES = (1, 2, 3, 4, 5, 10)


@torch.no_grad()
def accuracy_by_instance(model: nn.Module, sampler, *, ways: int = 5, presentations: int = 10,
                         episodes: int = 1000, batch: int = 50, seed: int = 0,
                         device: torch.device | str = "cpu") -> dict[int, float]:
    """{instance: accuracy} over ``episodes`` fresh episodes (same ``seed``, same episodes)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    label_space = model.cfg.label_space
    if ways > label_space:
        raise ValueError(f"{ways}-way episodes need at least {ways} labels; "
                         f"the model has {label_space}")
    right = torch.zeros(presentations + 1)
    count = torch.zeros(presentations + 1)
    done = 0
    while done < episodes:
        n = min(batch, episodes - done)
        ep = sampler.sample(n, ways, presentations, label_space, gen).to(device)
        hit = (model(ep.x, ep.y_prev).argmax(-1) == ep.y).float().cpu()
        inst = ep.instance.cpu()
        right.index_add_(0, inst.flatten(), hit.flatten())
        count.index_add_(0, inst.flatten(), torch.ones(inst.numel()))
        done += n
    model.train(was_training)
    return {i: (right[i] / count[i]).item() for i in range(1, presentations + 1)}


def prototype_distances(encoder: nn.Module, x: Tensor, shots: int) -> Tensor:
    """Squared distances of queries to class prototypes (Snell et al. 2017).

    ``x`` (W, n, S, S) holds n drawings of each of W classes, the first ``shots`` of them the
    support: c_k = mean of f(support of class k). Returns (W * (n - shots), W), queries of class
    0 first.
    """
    W, n = x.shape[:2]
    z = encoder(x.flatten(0, 1).unsqueeze(1)).view(W, n, -1)
    return torch.cdist(z[:, shots:].flatten(0, 1), z[:, :shots].mean(1)).pow(2)


@torch.no_grad()
def prototype_accuracy(encoder: nn.Module, sampler, *, ways: int = 5, shots: int = 1,
                       queries: int = 5, episodes: int = 300, seed: int = 0,
                       device: torch.device | str = "cpu") -> float:
    """N-way k-shot accuracy of nearest-prototype classification in the encoder's space
    (Snell et al. 2017): a probe of the embedding alone, without memory or controller."""
    was_training = encoder.training
    encoder.eval()
    gen = torch.Generator().manual_seed(seed)
    truth = torch.arange(ways, device=device).repeat_interleave(queries)
    right = 0
    for _ in range(episodes):
        x = sampler.draw(1, ways, shots + queries, gen)[0].float().div(255).to(device)
        right += (prototype_distances(encoder, x, shots).argmin(1) == truth).sum().item()
    encoder.train(was_training)
    return right / (episodes * ways * queries)


def table(rows: dict[str, dict[int, float]], instances: tuple[int, ...] = INSTANCES) -> str:
    """Markdown table, accuracy % by instance; ``rows`` values are fractions or percentages."""
    head = "| model | " + " | ".join(f"{_nth(i)}" for i in instances) + " |"
    lines = [head, "|" + " --- |" * (len(instances) + 1)]
    for name, acc in rows.items():
        cells = []
        for i in instances:
            v = acc.get(i)
            cells.append("" if v is None else f"{v * 100 if v <= 1.0 else v:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: dict[str, dict[int, float]], path: str | Path, title: str) -> Path:
    """Accuracy (%) against instance, one line per model; published figures dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, acc in rows.items():
        xs = sorted(acc)
        ys = [acc[i] * 100 if acc[i] <= 1.0 else acc[i] for i in xs]
        ax.plot(xs, ys, "--" if name in SANTORO else "-o", label=name, markersize=3)
    ax.set_xlabel("instance (presentation of the class within the episode)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _nth(i: int) -> str:
    return f"{i}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(i if i < 20 else i % 10, 'th') }"
