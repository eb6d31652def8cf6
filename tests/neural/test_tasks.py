"""Relabel episodes on cached embeddings, the simple readouts, the controller's ablations and its
training (mindstore/neural/tasks.py)."""

from __future__ import annotations

import pytest
import torch

from mindstore.neural.model import MANNConfig, build_model
from mindstore.neural.tasks import (
    EmbeddedEpisodes,
    accuracy,
    embed_characters,
    nearest_neighbour,
    nearest_prototype,
    train_controller,
)
from mindstore.neural.train import TrainConfig, load_checkpoint, train

from .conftest import DATA, needs_data


def clusters(classes: int = 40, drawings: int = 20, dim: int = 16, noise: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Embeddings (classes, drawings, 1, dim): each class a random centre plus small noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 1, 1, dim, generator=g)
    return centres + noise * torch.randn(classes, drawings, 1, dim, generator=g)


def test_relabel_episodes_swap_labels_among_half_the_classes_at_the_midpoint() -> None:
    eps = EmbeddedEpisodes(clusters())
    ep = eps.sample(64, 6, 10, 20, torch.Generator().manual_seed(1), "relabel")
    T = 60
    assert ep.after[:, : T // 2].logical_not().all() and ep.after[:, T // 2:].all()
    assert torch.equal(ep.y_prev[:, 1:], ep.y[:, :-1]) and (ep.y_prev[:, 0] == -1).all()
    for b in range(64):
        before = {int(c): int(y) for c, y, a in zip(ep.cls[b], ep.y[b], ep.after[b]) if not a}
        after = {int(c): int(y) for c, y, a in zip(ep.cls[b], ep.y[b], ep.after[b]) if a}
        moved = [c for c in after if c in before and before[c] != after[c]]
        assert len(moved) == 3  # half of 6
        assert sorted(after[c] for c in moved) == sorted(before[c] for c in moved)  # swapped among themselves
        # a moved class's first step after the change is not scored (its new label is unknown),
        # its later ones are, and so are every step of the classes that kept their label
        for c in moved:
            steps = [t for t in range(T) if ep.cls[b, t] == c and ep.after[b, t]]
            assert not ep.scored[b, steps[0]] and ep.scored[b, steps[1:]].all()
    standard = eps.sample(8, 5, 10, 20, torch.Generator().manual_seed(1))
    assert not standard.after.any() and torch.equal(standard.scored, standard.instance > 1)
    with pytest.raises(ValueError, match="unknown task"):
        eps.sample(2, 5, 10, 20, torch.Generator(), "swap")


def test_readouts_recall_standard_episodes_and_only_recency_follows_a_relabel() -> None:
    eps = EmbeddedEpisodes(clusters())
    g = torch.Generator().manual_seed(2)
    std = eps.sample(50, 5, 10, 20, g)
    for readout in (nearest_prototype, nearest_neighbour):
        assert accuracy(readout(std.e, std.y_prev, 20), std).mean() > 0.99
    rel = eps.sample(50, 5, 10, 20, g, "relabel")
    plain = accuracy(nearest_neighbour(rel.e, rel.y_prev, 20), rel, after_only=True).mean()
    proto = accuracy(nearest_prototype(rel.e, rel.y_prev, 20), rel, after_only=True).mean()
    recent = accuracy(nearest_neighbour(rel.e, rel.y_prev, 20, recency=1.0), rel, after_only=True).mean()
    assert recent > 0.95 and plain < 0.85 and proto < 0.85, (recent, plain, proto)


def test_mann_ablations_change_what_the_controller_contributes() -> None:
    cfg = MANNConfig(hidden=32, slots=16, width=37, read_heads=2, topk=4, label_space=20, image_size=6, encoder="mlp",
                     embed=16, score="euclidean", init="prototype")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.controller.cell.weight_hh, std=0.5)  # make the recurrence matter
    ep = EmbeddedEpisodes(clusters()).sample(4, 5, 6, 20, torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model.unroll(ep.e, ep.y_prev)
        assert not torch.allclose(full, model.unroll(ep.e, ep.y_prev, ablate="reset"))
        assert not torch.allclose(full, model.unroll(ep.e, ep.y_prev, ablate="zero_h"))
        assert torch.allclose(full, model.unroll(ep.e, ep.y_prev))  # deterministic
    with pytest.raises(ValueError, match="unknown ablation"):
        model.unroll(ep.e, ep.y_prev, ablate="drop")


def test_train_controller_trains_every_part_but_the_encoder_and_keeps_the_best_weights() -> None:
    cfg = MANNConfig(hidden=32, slots=16, width=37, read_heads=2, topk=4, label_space=20, image_size=6, encoder="mlp",
                     embed=16, score="euclidean", init="prototype")
    torch.manual_seed(0)
    model = build_model(cfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    emb = clusters(dim=16)
    got = train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), steps=6, batch=4, lr=1e-2,
                           eval_every=3, eval_episodes=8, progress=False)
    assert [r["step"] for r in got["history"]] == [0, 3, 6]
    assert all(0 <= r["relabel_5way"] <= 1 and 0 <= r["standard_5way"] <= 1 for r in got["history"])
    kept = [r for r in got["history"] if r.get("kept")][-1]
    assert got["val_score"] == kept["val_score"] == max(r["val_score"] for r in got["history"])
    now = model.state_dict()
    assert all(torch.equal(now[k], start[k]) for k in start if k.startswith("encoder."))
    if kept["step"]:
        assert not torch.equal(now["controller.cell.weight_ih"], start["controller.cell.weight_ih"])


