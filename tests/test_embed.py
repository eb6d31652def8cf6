"""The bundled MiniLM embedder: a single query takes a shorter path than encode(), to the same vector."""

from __future__ import annotations

import numpy as np

from mindstore.embed import default_embedder


def test_single_text_path_matches_encode() -> None:
    embedder = default_embedder()
    texts = ["When did Caroline go to the support group in May 2023?", "ok", "Gina lost a bag in Kyoto " * 60]
    for text in texts:  # the last one is past the model's 256-token limit: truncated the same way
        fast = embedder.embed([text])
        ref = embedder._load().encode([text], normalize_embeddings=True, convert_to_numpy=True)
        assert fast.shape == (1, 384) and fast.dtype == np.float32 and fast.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(fast, ref, atol=1e-6)
    batch = embedder.embed(texts)  # the batched path (padding) agrees with the single one
    np.testing.assert_allclose(batch[0], embedder.embed(texts[:1])[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
