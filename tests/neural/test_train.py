"""Training: the synthetic binding task is learnt, checkpoints round-trip, the CLI trains."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from mindstore.neural.cli import register, train_command
from mindstore.neural.data import SyntheticEpisodes
from mindstore.neural.evaluate import accuracy_by_instance, prototype_accuracy
from mindstore.neural.model import MANNConfig, build_model, config_from_dict
from mindstore.neural.train import TrainConfig, load_checkpoint, make_sampler, pretrain_encoder, train

from .conftest import DATA, needs_data

SMALL = dict(hidden=64, slots=32, width=32, read_heads=2, topk=4, label_space=5, image_size=6, init="random",
             encoder="mlp", embed=32)


def synthetic(tmp_path, steps: int, **model) -> TrainConfig:
    return TrainConfig(model=MANNConfig(**{**SMALL, **model}), task="synthetic", steps=steps,
                       batch=16, classes=3, presentations=4, lr=3e-3, lr_min=3e-3,
                       eval_every=steps, eval_episodes=200, out=str(tmp_path / "m.pt"))


@pytest.mark.slow
def test_sparse_mann_learns_synthetic_binding(tmp_path):
    """Fresh random patterns every episode, 3 of 5 labels: only binding in memory gets the 2nd
    and later presentations right; guessing among the labels seen so far stays near 50%."""
    torch.manual_seed(0)
    metrics = train(synthetic(tmp_path, steps=600), progress=False)
    assert [row["step"] for row in metrics["history"]] == [0, 600]
    assert metrics["kept_step"] == 600  # better on validation than the random start
    model, _ = load_checkpoint(tmp_path / "m.pt")
    acc = accuracy_by_instance(model, SyntheticEpisodes(size=6), ways=3, presentations=4,
                               episodes=400, seed=7)
    assert acc[1] < 0.4  # the first sight of a class cannot be known
    assert (acc[2] + acc[3] + acc[4]) / 3 > 0.8 and acc[4] > 0.8, (acc, metrics["history"])


def test_checkpoint_round_trip_weights_only(tmp_path):
    cfg = synthetic(tmp_path, steps=2, memory="dense", controller="gru")
    train(cfg, progress=False)
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    assert blob["model_config"]["controller"] == "gru" and blob["config"]["steps"] == 2
    model, _ = load_checkpoint(tmp_path / "m.pt")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, blob["state_dict"][k])
    ep = SyntheticEpisodes(size=6).sample(2, 3, 4, 5, torch.Generator().manual_seed(0))
    assert model(ep.x, ep.y_prev).shape == (2, 12, 5)


def test_zero_steps_validates_and_saves_the_start(tmp_path):
    """--steps 0 (pretrain or take an encoder, score it, keep it) once crashed after pretraining,
    in the learning-rate schedule, and saved nothing."""
    cfg = synthetic(tmp_path, steps=0)
    cfg.eval_every = 1
    metrics = train(cfg, progress=False)
    assert [row["step"] for row in metrics["history"]] == [0] and metrics["kept_step"] == 0
    _, blob = load_checkpoint(tmp_path / "m.pt")
    assert blob["metrics"]["kept_step"] == 0


def test_cli_train_then_evaluate_on_synthetic_task(tmp_path):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = tmp_path / "cli.pt"
    res = runner.invoke(app, ["train", "--task", "synthetic", "--steps", "3", "--classes", "3",
                              "--presentations", "2", "--label-space", "5", "--image-size", "6",
                              "--encoder", "mlp", "--hidden", "16", "--slots", "8", "--width",
                              "8", "--init", "random", "--eval-every", "3", "--eval-episodes",
                              "4", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["steps"] == 3
    model, blob = load_checkpoint(out)
    assert blob["model_config"]["memory"] == "sparse"
    res = runner.invoke(app, ["evaluate", str(out), "--ways", "3", "--presentations", "2",
                              "--episodes", "4", "--json", "--device", "cpu",
                              "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.output.splitlines()[0])["accuracy"]) == {"1", "2"}
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cli_help_lists_the_options():
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["train", "--help"])
    assert res.exit_code == 0
    for opt in ("--model", "--controller", "--memory", "--steps", "--data", "--out", "--seed"):
        assert opt in res.output


def test_cli_train_options_are_the_config_fields_and_map_onto_them():
    from mindstore.neural.cli import TRAIN_HELP, train_config

    fields = {f.name: f for cls in (MANNConfig, TrainConfig) for f in dataclasses.fields(cls)}
    assert set(TRAIN_HELP) <= set(fields)
    params = inspect.signature(train_command).parameters
    assert list(params) == [*TRAIN_HELP, "log", "progress"]
    assert params["hidden"].default.default == MANNConfig.hidden
    assert params["lr"].default.default == TrainConfig.lr
    options = {name: p.default.default for name, p in params.items() if name in TRAIN_HELP}
    assert train_config(options) == TrainConfig(out="runs/mann.pt")
    options |= {"ways": [5, 20], "parts": ["controller"], "hidden": 32, "lr": 1e-3,
                "data": Path("/d"), "encoder_from": [Path("a.pt")]}
    cfg = train_config(options)
    assert (cfg.ways, cfg.parts, cfg.model.hidden, cfg.lr, cfg.data, cfg.encoder_from) == (
        (5, 20), ("controller",), 32, 1e-3, "/d", "a.pt")
    assert train_config(options | {"encoder_from": [Path("a.pt"), Path("b.pt")]}).encoder_from == ["a.pt", "b.pt"]


def tiny_cli_run(out) -> tuple[typer.Typer, list[str]]:
    """The `mindstore train` app and the arguments of a seconds-long pretraining run into ``out``."""
    app = typer.Typer()
    register(app)
    return app, ["train", "--data", str(DATA), "--steps", "0", "--channels", "8", "--image-size",
                 "12", "--eval-episodes", "4", "--pretrain-ways", "5", "--out", str(out),
                 "--no-progress"]


@needs_data
def test_cli_pretraining_options_reach_the_run_and_bad_ones_are_refused(tmp_path):
    out = tmp_path / "enc.pt"
    app, base = tiny_cli_run(out)
    res = CliRunner().invoke(app, base + ["--pretrain-steps", "2", "--pretrain-shots", "0"])
    assert res.exit_code != 0 and "1 shot" in res.output and not out.exists()
    res = CliRunner().invoke(app, base + ["--pretrain-steps", "2", "--pretrain-distort", "-1"])
    assert res.exit_code != 0 and "--pretrain-distort" in res.output and not out.exists()
    res = CliRunner().invoke(app, base + ["--pretrain-steps", "2", "--pretrain-shots", "3",
                                          "--pretrain-queries", "2", "--pretrain-lr", "5e-4",
                                          "--pretrain-distort", "1.5", "--reflect"])
    assert res.exit_code == 0, res.output
    saved = torch.load(out, weights_only=True)["config"]
    assert (saved["pretrain_shots"], saved["pretrain_queries"], saved["pretrain_lr"],
            saved["pretrain_distort"], saved["reflect"]) == (3, 2, 5e-4, 1.5, True)


@needs_data
def test_reflect_doubles_the_training_classes_and_leaves_validation_alone():
    plain, mirrored = (TrainConfig(data=str(DATA), reflect=r) for r in (False, True))
    assert make_sampler(mirrored, "train").num_classes == 2 * make_sampler(plain, "train").num_classes
    assert make_sampler(plain, "train").num_classes == 4 * 149
    for split in ("val", "eval"):  # judged on the characters as drawn, never on mirror images
        assert make_sampler(mirrored, split).num_classes == make_sampler(plain, split).num_classes


@needs_data
def test_prototypical_pretraining_improves_one_shot_accuracy_of_the_encoder(tmp_path):
    """Phase 1 trains the encoder alone; nearest-prototype 5-way 1-shot accuracy on validation
    characters (never trained on) must rise well above the random encoder's."""
    torch.manual_seed(0)
    cfg = TrainConfig(model=MANNConfig(channels=16), data=str(DATA), pretrain_steps=150,
                      pretrain_ways=20, eval_every=75, eval_episodes=30)
    train_eps, val_eps = make_sampler(cfg, "train"), make_sampler(cfg, "val")
    encoder = build_model(cfg.model).encoder
    before = prototype_accuracy(encoder, val_eps, episodes=120, seed=5)
    history = pretrain_encoder(cfg, encoder, train_eps, val_eps, torch.Generator().manual_seed(0),
                               torch.device("cpu"), progress=False)
    after = prototype_accuracy(encoder, val_eps, episodes=120, seed=5)
    assert [row["pretrain_step"] for row in history] == [75, 150]
    assert history[1]["loss"] < history[0]["loss"]
    assert after > before + 0.05, (before, after)


