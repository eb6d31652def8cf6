"""The text embedder of a store: given or named, loaded on first use."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from ..config import Config
from ..embed import Embedder, resolve_embedder
from ..validate import check_vectors

__all__ = ["TextKeys"]


class TextKeys:
    """Turns texts into keys. A sentence-transformers model is loaded by the first :meth:`embed`
    (or :attr:`embedder`), never by opening a store."""

    def __init__(self, arg: Embedder | str | None, config: Config) -> None:
        self._arg = arg
        self._config = config
        self._embedder: Embedder | None = None if arg is None or isinstance(arg, str) else arg

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = resolve_embedder(self._arg)
        return self._embedder

    @property
    def name(self) -> str:
        """The key source recorded for spaces this embedder builds (without loading a model)."""
        if self._embedder is not None:
            return self._embedder.name
        from ..embed import DEFAULT_MODEL, SentenceTransformerEmbedder

        arg = self._arg
        return SentenceTransformerEmbedder(arg if isinstance(arg, str) else DEFAULT_MODEL).name

    def impostor(self, dim: int) -> bool:
        """Whether the embedder object given makes keys of another dimension than ``dim``. A
        sentence-transformers embedder is its model, whose name the store records: asking its
        dimension would load the model, which opening a store never does."""
        from ..embed import SentenceTransformerEmbedder

        e = self._embedder
        return e is not None and not isinstance(e, SentenceTransformerEmbedder) and e.dim != dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One key per text, checked (finite, one row each)."""
        # NFKC first: full-width letters and other compatibility forms are unknown words to the
        # model (a full-width restatement had cosine 0.03 with its plain twin).
        texts = [t if t.isascii() else unicodedata.normalize("NFKC", t) for t in texts]
        vectors = self.embedder.embed(texts, batch_size=self._config.embed_batch_size)
        return check_vectors(vectors, vectors.shape[1] if vectors.ndim == 2 else -1, "embedding")
