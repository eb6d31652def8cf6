"""One-shot binding that lasts: a trained MANN whose memory is a MindStore space.

>>> learner = OneShotLearner.load(store=MindStore("sqlite:///glyphs.db"), space="glyphs")
>>> learner.bind(images, ["ka", "kha", "ga"])          # one drawing each, any string labels
>>> learner.recall(other_images)[0].label               # in this process or any later one

The checkpoint's heads address the space through ``PersistentMemory`` (FAISS top-K, slots in
SQL). How a binding is made, with the controller exactly as trained (``MANN.step``):

1. ``bind``: a fresh controller sees the image (step 1, read only). What is persisted, through
   the memory's LRUA write into a new slot labelled with the string label, is either
   ``persist="read_key"`` (default): the mean of the read keys the heads form for this image, the
   key a later read of the same class looks for; or ``persist="write_key"``: the write key k_t of
   step 2, where the label arrives (y_{t-1}) with the image as e_{t-1}, as in a training episode.
   The network's 20 output labels cannot name arbitrary strings, so the slot carries the label
   and the controller is shown label code 0 (measured better than codes spread over the 20).
   The slot's metadata keeps the drawing as the model saw it (``drawing.py``), for the TUI.
2. ``recall``: a fresh controller sees the image; its read heads fetch their top-K slots; the
   prediction is the label with the most read weight over the slots read (confidence = its
   share). Deleting a slot from the store forgets exactly that binding.

docs/neural.md ("Lifelong binding") has the measurements behind each choice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InvalidInputError, SpaceError
from . import DEFAULT_CHECKPOINT
from .drawing import IMAGE_KEY, encode_image
from .model import MANN
from .persistent import PersistentMemory, SlotsRead
from .train import load_checkpoint, resolve_device

if TYPE_CHECKING:
    from ..store import MindStore

PERSIST = ("read_key", "write_key")


@dataclass(frozen=True)
class Prediction:
    """What the read heads recalled for one image: the label with the most read weight, that
    weight's share of the total (0 when the memory is empty), the slots read (heaviest first), the
    read weight of every label seen, and each read slot's share of the read weight (as ``slots``)."""

    label: str | None
    confidence: float
    slots: tuple[int, ...]
    votes: dict[str, float]
    weights: tuple[float, ...] = ()


def key_source(checkpoint: str | Path) -> str:
    """Names the key kind of a space: keys from another checkpoint are not comparable."""
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()[:12]
    return f"mann:{Path(checkpoint).stem}:{digest}"


