"""Relabel episodes on cached embeddings, the simple readouts, the controller's ablations and its
training (mindstore/neural/tasks.py)."""

from __future__ import annotations

import pytest
import torch

from mindstore.neural.model import MANNConfig, build_model
from mindstore.neural.tasks import (
    EmbeddedEpisodes,
    accuracy,
    budget,
    embed_characters,
    nearest_neighbour,
    nearest_prototype,
    train_controller,
    unroll,
)
from mindstore.neural.train import TrainConfig, load_checkpoint, train

from .conftest import DATA, needs_data


def clusters(classes: int = 40, drawings: int = 20, dim: int = 16, noise: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Embeddings (classes, drawings, 1, dim): each class a random centre plus small noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 1, 1, dim, generator=g)
    return centres + noise * torch.randn(classes, drawings, 1, dim, generator=g)


def small_mann(slots: int = 16) -> torch.nn.Module:
    """A prototype-init MANN over 16-d embeddings, seeded."""
    cfg = MANNConfig(hidden=32, slots=slots, width=37, read_heads=2, topk=4, label_space=20, image_size=6,
                     encoder="mlp", embed=16, score="euclidean", init="prototype")
    torch.manual_seed(0)
    return build_model(cfg)


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
    model = small_mann().eval()
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
    model = small_mann()
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


def test_capacity_episodes_are_standard_episodes_with_a_memory_of_ways_plus_one_slots() -> None:
    eps = EmbeddedEpisodes(clusters())
    cap = eps.sample(8, 5, 10, 20, torch.Generator().manual_seed(4), "capacity")
    std = eps.sample(8, 5, 10, 20, torch.Generator().manual_seed(4), "standard")
    assert cap.slots == 6 and std.slots is None and budget("relabel", 20) is None and budget("capacity", 20) == 21
    for a, b in zip((cap.e, cap.y, cap.y_prev, cap.scored, cap.after), (std.e, std.y, std.y_prev, std.scored, std.after)):
        assert torch.equal(a, b)
    assert cap.to("cpu").slots == 6


