"""Training loop for the MANN and its baselines: read it top to bottom.

Episodes are sampled on the fly (Omniglot training alphabets with rotations as new classes, or
the synthetic task); the loss is the cross-entropy of every step's label prediction. Every
``eval_every`` steps the model is scored on validation episodes (characters kept aside from the
training alphabets) and a checkpoint is written: {"config", "model_config", "state_dict",
"metrics"}, plain tensors and dicts only, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint as load_checkpoint  # re-exported: the name callers know
from .checkpoint import report, save_checkpoint
from .config import MANNConfig as MANNConfig  # re-exported: the name callers know
from .config import TrainConfig as TrainConfig
from .data import OmniglotEpisodes, SyntheticEpisodes, augment, load_omniglot
from .evaluate import accuracy_by_instance, prototype_accuracy, prototype_distances
from .model import build_model, config_from_dict

# Tasks that train the controller and heads on a frozen encoder's cached embeddings.
CONTROLLER_TASKS = {"relabel": ("relabel",), "capacity": ("capacity",),
                    "mixed": ("standard", "relabel", "capacity")}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def take_encoder(model: nn.Module, path: str | Path | list) -> None:
    """Copy the encoder of the checkpoint at ``path`` into ``model`` (same encoder settings).

    An ensemble (``encoders`` n > 1) takes a list of n paths: member i the encoder of the i-th
    checkpoint, each a single encoder of width embed / n with the ensemble's other settings; or
    one path to a checkpoint of the same ensemble, whose encoder is taken whole.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    members = model.encoder.singles()
    if len(paths) == 1 and len(members) > 1:  # one checkpoint holding a whole ensemble like this one
        blob = torch.load(paths[0], map_location="cpu", weights_only=True)
        theirs = config_from_dict(blob["model_config"])
        fields = ("encoder", "image_size", "channels", "blocks", "norm", "standardize", "embed", "encoders")
        differ = [f for f in fields if getattr(theirs, f) != getattr(model.cfg, f)]
        if not differ:
            model.encoder.load_state_dict({k[len("encoder."):]: v for k, v in blob["state_dict"].items() if k.startswith("encoder.")})
            return
    if len(paths) != len(members):
        raise ValueError(f"the model has {len(members)} encoder(s) and {len(paths)} checkpoint(s) "
                         "were given to take them from; give one checkpoint per encoder")
    fields = ("encoder", "image_size", "channels", "blocks", "norm", "standardize", "embed")
    mine = replace(model.cfg, encoders=1, embed=model.cfg.embed // len(members))
    for member, p in zip(members, paths):
        blob = torch.load(p, map_location="cpu", weights_only=True)
        theirs = config_from_dict(blob["model_config"])
        differ = [f for f in fields if getattr(theirs, f) != getattr(mine, f)]
        if theirs.encoders != 1:
            differ.append("encoders (take members from single-encoder checkpoints)")
        if differ:
            raise ValueError(f"the encoder in {p} differs in {', '.join(differ)}; train with "
                             "the same encoder settings")
        prefix = "encoder."
        member.load_state_dict({k[len(prefix):]: v for k, v in blob["state_dict"].items()
                                if k.startswith(prefix)})


def make_sampler(cfg: TrainConfig, split: str):
    """Episode source for ``split`` (train | val | eval) of the configured task."""
    if cfg.task == "synthetic":
        return SyntheticEpisodes(size=cfg.model.image_size)
    if cfg.task != "omniglot" and cfg.task not in CONTROLLER_TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; choose omniglot, synthetic, {', '.join(CONTROLLER_TASKS)}")
    parts = load_omniglot(cfg.data, size=cfg.model.image_size).split()
    if cfg.augment not in ("none", "pretrain", "all"):
        raise ValueError(f"unknown augment {cfg.augment!r}; choose none, pretrain or all")
    return OmniglotEpisodes(parts[split], rotate=split == "train",
                            reflect=cfg.reflect and split == "train",
                            augment=cfg.augment == "all" and split == "train")


def check_pretraining(cfg: TrainConfig) -> None:
    W = cfg.pretrain_ways
    if not cfg.pretrain_distort >= 0:
        raise ValueError(f"--pretrain-distort scales the distortion ranges: 0 (none), 1 (the "
                         f"default) or more; got {cfg.pretrain_distort}")
    if W < 2 or cfg.pretrain_shots < 1 or cfg.pretrain_queries < 1 or not cfg.pretrain_lr > 0:
        raise ValueError(f"encoder pretraining needs at least 2 ways, 1 shot and 1 query per class "
                         f"and a positive learning rate; got {W} ways, {cfg.pretrain_shots} shots, "
                         f"{cfg.pretrain_queries} queries, lr {cfg.pretrain_lr}")


def pretrain_encoder(cfg: TrainConfig, encoder: nn.Module, train_eps: OmniglotEpisodes,
                     val_eps: OmniglotEpisodes, gen: torch.Generator, device: torch.device, *,
                     progress: bool = True, log: Path | None = None) -> list[dict]:
    """Phase 1: prototypical-network training of the encoder alone (Snell et al. 2017).

    Each step draws ``pretrain_ways`` classes with ``shots + queries`` drawings each; the
    prototype of a class is the mean embedding of its shots, c_k = mean_i f(x_ki), and every
    query is classified by softmax(-||f(x) - c_k||^2) over the prototypes.
    """
    from tqdm import tqdm

    W, n = cfg.pretrain_ways, cfg.pretrain_shots + cfg.pretrain_queries
    check_pretraining(cfg)
    opt = torch.optim.Adam(encoder.parameters(), lr=cfg.pretrain_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (
        1 + math.cos(math.pi * min(s, cfg.pretrain_steps) / cfg.pretrain_steps)))
    target = torch.arange(W, device=device).repeat_interleave(cfg.pretrain_queries)
    history, running, start = [], None, time.time()
    bar = tqdm(range(1, cfg.pretrain_steps + 1), disable=not progress, desc="pretrain encoder")
    for step in bar:
        encoder.train()
        x = train_eps.draw(1, W, n, gen)[0].float().div(255)  # (W, n, S, S)
        if cfg.augment != "none":
            x = augment(x, gen, strength=cfg.pretrain_distort)
        loss = F.cross_entropy(-prototype_distances(encoder, x.to(device), cfg.pretrain_shots),
                               target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
        if step % cfg.eval_every == 0 or step == cfg.pretrain_steps:
            acc = prototype_accuracy(encoder, val_eps, ways=cfg.classes, shots=1,
                                     episodes=cfg.eval_episodes * 2, seed=1234, device=device)
            row = {"pretrain_step": step, "loss": round(running, 4),
                   "seconds": round(time.time() - start), "val_1shot": round(acc, 4)}
            history.append(row)
            report(row, bar, log)
    return history


def _setup(cfg: TrainConfig, progress: bool, log: Path | None):  # noqa: ANN202 - the run's parts, see train
    """The episodes, the model with its encoder pretrained or taken (``cfg``), the metrics so
    far, the generator and device, and whether the encoder stays frozen."""
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    # synthetic patterns have no classes to pretrain on; a taken encoder needs none
    pretraining = bool(cfg.pretrain_steps) and not cfg.encoder_from and cfg.task != "synthetic"
    if pretraining:
        check_pretraining(cfg)  # before the data loads
    train_eps, val_eps = make_sampler(cfg, "train"), make_sampler(cfg, "val")
    model = build_model(cfg.model).to(device)
    metrics: dict = {"history": [], "params": sum(p.numel() for p in model.parameters())}
    if cfg.encoder_from:
        take_encoder(model, cfg.encoder_from)
    elif pretraining:
        metrics["pretrain"] = []
        for member in model.encoder.singles():  # an ensemble: each member in turn
            metrics["pretrain"] += pretrain_encoder(cfg, member, train_eps, val_eps, gen,
                                                    device, progress=progress, log=log)
    frozen = cfg.freeze_encoder and bool(cfg.encoder_from or "pretrain" in metrics)
    return train_eps, val_eps, model, metrics, gen, device, frozen


def train(cfg: TrainConfig, *, progress: bool = True, log: Path | None = None) -> dict:
    """Train, evaluate on validation every ``eval_every`` steps, save to ``cfg.out``."""
    from tqdm import tqdm

    train_eps, val_eps, model, metrics, gen, device, frozen = _setup(cfg, progress, log)
    if cfg.task in CONTROLLER_TASKS:
        if not frozen:
            raise ValueError(f"--task {cfg.task} trains the controller on a frozen encoder's embeddings: "
                             "pretrain one or take it with --encoder-from, and keep --freeze-encoder")
        return _train_embedded(cfg, model, metrics, train_eps, val_eps, progress=progress, log=log)
    model.encoder.requires_grad_(not frozen)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    # cosine decay: high learning rate early shortens the plateau at chance, low late refines
    span = max(cfg.steps, 1)  # --steps 0: pretrain (or take) the encoder, validate, save
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (cfg.lr_min + 0.5 * (
        cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(s, span) / span))) / cfg.lr)
    start, running, best = time.time(), None, None

    def validate(step: int) -> None:
        """Score validation episodes; the checkpoint keeps the best weights so far (step 0, the
        initialisation, included), chosen on validation characters only."""
        nonlocal best
        acc = accuracy_by_instance(model, val_eps, ways=cfg.classes,
                                   presentations=cfg.presentations,
                                   episodes=cfg.eval_episodes, seed=1234, device=device)
        score = sum(acc[i] for i in range(2, cfg.presentations + 1)) / (cfg.presentations - 1)
        row = {"step": step, "loss": None if running is None else round(running, 4),
               "seconds": round(time.time() - start), "val_score": round(score, 4),
               "val": {str(k): round(v, 4) for k, v in acc.items() if k in (1, 2, 3, 5, 10)}}
        metrics["history"].append(row)
        metrics["steps"], metrics["seconds"] = step, row["seconds"]
        if best is None or score >= best[0]:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
            metrics["val"], metrics["kept_step"] = row["val"], step
        report(row, bar, log)
        save_checkpoint(cfg.out, cfg, model, metrics, state=best[1])

    bar = tqdm(range(1, cfg.steps + 1), disable=not progress, desc=f"train {cfg.model.model}")
    validate(0)
    for step in bar:
        model.train()
        if frozen:
            model.encoder.eval()  # fixed weights and, with BatchNorm, fixed statistics
        ep = train_eps.sample(cfg.batch, cfg.classes, cfg.presentations, cfg.model.label_space,
                              gen).to(device)
        logits = model(ep.x, ep.y_prev)
        counted = ep.instance.flatten() > (0 if cfg.loss_on_first else 1)
        loss = F.cross_entropy(logits.flatten(0, 1)[counted], ep.y.flatten()[counted])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            validate(step)
    return metrics


