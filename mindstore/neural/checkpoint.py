"""What a training run leaves behind: checkpoints (both configs, the weights, the metrics) and
the JSON lines of its log. Imported by train.py and tasks.py alike; it needs only model.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .model import build_model, config_from_dict


def save_checkpoint(path: str | Path, cfg: Any, model: nn.Module, metrics: dict, *,
                    state: dict | None = None) -> None:
    """Write ``state`` (default: the model's current weights) with both configs and metrics."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"config": asdict(cfg), "model_config": asdict(model.cfg),
            "state_dict": {k: v.detach().cpu() for k, v in (state or model.state_dict()).items()},
            "metrics": metrics}
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    **overrides) -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint (weights_only: no code runs on load).

    ``overrides`` change config fields that hold no weights, e.g. ``slots``: the memory size is
    not a parameter, so a model trained with 128 slots can run with more.
    """
    blob = torch.load(path, map_location=device, weights_only=True)
    model = build_model(config_from_dict(blob["model_config"], **overrides))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), blob


def report(row: dict, bar, log: Path | None) -> None:
    """One evaluation row: printed above the progress bar, appended to ``log`` as a JSON line."""
    bar.write(json.dumps(row))
    if log is not None:
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
