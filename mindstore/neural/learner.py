"""One-shot binding that lasts: a MANN checkpoint whose memory is a MindStore space.

>>> learner = OneShotLearner.load(store=MindStore("sqlite:///glyphs.db"), space="glyphs")
>>> learner.bind(["ka.png", "kha.png", "ga.png"], ["ka", "kha", "ga"])  # one drawing each
>>> learner.recall([Image.open("ka2.png")])[0].label    # in this process or any later one

The checkpoint's heads address the space through ``PersistentMemory`` (FAISS top-K, slots in
SQL). How a binding is made, with the checkpoint's controller and heads run unchanged
(``MANN.step``; in the packaged checkpoint only the conv encoders were trained, and the
controller, heads and output keep the hand-set weights of ``init="prototype"``):

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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InvalidInputError, SpaceError
from . import DEFAULT_CHECKPOINT
from .data import prepare_image
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
    """Bind images to string labels from one example each; recall them in any later process.

    ``bind`` and ``recall`` take a list of images, each item any of:

    - a file path (``str`` or ``Path``) to a picture PIL can read (PNG, JPEG, ...), or its bytes;
    - a ``PIL.Image`` of any size and mode;
    - a 2-D numpy array or torch tensor (``(1, H, W)`` and ``(H, W, 1)`` count as 2-D).

    or one array or tensor of them, ``(n, H, W)`` or ``(n, 1, H, W)``. Two kinds of image:

    - **A drawing as the model sees it**: an array at the checkpoint's size (S x S, S =
      ``model.cfg.image_size``), bright strokes on a dark ground, uint8 (strokes 255) or floats
      or bools in [0, 1] (strokes 1). It is taken as it is, as before pictures were accepted.
    - **A picture**: everything else (files, bytes, PIL images of any size, arrays of any other
      size) is taken as the Omniglot PNGs are, dark strokes on a light ground, and converted
      exactly as the training data was (``data.prepare_image``): grey, box-downsampled to S x S,
      inverted so that strokes are bright. An array of another size holds grey values (uint8 0 to
      255, or [0, 1] where 1 is white), as ``np.asarray(Image.open(png))`` gives. Holding bright
      strokes on a dark ground instead? Pass ``255 - a`` (floats: ``1 - a``), or resize it to
      S x S yourself.

    Anything else raises ``InvalidInputError`` before the memory is touched.
    """

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
        """What ``bind`` and ``recall`` take (see the class docstring) -> (n, 1, S, S) floats in
        [0, 1], strokes bright. Raises ``InvalidInputError`` naming the item at fault."""
        S = self.model.cfg.image_size
        if isinstance(images, (np.ndarray, torch.Tensor)) and not _is_text(images):
            x = _tensor(images, "images")
            if x.dim() == 4 and x.shape[1] == 1:
                x = x[:, 0]
            if x.dim() != 3:
                raise InvalidInputError(
                    f"images have shape {tuple(x.shape)}; give (n, {S}, {S}) drawings (strokes bright), "
                    f"(n, H, W) pictures, or a list of images (for one image: [image] or image[None])"
                )
            if tuple(x.shape[1:]) == (S, S):  # drawings as the model sees them: taken as they are
                return _unit(x, "images").unsqueeze(1).to(self.device)
            if x.shape[-1] in (3, 4):  # not n drawings 3 or 4 pixels wide: one colour picture
                raise InvalidInputError(f"images have shape {tuple(x.shape)}, one colour picture: pass a list, "
                                        f"[Image.fromarray(a)] or [path]")
            items: list[Any] = list(x)
        elif isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
            raise InvalidInputError("images must be a list, one image per label: for one image pass [image]")
        else:
            try:
                items = list(images.tolist() if isinstance(images, np.ndarray) else images)
            except TypeError as exc:
                raise InvalidInputError(f"images must be a list of images or an array, not {type(images).__name__}") from exc
        if not items:
            return torch.zeros((0, 1, S, S), device=self.device)
        return torch.stack([drawing(item, S, f"images[{i}]") for i, item in enumerate(items)]).unsqueeze(1).to(self.device)

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
        """Store one binding per image (label: any non-empty string, one per image); returns the new
        slot ids. Images: a list of paths, bytes, PIL images or arrays (see the class docstring)."""
        x = self.images(images)
        labels = self._labels(labels, len(x))
        if len(x) == 0:
            raise InvalidInputError("no images to bind: give at least one image and its label")
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
        """The label each image recalls from the space (read only; reads count as slot usage).
        Images as for ``bind``; an empty list recalls nothing and returns ``[]``."""
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


def drawing(item: Any, size: int, where: str = "image") -> torch.Tensor:
    """One image as the model takes it: (size, size) floats in [0, 1], strokes 1.

    An array or tensor at ``size`` x ``size`` is already such a drawing and is taken as it is. Any
    other image is a picture (dark strokes on a light ground) and is converted as the training
    PNGs were (``data.prepare_image``). ``where`` names the item in error messages."""
    if isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview)):
        return _unit(torch.from_numpy(_read_picture(item, size, where)), where)
    if isinstance(item, Image.Image):
        try:
            return _unit(torch.from_numpy(_picture(item, size)), where)
        except Exception as exc:  # whatever PIL raises, the image is unusable
            raise InvalidInputError(f"{where}: PIL could not convert this {item.mode} image to grey ({exc}); "
                                    f"convert it first, e.g. image.convert('L')") from exc
    if isinstance(item, (np.ndarray, torch.Tensor, list, tuple)) and not _is_text(item):
        x = _tensor(item, where)
        if x.dim() == 3 and 1 in (x.shape[0], x.shape[-1]):  # (1, H, W) or (H, W, 1): one grey channel
            x = x[0] if x.shape[0] == 1 else x[..., 0]
        if x.dim() != 2 or 0 in x.shape:
            raise InvalidInputError(
                f"{where} has shape {tuple(x.shape)}, which is not a grey image: give a 2-D (H, W) array, "
                f"and colour pictures as PIL images or files"
            )
        x = _unit(x, where)
        if tuple(x.shape) == (size, size):
            return x
        grey = Image.fromarray((x * 255).round().to(torch.uint8).numpy(), mode="L")
        return _unit(torch.from_numpy(_picture(grey, size)), where)
    raise InvalidInputError(f"{where} is a {type(item).__name__}; give an image file path, PNG bytes, "
                            f"a PIL image or a 2-D array")


def _picture(image: Image.Image, size: int) -> np.ndarray:
    # exactly data.prepare_image's conversion, for an image already open (tests compare the two)
    return 255 - np.asarray(image.convert("L").resize((size, size), Image.BOX), np.uint8)


def _read_picture(src: str | os.PathLike | bytes | bytearray | memoryview, size: int, where: str) -> np.ndarray:
    if isinstance(src, (bytes, bytearray, memoryview)):
        what, src = "these bytes are", bytes(src)
    else:
        path = Path(src)
        if not path.is_file():
            raise InvalidInputError(f"{where}: no image file at {str(path)!r}; check the path")
        what, src = f"{str(path)!r} is", path
    try:
        return prepare_image(src, size)
    except Exception as exc:  # PIL's decoders raise OSError, SyntaxError, ValueError, EOFError...
        why = "" if isinstance(exc, UnidentifiedImageError) else f" ({exc})"
        raise InvalidInputError(f"{where}: {what} not an image PIL can read{why}; "
                                f"give a PNG, JPEG or other picture file") from exc


def _is_text(a: Any) -> bool:
    """An array of strings (file names), not of pixels."""
    return isinstance(a, np.ndarray) and a.dtype.kind in "OUS"


def _tensor(a: Any, where: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    try:
        a = np.ascontiguousarray(a)
        return torch.as_tensor(a if a.flags.writeable else a.copy())  # e.g. np.asarray(pil_image) is read-only
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{where} is not an array of pixel values ({exc})") from exc


def _unit(x: torch.Tensor, where: str) -> torch.Tensor:
    """uint8 0..255 -> floats in [0, 1]; any other type must already hold values in [0, 1]."""
    dtype = str(x.dtype).removeprefix("torch.")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise InvalidInputError(f"{where}: pixel values must be uint8 (0 to 255) or numbers in [0, 1]; "
                                f"these {dtype} values run from {x.min():g} to {x.max():g}")
    return x


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