def _train_embedded(cfg: TrainConfig, model: nn.Module, metrics: dict, train_eps: OmniglotEpisodes,
                    val_eps: OmniglotEpisodes, *, progress: bool, log: Path | None) -> dict:
    """--task relabel / capacity / mixed: embed every drawing once with the frozen encoder, then train the
    controller, heads and output on episodes of embeddings (``tasks.train_controller``)."""
    from .tasks import EmbeddedEpisodes, embed_characters, train_controller

    model.encoder.requires_grad_(False)
    # the samplers hold rotations as classes for train, the characters for val
    train_emb = embed_characters(model.encoder, train_eps.images, views=cfg.views, seed=cfg.seed, progress=progress)
    val_emb = embed_characters(model.encoder, val_eps.images, progress=progress)
    got = train_controller(model, EmbeddedEpisodes(train_emb), EmbeddedEpisodes(val_emb), steps=cfg.steps,
                           tasks=CONTROLLER_TASKS[cfg.task], ways=tuple(cfg.ways) or (cfg.classes,), presentations=cfg.presentations,
                           hold=cfg.hold, parts=tuple(cfg.parts), keep_agreement=cfg.keep_agreement, optimizer=cfg.optimizer,
                           batch=cfg.batch, lr=cfg.lr, lr_min=cfg.lr_min, clip=cfg.clip, seed=cfg.seed,
                           eval_every=cfg.eval_every, eval_episodes=cfg.eval_episodes, progress=progress, log=log,
                           on_validate=lambda got, state: save_checkpoint(cfg.out, cfg, model, {**metrics, **got}, state=state))
    metrics.update(got)
    kept = [r for r in got["history"] if r.get("kept")][-1]  # the weights the model holds
    metrics["kept_step"], metrics["val"] = kept["step"], {k: v for k, v in kept.items() if k.endswith("way")}
    save_checkpoint(cfg.out, cfg, model, metrics)
    return metrics
