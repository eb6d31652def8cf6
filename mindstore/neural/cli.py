"""`mindstore train`, `evaluate`, `bind` and `recall`: thin commands over train.py, evaluate.py
and learner.py.

``register(app)`` adds them to the `mindstore` typer app. torch is imported inside the commands
so that `mindstore --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..clitools import JsonOpt, fail, open_store, print_json
from . import DEFAULT_CHECKPOINT
from .config import MANNConfig, TrainConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def register(app: typer.Typer) -> None:
    """Add the neural-memory commands to ``app``."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("bind")(bind_command)
    app.command("recall")(recall_command)


def image_files(paths: list[Path]) -> list[Path]:
    """The image files named, and those under the folders named (recursively, sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise typer.BadParameter(f"{p} is neither an image file nor a folder")
    if not out:
        raise typer.BadParameter(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return out


@contextmanager
def _learner(db: Optional[str], checkpoint: Optional[Path], space: str, *, create: bool) -> Iterator:
    """The learner over ``space`` of the store at ``db``; any MindStoreError ends the command
    with its message."""
    from ..errors import MindStoreError
    from .learner import OneShotLearner

    with open_store(db) as store:
        try:
            yield OneShotLearner.load(checkpoint, store=store, space=space, create=create, device="cpu")
        except MindStoreError as exc:
            fail(str(exc))


def _read_images(files: list[Path], learner, invert: bool):  # noqa: ANN001, ANN202 - ndarray
    import numpy as np

    from .data import prepare_image

    imgs = np.stack([prepare_image(f, learner.model.cfg.image_size) for f in files])
    return imgs if invert else 255 - imgs


SpaceArg = typer.Option("glyphs", "--space", help="The neural space (created by the first bind).")
CheckpointArg = typer.Option(None, "--checkpoint", help="MANN checkpoint (default: the packaged one). "
                             "A space only accepts the checkpoint that built it.")
InvertArg = typer.Option(True, "--invert/--no-invert", help="Dark strokes on a light ground (Omniglot "
                         "PNGs) are inverted to the bright strokes the model was trained on.")
DbArg = typer.Option(None, "--db", envvar="MINDSTORE_DB", help="SQLAlchemy URL (default: the user's store).")


def bind_command(
    paths: list[Path] = typer.Argument(..., help="Images, or folders of images. In a folder, each "
                                       "image's label is the name of the folder it sits in."),
    label: Optional[str] = typer.Option(None, "--label", "-l", help="One label for every image."),
    space: str = SpaceArg,
    checkpoint: Optional[Path] = CheckpointArg,
    invert: bool = InvertArg,
    db: Optional[str] = DbArg,
    as_json: JsonOpt = False,
) -> None:
    """Bind images to labels from one example each, in the store's neural space (lasts)."""
    files = image_files(paths)
    labels = [label if label is not None else f.parent.name for f in files]
    with _learner(db, checkpoint, space, create=True) as learner:
        ids = learner.bind(_read_images(files, learner, invert), labels)
        rows = [{"file": str(f), "label": lab, "slot": i} for f, lab, i in zip(files, labels, ids)]
        if as_json:
            print_json(rows)
        else:
            for r in rows:
                typer.echo(f"[{r['slot']}] {r['label']}  <- {r['file']}")
            typer.echo(f"bound {len(rows)} images in space {space!r} ({learner.store.count(space=space)} slots)")


def recall_command(
    paths: list[Path] = typer.Argument(..., help="Images, or folders of images."),
    space: str = SpaceArg,
    checkpoint: Optional[Path] = CheckpointArg,
    invert: bool = InvertArg,
    db: Optional[str] = DbArg,
    as_json: JsonOpt = False,
) -> None:
    """Recall the label each image was bound to (by this or any earlier process)."""
    files = image_files(paths)
    with _learner(db, checkpoint, space, create=False) as learner:
        preds = learner.recall(_read_images(files, learner, invert))
        if as_json:
            print_json([{"file": str(f), **dataclasses.asdict(p)} for f, p in zip(files, preds)])
            return
        for f, p in zip(files, preds):
            slots = ",".join(map(str, p.slots[:4]))
            typer.echo(f"{p.label if p.label is not None else '(nothing bound)'}  {p.confidence:.2f}  "
                       f"slots {slots}  <- {f}")