def test_mann_trains_on_a_frozen_encoder_taken_from_another_checkpoint(tmp_path):
    first = synthetic(tmp_path, steps=3)
    train(first, progress=False)
    donor, _ = load_checkpoint(tmp_path / "m.pt")
    second = synthetic(tmp_path, steps=5)
    second.out, second.encoder_from, second.seed = str(tmp_path / "b.pt"), str(tmp_path / "m.pt"), 1
    torch.manual_seed(1)
    init = build_model(second.model).state_dict()  # the same seed as train(): the same init
    train(second, progress=False)
    model, _ = load_checkpoint(tmp_path / "b.pt")
    for k, v in model.encoder.state_dict().items():  # weights and BatchNorm statistics
        torch.testing.assert_close(v, donor.encoder.state_dict()[k])
    assert not torch.allclose(model.encoder.net[1].weight, init["encoder.net.1.weight"])
    second.model = MANNConfig(**{**SMALL, "embed": 16})
    with pytest.raises(ValueError, match="embed"):
        train(second, progress=False)


def test_checkpoints_from_before_the_encoder_options_still_load(tmp_path):
    """A checkpoint whose config predates norm/standardize/channels loads as it was trained."""
    cfg = TrainConfig(model=MANNConfig(channels=16, norm="batch", standardize=False),
                      task="omniglot", out=str(tmp_path / "old.pt"))
    old = build_model(cfg.model)
    blob = {"config": {}, "model_config": {k: v for k, v in vars(cfg.model).items()
                                           if k not in ("channels", "norm", "standardize")},
            "state_dict": old.state_dict(), "metrics": {}}
    torch.save(blob, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert (loaded.cfg.channels, loaded.cfg.norm, loaded.cfg.standardize) == (16, "batch", False)
    for k, v in old.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


@needs_data
def test_cli_encoder_depth_and_width_reach_the_model_and_bad_depths_are_refused(tmp_path):
    out = tmp_path / "deep.pt"
    app, base = tiny_cli_run(out)
    base += ["--pretrain-steps", "1"]
    res = CliRunner().invoke(app, base + ["--blocks", "4"])  # 12 -> 6 -> 3 -> 1 -> 0
    said = " ".join(res.output.replace("│", " ").split())  # the message as one line
    assert res.exit_code != 0 and "use 1 to 3 blocks" in said and not out.exists()
    res = CliRunner().invoke(app, base + ["--blocks", "2", "--embed", "48", "--width", "68"])
    assert res.exit_code == 0, res.output
    model, blob = load_checkpoint(out)
    assert (blob["model_config"]["blocks"], blob["model_config"]["embed"]) == (2, 48)
    convs = [m for m in model.encoder.net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 and model.encoder(torch.zeros(3, 1, 12, 12)).shape == (3, 48)
    # a MANN can only take an encoder of the same shape
    cfg = TrainConfig(model=MANNConfig(channels=8, image_size=12, blocks=3, embed=48, width=68),
                      data=str(DATA), steps=0, encoder_from=str(out), eval_episodes=4,
                      out=str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="blocks"):
        train(cfg, progress=False)


@needs_data
def test_cli_prototype_init_reaches_the_checkpoint_and_unknown_inits_are_refused(tmp_path):
    out = tmp_path / "proto.pt"
    app, base = tiny_cli_run(out)
    base += ["--pretrain-steps", "1"]
    res = CliRunner().invoke(app, base + ["--init", "prototypes"])
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0 and "choose matching, prototype or random" in said
    assert not out.exists()
    res = CliRunner().invoke(app, base + ["--init", "prototype"])
    assert res.exit_code == 0, res.output
    model, blob = load_checkpoint(out)
    assert blob["model_config"]["init"] == "prototype"
    L = model.cfg.label_space  # the gate reads the agreement units: alpha_t = 40 (a - 0.4)
    assert torch.all(model.write_head.alpha.weight[0, :L] > 39)
    assert model.write_head.alpha.bias.item() == pytest.approx(-16.0)


def test_checkpoints_from_before_the_blocks_option_load_with_three_blocks(tmp_path):
    cfg = MANNConfig(channels=8, image_size=12)
    old = build_model(cfg)
    blob = {"config": {}, "model_config": {k: v for k, v in vars(cfg).items() if k != "blocks"},
            "state_dict": old.state_dict(), "metrics": {}}
    torch.save(blob, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.cfg.blocks == 3
    x = torch.rand(2, 1, 12, 12)
    torch.testing.assert_close(loaded.encoder.eval()(x), old.encoder.eval()(x))


@needs_data
def test_pretraining_distorts_its_drawings_by_the_configured_strength(monkeypatch):
    import mindstore.neural.train as train_mod

    seen = []
    real = train_mod.augment
    monkeypatch.setattr(train_mod, "augment",
                        lambda x, gen, **kw: seen.append(kw.get("strength")) or real(x, gen, **kw))
    cfg = TrainConfig(model=MANNConfig(channels=8, image_size=12), data=str(DATA), pretrain_steps=2,
                      pretrain_ways=5, eval_every=10, eval_episodes=2, pretrain_distort=1.7)
    encoder = build_model(cfg.model).encoder
    pretrain_encoder(cfg, encoder, make_sampler(cfg, "train"), make_sampler(cfg, "val"),
                     torch.Generator().manual_seed(0), torch.device("cpu"), progress=False)
    assert seen == [1.7, 1.7]


@needs_data
def test_cli_euclidean_score_and_shift_averaging_reach_the_checkpoint_and_unknown_values_are_refused(tmp_path):
    out = tmp_path / "euclid.pt"
    app, base = tiny_cli_run(out)
    base += ["--pretrain-steps", "1", "--init", "prototype"]
    res = CliRunner().invoke(app, base + ["--score", "euclid"])
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0 and "euclidean" in said and not out.exists()
    res = CliRunner().invoke(app, base + ["--score", "euclidean", "--shift-average", "--shift-views", "4"])
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0 and "or 9" in said and not out.exists()
    res = CliRunner().invoke(app, base + ["--score", "euclidean", "--shift-average", "--shift-views", "9"])
    assert res.exit_code == 0, res.output
    model, blob = load_checkpoint(out)
    assert blob["model_config"]["score"] == "euclidean" and model.write_head.count
    assert blob["model_config"]["shift_average"] and model.encoder.shift_average
    assert blob["model_config"]["shift_views"] == 9 and model.encoder.shift_views == 9
    assert model.read_head.beta.bias[0].item() == pytest.approx(10.0)  # EUCLIDEAN_BETA, not cosine's 60


@needs_data
def test_cli_ensemble_takes_one_checkpoint_per_member_and_pretrains_each_member_alone(tmp_path):
    app, base = tiny_cli_run(tmp_path / "unused.pt")
    base = base[:base.index("--out")] + ["--pretrain-steps", "2", "--embed", "8", "--width", "40"]
    singles = []
    for seed in (0, 1):
        out = tmp_path / f"single{seed}.pt"
        res = CliRunner().invoke(app, base + ["--seed", str(seed), "--out", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        singles.append(out)
    ens = tmp_path / "ens.pt"
    two = ["--encoders", "2", "--embed", "16", "--out", str(ens), "--no-progress"]
    res = CliRunner().invoke(app, base + two + ["--encoder-from", str(singles[0])])
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0 and "one checkpoint per encoder" in said and not ens.exists()
    res = CliRunner().invoke(app, base + ["--encoders", "2", "--embed", "8", "--out", str(ens),
                                          "--no-progress", "--encoder-from", str(singles[0]),
                                          "--encoder-from", str(singles[1])])
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0 and "differs in embed" in said and not ens.exists()
    res = CliRunner().invoke(app, base + two + ["--encoder-from", str(singles[0]),
                                                "--encoder-from", str(singles[1])])
    assert res.exit_code == 0, res.output
    model, blob = load_checkpoint(ens)
    assert blob["model_config"]["encoders"] == 2
    assert blob["config"]["encoder_from"] == [str(p) for p in singles]
    for member, single in zip(model.encoder.members, singles):
        theirs = torch.load(single, weights_only=True)["state_dict"]
        for k, v in member.state_dict().items():
            torch.testing.assert_close(v, theirs["encoder." + k])
    # pretrained in one run: each member by its own prototypical loss, in turn
    res = CliRunner().invoke(app, base + ["--encoders", "2", "--embed", "16", "--out",
                                          str(tmp_path / "joint.pt"), "--no-progress"])
    assert res.exit_code == 0, res.output
    model, blob = load_checkpoint(tmp_path / "joint.pt")
    assert len(blob["metrics"]["pretrain"]) == 2  # one validation row per member (2 steps each)
    torch.manual_seed(0)
    fresh = build_model(config_from_dict(blob["model_config"]))  # the run's init (seed 0)
    torch.testing.assert_close(model.out.weight, fresh.out.weight)  # --steps 0: heads untouched
    for trained, start in zip(model.encoder.members, fresh.encoder.members):
        assert not torch.allclose(trained.net[0].weight, start.net[0].weight)


def test_an_ensemble_encoder_is_taken_whole_from_one_checkpoint_of_the_same_ensemble(tmp_path):
    from mindstore.neural.train import save_checkpoint, take_encoder

    cfg = MANNConfig(channels=8, embed=16, width=37, label_space=20, image_size=20, encoders=2)
    torch.manual_seed(0)
    donor = build_model(cfg)
    save_checkpoint(tmp_path / "ens.pt", TrainConfig(model=cfg), donor, {})
    torch.manual_seed(1)
    model = build_model(cfg)
    take_encoder(model, str(tmp_path / "ens.pt"))
    for k, v in model.encoder.state_dict().items():
        torch.testing.assert_close(v, donor.encoder.state_dict()[k])
    other = build_model(MANNConfig(channels=16, embed=16, width=37, label_space=20, image_size=20, encoders=2))
    with pytest.raises(ValueError, match="checkpoint"):
        take_encoder(other, str(tmp_path / "ens.pt"))  # another ensemble: one checkpoint per member needed