def test_windowed_readouts_see_only_the_newest_bindings() -> None:
    g = torch.Generator().manual_seed(5)
    e = torch.randn(3, 12, 4, generator=g)
    y = torch.randint(0, 6, (3, 12), generator=g)
    y_prev = torch.cat([torch.full((3, 1), -1), y[:, :-1]], 1)
    for window in (1, 3, 5):
        proto = nearest_prototype(e, y_prev, 6, window=window)
        nn1 = nearest_neighbour(e, y_prev, 6, window=window)
        for b in range(3):
            for t in range(1, 12):
                kept = [j for j in range(t) if j + 1 > t - window]  # drawing j is bound at step j + 1
                d = {j: float((e[b, t] - e[b, j]).pow(2).sum()) for j in kept}
                assert int(nn1[b, t].argmax()) == int(y[b, min(d, key=d.get)])
                for lab in range(6):
                    mine = [j for j in kept if int(y[b, j]) == lab]
                    if not mine:
                        assert proto[b, t, lab] == float("-inf")
                    else:
                        mean = e[b, mine].mean(0)
                        torch.testing.assert_close(proto[b, t, lab], -(e[b, t] - mean).pow(2).sum(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(nearest_prototype(e, y_prev, 6, window=100), nearest_prototype(e, y_prev, 6))


def test_a_memory_cut_to_the_budget_and_the_write_policy_that_keeps_every_class() -> None:
    model = small_mann(slots=64).eval()
    assert model.initial_state(2, slots=6).memory.M.shape == (2, 6, 37)
    with pytest.raises(ValueError, match="too small"):
        model.initial_state(2, slots=3)  # fewer than the top-4 a head reads
    ep = EmbeddedEpisodes(clusters(noise=0.3)).sample(100, 5, 10, 20, torch.Generator().manual_seed(6), "capacity")
    with torch.no_grad():
        pooled = accuracy(unroll(model, ep), ep).mean()  # the LRUA gate pools each class into one slot
        newest = accuracy(nearest_neighbour(ep.e, ep.y_prev, 20, window=ep.slots), ep).mean()
        everything = accuracy(nearest_neighbour(ep.e, ep.y_prev, 20), ep).mean()
        gate_off = accuracy(unroll(model, ep, ablate="zero_h"), ep).mean()  # every write to the least-used slot
    assert everything > 0.95 and pooled > 0.95 and newest < 0.85 and gate_off < 0.85, (everything, pooled, newest, gate_off)


def test_hold_keeps_no_weights_that_cost_standard_episodes_more_than_allowed() -> None:
    model = small_mann()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    emb = clusters(dim=16)
    # a hold no later step can meet (standard accuracy 1 above its start): the start is kept
    got = train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), steps=4, batch=4, lr=1e-2,
                           tasks=("standard", "capacity"), ways=(5, 6), eval_every=2, eval_episodes=6, progress=False,
                           hold=-1.0)
    assert [r.get("held", True) for r in got["history"]] == [True, False, False]
    assert {"standard_5way", "standard_6way", "capacity_5way", "capacity_6way"} <= set(got["history"][0])
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_parts_train_only_the_named_modules() -> None:
    model = small_mann()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    emb = clusters(dim=16)
    moved: dict[str, bool] = {}

    def look(metrics, best) -> None:  # runs after each validation, with the weights as trained so far
        if metrics["steps"]:
            for k, v in model.state_dict().items():
                moved[k.split(".")[0]] = moved.get(k.split(".")[0], False) or not torch.equal(v, start[k])

    kw = dict(steps=2, batch=4, lr=1e-2, tasks=("relabel",), eval_every=100, eval_episodes=4, progress=False)
    train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), parts=("write_head", "out"),
                     on_validate=look, **kw)
    assert moved == {"encoder": False, "controller": False, "read_head": False, "write_head": True, "out": True}
    with pytest.raises(ValueError, match="cannot train encoder"):
        train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), parts=("encoder",), **kw)
    with pytest.raises(ValueError, match="cannot train heads"):
        train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), parts=("heads",), **kw)


def test_keep_agreement_trains_the_other_controller_units_only() -> None:
    model = small_mann()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    rows = model.agreement_rows()
    emb = clusters(dim=16)
    seen: dict[str, tuple[bool, bool]] = {}

    def look(metrics, best) -> None:
        if metrics["steps"]:
            for name, r in rows.items():
                now, was = model.state_dict()[name], start[name]
                other = torch.ones(len(was), dtype=torch.bool).index_fill(0, r, False)
                seen[name] = (torch.equal(now[r], was[r]), torch.equal(now[other], was[other]))

    train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), steps=2, batch=4, lr=1e-2,
                     tasks=("relabel",), eval_every=100, eval_episodes=4, progress=False, parts=("controller",),
                     keep_agreement=True, on_validate=look)
    assert len(rows) == 4 and len(rows["controller.cell.weight_ih"]) == 4 * 20  # LSTM: 4 gates x label_space
    assert seen and all(kept and not moved for kept, moved in seen.values()), seen


def test_sgd_moves_weights_by_their_gradient_and_unknown_optimizers_are_refused() -> None:
    model = small_mann()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    emb = clusters(dim=16)
    moved: list[float] = []

    def look(metrics, best) -> None:
        if metrics["steps"]:
            moved.append(max((v - start[k]).abs().max().item() for k, v in model.state_dict().items()))

    kw = dict(steps=2, batch=4, tasks=("relabel",), eval_every=100, eval_episodes=4, progress=False)
    train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), lr=1e-2, optimizer="sgd",
                     on_validate=look, **kw)
    assert moved and moved[0] > 0
    with pytest.raises(ValueError, match="unknown optimizer"):
        train_controller(model, EmbeddedEpisodes(emb[:30]), EmbeddedEpisodes(emb[30:]), optimizer="rmsprop", **kw)