# `mindstore train`"s options, in --help's order: one per field of MANNConfig or TrainConfig,
# whose default it takes (so the two cannot disagree), with its help text.
TRAIN_HELP: dict[str, str] = {
    "model": "mann (controller + external memory) or lstm (the LSTM baseline, no memory).",
    "controller": "Recurrent controller cell: lstm, gru or rnn.",
    "memory": "sparse (top-K reads, Rae et al. 2016) or dense.",
    "score": (
        "Addressing score: cosine, dot, multiplicative, additive, or euclidean (minus the "
        "squared distance to a slot's mean; the write key's last unit counts writes)."
    ),
    "task": (
        "omniglot: Santoro's episodes, end to end; synthetic: random patterns (fast); "
        "relabel: episodes where half the classes swap labels midway (the latest binding must "
        "win); capacity: a memory of ways + 1 slots, so the write head must choose what to "
        "overwrite; mixed: standard, relabel and capacity episodes in turn. These three train "
        "the controller, heads and output only, on cached embeddings of a frozen encoder "
        "(--encoder-from, or pretrained first)."
    ),
    "views": (
        "relabel / capacity / mixed: embeddings cached per training drawing (the drawing and "
        "views - 1 random distortions)."
    ),
    "data": (
        "Omniglot zip or folder. Default: $MINDSTORE_DATA, else ../shared/data/omniglot, else "
        "the user cache (downloaded when online)."
    ),
    "steps": (
        "MANN training steps (batches of episodes). 0 trains only the encoder "
        "(--pretrain-steps); the controller and heads stay as --init set them, as in the packaged "
        "checkpoint."
    ),
    "batch": "Episodes per step.",
    "classes": "Classes (ways) per training episode.",
    "ways": (
        "relabel / capacity / mixed: train on episodes of each of these ways in turn (repeat "
        "the option: --ways 5 --ways 20; default --classes)."
    ),
    "hold": (
        "relabel / capacity / mixed: keep weights only while every standard-episode "
        "validation accuracy stays within this of its value at step 0 (e.g. 0.005)."
    ),
    "parts": (
        "relabel / capacity / mixed: train only these parts (repeat: --parts controller "
        "--parts write_head --parts out); default all but the encoder (controller, read_head, "
        "write_head, out)."
    ),
    "optimizer": (
        "relabel / capacity / mixed: adam, or sgd (momentum 0.9: steps follow the gradient's "
        "size, so the hand-set heads' near-zero weights stay near zero)."
    ),
    "keep_agreement": (
        "relabel / capacity / mixed: leave the controller's agreement units (set by --init "
        "prototype to drive the LRUA gate) as set; train its other units."
    ),
    "presentations": "Presentations of each class per episode.",
    "label_space": (
        "Output labels; episodes use a random subset, so one model serves 5-way to "
        "label-space-way episodes."
    ),
    "hidden": "Controller units.",
    "slots": "Memory slots N.",
    "width": "Slot and key width D (the matching init needs at least embed + label space).",
    "read_heads": "Read heads.",
    "topk": "K: slots each sparse read head touches.",
    "channels": "Conv encoder channels.",
    "shift_average": (
        "e_t is the mean of the encoder's outputs for the drawing and its four one-pixel "
        "shifts, whenever the encoder is not itself training (five encoder passes a drawing)."
    ),
    "shift_views": (
        "Views --shift-average takes: 5 (the drawing and its shifts up, down, left and right) "
        "or 9 (the 3x3 grid of one-pixel shifts, diagonals included)."
    ),
    "encoders": (
        "An ensemble of N conv encoders, each trained alone (pretrained in turn, or taken "
        "with --encoder-from N times), their embeddings joined: --embed is their total width."
    ),
    "blocks": "Conv encoder depth: blocks of conv3x3, norm, ReLU and 2x2 max-pooling.",
    "embed": (
        "Encoder output (e_t) width; the matching init needs --width of at least embed + "
        "label space."
    ),
    "init": (
        "matching: the heads start as a matching network over the encoder's space "
        "(docs/neural.md); prototype: the same, and the LRUA gate adds a drawing recalled "
        "right into the slot it was read from, so slots become class prototypes; random: "
        "plain init."
    ),
    "norm": (
        "Conv encoder normalisation: group (GroupNorm: each image by its own statistics) or "
        "batch."
    ),
    "encoder": "conv (images) or mlp.",
    "image_size": "Images are downsampled to this size.",
    "lr": (
        "Adam learning rate (cosine-decayed to --lr-min); from a random init (--init random, "
        "--model lstm) use about 1e-3."
    ),
    "loss_on_first": "Count the loss on a class's 1st presentation too (its label cannot be known).",
    "lr_min": "Final learning rate.",
    "standardize": "Centre and scale each encoder feature by its training statistics.",
    "augment": (
        "Randomly rotate, scale, shear and shift training drawings a little: none, pretrain "
        "(the encoder's phase only) or all."
    ),
    "reflect": (
        "Count the mirror image of each training character (and its four rotations) as a new "
        "class too: 8 classes per character instead of the 4 rotations (not better on "
        "validation for the packaged recipe: docs/neural.md)."
    ),
    "pretrain_steps": (
        "Omniglot: first train the encoder alone for N steps with the prototypical loss "
        "(Snell et al. 2017)."
    ),
    "pretrain_ways": "Classes per pretraining episode.",
    "pretrain_shots": "Drawings per class that make its prototype in a pretraining episode.",
    "pretrain_queries": "Drawings per class classified against the prototypes in a pretraining episode.",
    "pretrain_lr": "Encoder pretraining learning rate (cosine-decayed to 0).",
    "pretrain_distort": (
        "Scale the ranges of the pretraining drawings' random distortion (1: rotation +-10 "
        "degrees, scale and shift +-10%, shear +-0.15)."
    ),
    "encoder_from": (
        "Take the encoder from this checkpoint instead of pretraining one (so that compared "
        "models share it); with --encoders N, give it N times, one checkpoint per member."
    ),
    "freeze_encoder": "Keep a pretrained (or taken) encoder fixed while the MANN trains.",
    "eval_every": "Validate and checkpoint every N steps.",
    "eval_episodes": "Validation episodes per evaluation.",
    "seed": "Random seed (model init and episodes).",
    "device": "auto, cpu or cuda.",
    "threads": "torch CPU threads (0: torch's default).",
    "out": "Checkpoint path.",
}
# Option types that are not the type of the field's default.
_TRAIN_TYPES = {"data": Optional[Path], "ways": Optional[List[int]], "hold": Optional[float],
                "parts": Optional[List[str]], "encoder_from": Optional[List[Path]], "out": Path}