@needs_data
def test_cli_task_relabel_trains_the_controller_on_a_frozen_encoder(tmp_path) -> None:
    small = dict(channels=8, embed=16, width=37, hidden=32, slots=32, read_heads=2, label_space=20, score="euclidean",
                 init="prototype", image_size=20)
    enc = TrainConfig(model=MANNConfig(**small), data=str(DATA), steps=0, pretrain_steps=2, pretrain_ways=10,
                      eval_every=2, eval_episodes=4, out=str(tmp_path / "enc.pt"))
    train(enc, progress=False)
    donor, _ = load_checkpoint(tmp_path / "enc.pt")
    cfg = TrainConfig(model=MANNConfig(**small), task="relabel", data=str(DATA), steps=4, batch=4, lr=1e-2,
                      eval_every=2, eval_episodes=6, views=1, encoder_from=str(tmp_path / "enc.pt"),
                      out=str(tmp_path / "relabel.pt"))
    metrics = train(cfg, progress=False)
    model, blob = load_checkpoint(tmp_path / "relabel.pt")
    assert [r["step"] for r in metrics["history"]] == [0, 2, 4] and "relabel_5way" in metrics["val"]
    assert blob["config"]["task"] == "relabel"
    for k, v in model.encoder.state_dict().items():
        torch.testing.assert_close(v, donor.encoder.state_dict()[k])
    unfrozen = TrainConfig(**{**cfg.__dict__, "freeze_encoder": False})
    with pytest.raises(ValueError, match="frozen encoder"):
        train(unfrozen, progress=False)


def test_embed_characters_caches_each_drawing_and_its_distortions() -> None:
    torch.manual_seed(0)
    enc = build_model(MANNConfig(channels=8, embed=16, width=37, label_space=20, image_size=20)).encoder
    images = (torch.rand(3, 4, 20, 20) > 0.8).to(torch.uint8) * 255
    emb = embed_characters(enc, images, rotate=True, views=2)
    assert emb.shape == (12, 4, 2, 16)
    with torch.no_grad():
        enc.eval()
        torch.testing.assert_close(emb[0, :, 0], enc(images[0].unsqueeze(1).float() / 255))
    assert not torch.allclose(emb[..., 0, :], emb[..., 1, :])  # the second view is distorted
