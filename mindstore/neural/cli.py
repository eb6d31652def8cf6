"""`mindstore train` and `mindstore evaluate`: thin commands over train.py and evaluate.py.

``register(app)`` adds them to the `mindstore` typer app. torch is imported inside the commands
so that `mindstore --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "mann_sparse.pt"


def register(app: typer.Typer) -> None:
    """Add the neural-memory commands ``train`` and ``evaluate`` to ``app``."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)


def train_command(
    model: str = typer.Option("mann", help="mann (controller + external memory) or lstm "
                              "(the LSTM baseline, no memory)."),
    controller: str = typer.Option("lstm", help="Recurrent controller cell: lstm, gru or rnn."),
    memory: str = typer.Option("sparse", help="sparse (top-K reads, Rae et al. 2016) or dense."),
    score: str = typer.Option("cosine", help="Addressing score: cosine, dot, multiplicative, "
                              "additive."),
    task: str = typer.Option("omniglot", help="omniglot, or synthetic (random patterns, fast)."),
    data: Optional[Path] = typer.Option(None, help="Omniglot zip or folder. Default: "
                                        "$MINDSTORE_DATA, else ../shared/data/omniglot, else "
                                        "the user cache (downloaded when online)."),
    steps: int = typer.Option(10_000, help="Training steps (batches of episodes)."),
    batch: int = typer.Option(16, help="Episodes per step."),
    classes: int = typer.Option(5, help="Classes (ways) per training episode."),
    presentations: int = typer.Option(10, help="Presentations of each class per episode."),
    label_space: int = typer.Option(20, help="Output labels; episodes use a random subset, so "
                                    "one model serves 5-way to label-space-way episodes."),
    hidden: int = typer.Option(128, help="Controller units."),
    slots: int = typer.Option(128, help="Memory slots N."),
    width: int = typer.Option(128, help="Slot and key width D (the matching init needs at "
                              "least embed + label space)."),
    read_heads: int = typer.Option(4, help="Read heads."),
    topk: int = typer.Option(4, help="K: slots each sparse read head touches."),
    channels: int = typer.Option(32, help="Conv encoder channels."),
    init: str = typer.Option("matching", help="matching: the heads start as a matching network "
                             "over the encoder's space (docs/neural.md); random: plain init."),
    norm: str = typer.Option("group", help="Conv encoder normalisation: group (GroupNorm: each "
                             "image by its own statistics) or batch."),
    encoder: str = typer.Option("conv", help="conv (images) or mlp."),
    image_size: int = typer.Option(20, help="Images are downsampled to this size."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (cosine-decayed to --lr-min)."),
    loss_on_first: bool = typer.Option(False, help="Count the loss on a class's 1st "
                                       "presentation too (its label cannot be known)."),
    lr_min: float = typer.Option(1e-4, help="Final learning rate."),
    standardize: bool = typer.Option(True, help="Centre and scale each encoder feature by "
                                     "its training statistics."),
    augment: str = typer.Option("pretrain", help="Randomly rotate, scale, shear and shift "
                                "training drawings a little: none, pretrain (the encoder's "
                                "phase only) or all."),
    pretrain_steps: int = typer.Option(3000, help="Omniglot: first train the encoder alone for "
                                       "N steps with the prototypical loss (Snell et al. 2017)."),
    pretrain_ways: int = typer.Option(60, help="Classes per pretraining episode."),
    encoder_from: Optional[Path] = typer.Option(None, help="Take the encoder from this "
                                                "checkpoint instead of pretraining one (so that "
                                                "compared models share it)."),
    freeze_encoder: bool = typer.Option(True, help="Keep a pretrained (or taken) encoder fixed "
                                        "while the MANN trains."),
    eval_every: int = typer.Option(500, help="Validate and checkpoint every N steps."),
    eval_episodes: int = typer.Option(160, help="Validation episodes per evaluation."),
    seed: int = typer.Option(0, help="Random seed (model init and episodes)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
    out: Path = typer.Option(Path("runs/mann.pt"), help="Checkpoint path."),
    log: Optional[Path] = typer.Option(None, help="Append each evaluation as a JSON line here."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train a MANN (or the LSTM baseline) for one-shot binding and save a checkpoint."""
    from .model import MANNConfig
    from .train import TrainConfig, train

    mcfg = MANNConfig(model=model, controller=controller, memory=memory, score=score,
                      hidden=hidden, slots=slots, width=width, read_heads=read_heads, topk=topk,
                      label_space=label_space, image_size=image_size, encoder=encoder,
                      channels=channels, norm=norm, standardize=standardize, init=init)
    cfg = TrainConfig(model=mcfg, task=task, data=str(data) if data else None, steps=steps,
                      batch=batch, classes=classes, presentations=presentations, lr=lr,
                      lr_min=lr_min, loss_on_first=loss_on_first, eval_every=eval_every,
                      eval_episodes=eval_episodes, seed=seed, device=device, out=str(out),
                      threads=threads, augment=augment, pretrain_steps=pretrain_steps,
                      pretrain_ways=pretrain_ways,
                      encoder_from=str(encoder_from) if encoder_from else None,
                      freeze_encoder=freeze_encoder)
    try:
        metrics = train(cfg, progress=progress, log=log)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(json.dumps({"out": str(out), "steps": metrics["steps"],
                           "seconds": metrics["seconds"], "val": metrics["val"]}))


def evaluate_command(
    checkpoint: Path = typer.Argument(DEFAULT_CHECKPOINT, help="Checkpoint from `train`."),
    ways: int = typer.Option(5, help="Classes per episode (5 or 20, up to the label space)."),
    presentations: int = typer.Option(10, help="Presentations of each class per episode."),
    episodes: int = typer.Option(1000, help="Episodes to average over."),
    split: str = typer.Option("eval", help="eval (held-out alphabets) or val."),
    data: Optional[Path] = typer.Option(None, help="Omniglot zip or folder (as for train)."),
    seed: int = typer.Option(0, help="Episode seed."),
    slots: Optional[int] = typer.Option(None, help="Run with this many memory slots instead of "
                                        "the trained number (slots hold no weights)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    plot: Optional[Path] = typer.Option(None, help="Write the accuracy-by-instance plot here "
                                        "(e.g. docs/neural_5way.png)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Accuracy by instance (1st, 2nd, ... presentation) on held-out alphabets."""
    from . import evaluate
    from .model import config_from_dict
    from .train import load_checkpoint, make_sampler, resolve_device, TrainConfig

    dev = resolve_device(device)
    model, blob = load_checkpoint(checkpoint, dev, **({"slots": slots} if slots else {}))
    tcfg = TrainConfig(model=config_from_dict(blob["model_config"]), task=blob["config"]["task"],
                       data=str(data) if data else blob["config"]["data"])
    sampler = make_sampler(tcfg, split)
    try:
        acc = evaluate.accuracy_by_instance(model, sampler, ways=ways, presentations=presentations,
                                            episodes=episodes, seed=seed, device=dev)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    name = f"{Path(checkpoint).stem} ({ways}-way)"
    if json_out:
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "ways": ways, "episodes": episodes,
                               "accuracy": acc}))
    else:
        rows = {name: acc}
        if ways == 5:
            rows.update(evaluate.SANTORO)
        instances = tuple(i for i in evaluate.INSTANCES if i <= presentations)
        typer.echo(evaluate.table(rows, instances))
    if plot is not None:
        evaluate.plot({name: acc}, plot, f"{ways}-way, held-out alphabets")
        typer.echo(f"plot written to {plot}")
