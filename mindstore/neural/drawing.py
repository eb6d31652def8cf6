"""The drawing a binding was made from, kept in its slot's metadata so that people can see it.

``OneShotLearner.bind`` stores each image exactly as the model saw it (S x S uint8, strokes 255;
S = 28 for the packaged checkpoint: 784 bytes, 1568 hex characters) under ``metadata["image"]``.
The TUI shows it in block characters and can recall from it. numpy only: no torch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["IMAGE_KEY", "decode_image", "encode_image", "render_blocks"]

IMAGE_KEY = "image"
MAX_SIDE = 64  # larger images are not kept (a slot's metadata is not a blob store)


def encode_image(image: np.ndarray) -> dict[str, Any]:
    """A (H, W) uint8 image as JSON-safe metadata: ``{"shape": [H, W], "hex": "..."}``."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim != 2 or max(a.shape) > MAX_SIDE:
        raise ValueError(f"a kept drawing is (H, W) with sides up to {MAX_SIDE}; got {a.shape}")
    return {"shape": [int(a.shape[0]), int(a.shape[1])], "hex": a.tobytes().hex()}


def decode_image(metadata: Mapping[str, Any] | None) -> np.ndarray | None:
    """The (H, W) uint8 image kept in a slot's metadata, or None when it holds none (or a damaged one)."""
    kept = (metadata or {}).get(IMAGE_KEY)
    if not isinstance(kept, Mapping):
        return None
    try:
        h, w = (int(v) for v in kept["shape"])
        data = bytes.fromhex(kept["hex"])
    except (KeyError, TypeError, ValueError):
        return None
    if h <= 0 or w <= 0 or len(data) != h * w:
        return None
    return np.frombuffer(data, dtype=np.uint8).reshape(h, w).copy()


def render_blocks(image: np.ndarray, threshold: int = 128) -> str:
    """Two pixel rows per line in half-block characters (▀ ▄ █ and space): strokes >= threshold."""
    on = np.asarray(image) >= threshold
    if on.shape[0] % 2:
        on = np.vstack([on, np.zeros((1, on.shape[1]), dtype=bool)])
    chars = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
    return "\n".join("".join(chars[(bool(t), bool(b))] for t, b in zip(top, bottom)) for top, bottom in zip(on[0::2], on[1::2]))