class OneShotLearner:
    """Bind images to string labels from one example each; recall them in any later process."""

    def __init__(self, model: MANN, store: MindStore, space: str, *, capacity: int | None = None,
                 persist: str = "read_key", update_read_slots: bool = False) -> None:
        if not isinstance(model, MANN):
            raise InvalidInputError("OneShotLearner needs a MANN checkpoint (the LSTM baseline has no memory to persist)")
        if persist not in PERSIST:
            raise InvalidInputError(f"persist must be one of {', '.join(PERSIST)}")
        self.model, self.store, self.space, self.persist = model, store, space, persist
        cfg = model.cfg
        self.memory = PersistentMemory(store, space, heads=cfg.read_heads, k=cfg.topk, score=cfg.score,
                                       gamma=cfg.gamma, capacity=capacity)
        self.memory.update_read_slots = update_read_slots
        self.memory.to(self.device)
        model.memory = self.memory  # the same interface as SparseMemory: MANN.step runs unchanged

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, *, store: MindStore, space: str = "glyphs",
             capacity: int | None = None, device: str = "auto", create: bool = True, **options: Any) -> OneShotLearner:
        """The learner of ``checkpoint`` (default: the packaged one) over ``space`` of ``store``;
        the space is created on first use (unless ``create=False``), keyed by this checkpoint."""
        path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        if options.get("persist", PERSIST[0]) not in PERSIST:  # checked before the space is made
            raise InvalidInputError(f"persist must be one of {', '.join(PERSIST)}")
        if not path.is_file():
            raise InvalidInputError(f"no checkpoint at {path}; train one with `mindstore train` or omit it for the packaged one")
        model, _ = load_checkpoint(path, resolve_device(device))
        source = key_source(path)
        info = {s.name: s for s in store.spaces()}.get(space)
        if info is not None and (info.dim != model.cfg.width or info.key_source != source):
            raise SpaceError(
                f"space {space!r} holds {info.dim}-d keys from {info.key_source}; {path.name} makes "
                f"{model.cfg.width}-d keys ({source}). Open it with the checkpoint that built it, or use another space name"
            )
        if info is None:
            if not create:
                raise SpaceError(f"no space named {space!r} in this store; bind something first (mindstore bind --space {space} ...)")
            store.create_space(space, dim=model.cfg.width, key_source=source)
        return cls(model, store, space, capacity=capacity, **options)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- input checks ------------------------------------------------------------------------

    def images(self, images: Any) -> torch.Tensor:
        """(n, S, S) or (n, 1, S, S), uint8 with strokes 255 or float in [0, 1] -> (n, 1, S, S)."""
        S = self.model.cfg.image_size
        try:
            x = torch.as_tensor(np.asarray(images))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"images must be an array of shape (n, {S}, {S}): {exc}") from exc
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 3 or tuple(x.shape[1:]) != (S, S):
            raise InvalidInputError(
                f"images have shape {tuple(x.shape)}; this checkpoint takes (n, {S}, {S}) drawings "
                f"(strokes bright): load files with mindstore.neural.data.prepare_image(path, {S})"
            )
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            raise InvalidInputError("float images must hold values in [0, 1] (uint8 images: 0 to 255)")
        return x.unsqueeze(1).to(self.device)

    @staticmethod
    def _labels(labels: Any, n: int) -> list[str]:
        if isinstance(labels, str) or not hasattr(labels, "__len__"):
            raise InvalidInputError("labels must be a list of strings, one per image")
        if len(labels) != n:
            raise InvalidInputError(f"{n} images but {len(labels)} labels: give one label per image")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise InvalidInputError(f"labels[{i}] is {label!r}; every label must be a non-empty string")
        return list(labels)

    # -- bind and recall -----------------------------------------------------------------------

    @torch.no_grad()
    def bind(self, images: Any, labels: Any, *, batch: int = 256) -> list[int]:
        """Store one binding per image (label: any non-empty string); returns the new slot ids."""
        x = self.images(images)
        labels = self._labels(labels, len(x))
        if len(x) == 0:
            raise InvalidInputError("no images to bind")
        ids: list[int] = []
        for start in range(0, len(x), batch):
            ids += self._bind(x[start:start + batch], labels[start:start + batch])
        return ids

    def _bind(self, x: torch.Tensor, labels: list[str]) -> list[int]:
        model, n = self.model, len(x)
        # The drawing as the model saw it (S x S uint8) goes into the slot, for people to see it.
        pixels = (x[:, 0] * 255).round().to(torch.uint8).cpu().numpy()
        metadata = [{IMAGE_KEY: encode_image(p)} for p in pixels]
        e = model.encoder(x)
        state = model.initial_state(n, self.device)
        none = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.memory.labels = None  # step 1 sees the image: read only, nothing to bind yet
        _, state = model.step(e, none, state)
        if self.persist == "read_key":
            # LRUA write with g = sigmoid(alpha) -> 0: all of it into the least-used (new) slot.
            key = self.memory.score.as_slot(self.memory.last_keys.mean(1))
            alpha = torch.full((n,), -30.0, device=self.device)
            return self.memory.write(model.memory.initial_state(n, self.device), key, alpha, labels, metadata)
        self.memory.labels, self.memory.metadata = labels, metadata  # step 2: the label arrives (y_{t-1}) and the write binds it
        try:
            model.step(model.encoder(torch.zeros_like(x)), torch.zeros_like(none), state)
        finally:
            self.memory.labels = self.memory.metadata = None
        return list(self.memory.last_written)

    @torch.no_grad()
    def recall(self, images: Any, *, batch: int = 256) -> list[Prediction]:
        """The label each image recalls from the space (read only; reads count as slot usage)."""
        x = self.images(images)
        out: list[Prediction] = []
        for start in range(0, len(x), batch):
            out += self._recall(x[start:start + batch])
        return out

    def _recall(self, x: torch.Tensor) -> list[Prediction]:
        model, n = self.model, len(x)
        state = model.initial_state(n, self.device)
        self.memory.labels = None
        model.step(model.encoder(x), torch.full((n,), -1, dtype=torch.long, device=self.device), state)
        return [vote(self.memory.last_read, b) for b in range(n)]


def vote(read: SlotsRead, b: int) -> Prediction:
    """Read weight per slot (summed over heads) and per label for batch row ``b``."""
    per_slot: dict[int, float] = {}
    for sid, w in zip(read.ids[b].flatten().tolist(), read.weights[b].flatten().tolist()):
        if sid >= 0:
            per_slot[sid] = per_slot.get(sid, 0.0) + w
    votes: dict[str, float] = {}
    for sid, w in per_slot.items():
        label = read.labels.get(sid)
        if label is not None:
            votes[label] = votes.get(label, 0.0) + w
    total = sum(votes.values())
    slots = tuple(sorted(per_slot, key=lambda s: (-per_slot[s], s)))
    weight = sum(per_slot.values())
    weights = tuple(per_slot[s] / weight if weight > 0 else 0.0 for s in slots)
    if not votes or total <= 0:
        return Prediction(None, 0.0, slots, {}, weights)
    label = max(votes, key=lambda k: (votes[k], k))
    return Prediction(label, votes[label] / total, slots, {k: v / total for k, v in votes.items()}, weights)