# Options of the command rather than of the run: name -> (type, default, help).
_TRAIN_RUN = {"log": (Optional[Path], None, "Append each evaluation as a JSON line here."),
              "progress": (bool, True, "Show a progress bar.")}


def _config_defaults() -> dict[str, object]:
    return {f.name: f.default for cls in (MANNConfig, TrainConfig) for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def _with_train_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command(**options)`` the signature typer reads: one option per TRAIN_HELP entry
    (the field's default, the help text) and per _TRAIN_RUN entry."""
    defaults = _config_defaults()
    specs = {name: (_TRAIN_TYPES.get(name, type(defaults[name])),
                    None if defaults[name] in ((), None) else defaults[name], text)
             for name, text in TRAIN_HELP.items()} | _TRAIN_RUN
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                default=typer.Option(Path(default) if kind is Path else default, help=text))
              for name, (kind, default, text) in specs.items()]
    command.__signature__ = inspect.Signature(params, return_annotation=None)
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return command


def train_config(options: dict[str, object]) -> TrainConfig:
    """The TrainConfig (with its MANNConfig) that `mindstore train`'s parsed options describe."""
    model_fields = {f.name for f in dataclasses.fields(MANNConfig)}
    model = {k: v for k, v in options.items() if k in model_fields}
    run = {k: v for k, v in options.items() if k not in model_fields}
    for name in ("ways", "parts"):
        run[name] = tuple(run.get(name) or ())
    for name in ("data", "out"):
        run[name] = None if run.get(name) is None else str(run[name])
    members = [str(p) for p in run.get("encoder_from") or ()]
    run["encoder_from"] = members[0] if len(members) == 1 else members or None
    return TrainConfig(model=MANNConfig(**model), **run)


@_with_train_options
def train_command(**options: Any) -> None:
    """Train a MANN (or the LSTM baseline) for one-shot binding and save a checkpoint."""
    from .train import train

    log, progress = options.pop("log"), options.pop("progress")
    cfg = train_config(options)
    try:
        metrics = train(cfg, progress=progress, log=log)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(json.dumps({"out": cfg.out, "steps": metrics["steps"], "kept_step": metrics["kept_step"],
                           "seconds": metrics["seconds"], "val": metrics["val"]}))


def evaluate_command(
    checkpoint: Path = typer.Argument(DEFAULT_CHECKPOINT, help="Checkpoint from `train`."),
    ways: int = typer.Option(5, help="Classes per episode (5 or 20, up to the label space)."),
    presentations: int = typer.Option(10, help="Presentations of each class per episode."),
    episodes: int = typer.Option(1000, help="Episodes to average over."),
    split: str = typer.Option("eval", help="eval (Sanskrit and Tagalog: 2 of the 8 background "
                              "alphabets, kept out of training; not Omniglot's 20 evaluation "
                              "alphabets) or val (held-back characters of the training alphabets)."),
    data: Optional[Path] = typer.Option(None, help="Omniglot zip or folder (as for train)."),
    seed: int = typer.Option(0, help="Episode seed."),
    slots: Optional[int] = typer.Option(None, help="Run with this many memory slots instead of "
                                        "the trained number (slots hold no weights)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    plot: Optional[Path] = typer.Option(None, help="Write the accuracy-by-instance plot here "
                                        "(e.g. docs/neural_5way.png)."),
    as_json: JsonOpt = False,
) -> None:
    """Accuracy by instance (1st, 2nd, ... presentation) on the held-out alphabets.

    5-way tables add Santoro et al. 2016's rows, for reference only: an end-to-end pixel MANN.
    """
    from . import evaluate
    from .model import config_from_dict
    from .train import load_checkpoint, make_sampler, resolve_device

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
    if as_json:
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
