"""The bundled MiniLM run by onnxruntime: sentence-transformers' vectors without importing torch.

A command-line call that embeds one text should not pay for importing torch and
sentence-transformers and building the model; onnxruntime and ``tokenizers`` start in a fraction of
that (measured: docs/benchmarks.md#cold-cli-latency-issue-27). The ONNX graph is exported here, offline, from the weights already on disk (never
downloaded): once, into the user cache dir, keyed by the model files, and checked against the
torch model before it is kept. Pooling and normalisation are sentence-transformers' own (masked
mean over the tokens, then L2), so the vectors agree to ~1e-7 and a store keeps its embedder name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["OnnxSentenceModel", "exportable", "onnx_file", "export_onnx", "MAX_ABS_DIFF"]

# Bump when the exported graph changes (inputs, outputs, opset), so old cache entries are ignored.
EXPORT_VERSION = 1
OPSET = 17
MAX_ABS_DIFF = 1e-5  # an export whose vectors differ more than this from the torch model's is not kept
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Texts the export is checked on: short, padded in a batch, unicode, and past the 256-token limit.
_PROBES = ("Alice is allergic to peanuts", "", "héllo wörld, 日本語のテキスト 🎉", "memory " * 400, "Hi there!")


def _cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("mindstore")) / "onnx"


def _read_json(path: Path) -> dict | list:
    return json.loads(path.read_text(encoding="utf-8"))


def exportable(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a BERT sentence-transformers model with plain mean pooling (and
    optional normalisation): the layout this module reproduces exactly."""
    try:
        modules = _read_json(model_dir / "modules.json")
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = next(m for m in modules if m["type"].endswith("Pooling"))
        pool = _read_json(model_dir / pooling["path"] / "config.json")
        config = _read_json(model_dir / "config.json")
    except (OSError, ValueError, KeyError, StopIteration, TypeError):
        return False
    modes = {k for k, v in pool.items() if k.startswith("pooling_mode") and v is True}
    return (
        kinds in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        and modes == {"pooling_mode_mean_tokens"}
        and config.get("model_type") == "bert"
        and (model_dir / "tokenizer.json").is_file()
    )


def _model_key(model_dir: Path) -> str:
    """A digest of the model folder: the contents of its small files (configs, tokenizer, vocab)
    and the size and modification time of the large ones (the weights). The weights are not
    hashed, which every cold call would pay for; a reinstalled or edited weight file changes its mtime."""
    digest = hashlib.sha256(f"mindstore-onnx-v{EXPORT_VERSION}-opset{OPSET}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir).as_posix()}\0{stat.st_size}\0".encode())
        if stat.st_size <= 1 << 20:
            digest.update(path.read_bytes())
        else:
            digest.update(str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:32]


def onnx_file(model_dir: Path) -> Path:
    """Where the export of ``model_dir`` lives (or would live) in the user cache dir."""
    return _cache_root() / _model_key(model_dir) / "model.onnx"


def _max_seq_length(model_dir: Path) -> int:
    try:
        return int(_read_json(model_dir / "sentence_bert_config.json")["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(_read_json(model_dir / "config.json").get("max_position_embeddings", 512))


def _tokenizer(model_dir: Path):  # noqa: ANN202 - a tokenizers.Tokenizer
    """The model's fast tokenizer, set up as sentence-transformers uses it: tokenizer.json ships
    with fixed 128-token padding and truncation; sentence-transformers truncates at its
    max_seq_length (256 for MiniLM) and pads each batch only to its longest text."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=_max_seq_length(model_dir))
    tokenizer.no_padding()
    return tokenizer


class OnnxSentenceModel:
    """Tokenizer + ONNX transformer + masked mean pooling + L2 normalisation, in numpy."""

    def __init__(self, model_dir: Path, onnx_path: Path) -> None:
        import onnxruntime as ort

        self._tokenizer = tokenizer = _tokenizer(model_dir)
        self._pad_id = tokenizer.token_to_id("[PAD]") or 0
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in _INPUTS}
        feeds["input_ids"].fill(self._pad_id)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            feeds["input_ids"][row, :n] = e.ids
            feeds["attention_mask"][row, :n] = e.attention_mask
            feeds["token_type_ids"][row, :n] = e.type_ids
        tokens = self._session.run(None, feeds)[0]
        # sentence-transformers' Pooling (mean): sum of the unmasked token vectors / max(count, 1e-9)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        mean = (tokens * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        # torch.nn.functional.normalize: v / max(||v||, 1e-12)
        return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text. Texts are batched by length (as
        sentence-transformers does) so short ones are not padded to the longest of all."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        return out


def export_onnx(model_dir: Path, dest: Path | None = None) -> Path:
    """Export ``model_dir``'s transformer to ONNX at ``dest`` (default: :func:`onnx_file`), check it
    against the torch model on a few probe texts, and move it into place atomically. Needs torch
    and transformers (already installed with sentence-transformers); reads only local files."""
    import torch
    from transformers import AutoModel

    from .quiet import quiet_transformers

    dest = dest if dest is not None else onnx_file(model_dir)
    # eager attention traces to plain ONNX ops whatever the mask; local_files_only: never the hub
    with quiet_transformers():
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True)
    model.eval()
    # the reference vectors come first: tracing leaves the torch model unfit to run again
    want = _torch_vectors(model, model_dir, _PROBES)

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    # traced on a padded batch, so the attention mask stays an input of the graph
    example = torch.tensor([[101, 2023, 2003, 102], [101, 2023, 102, 0]])
    args = (example, (example != 0).long(), torch.zeros_like(example))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".model-", suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(
                TokenEmbeddings(),
                args,
                str(tmp),
                input_names=list(_INPUTS),
                output_names=["token_embeddings"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "token_embeddings")},
                opset_version=OPSET,
                dynamo=False,
            )
        diff = float(np.abs(OnnxSentenceModel(model_dir, tmp).embed(_PROBES) - want).max())
        if not diff <= MAX_ABS_DIFF:
            raise RuntimeError(f"the ONNX export differs from the torch model by {diff:.2e} (> {MAX_ABS_DIFF}); not kept")
        os.replace(tmp, dest)  # atomic: a reader sees no file or a whole, checked one
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _torch_vectors(model, model_dir: Path, texts: Sequence[str]) -> np.ndarray:  # noqa: ANN001 - a transformers model
    """sentence-transformers' vectors computed by hand, one unpadded text at a time."""
    import torch

    rows = []
    with torch.inference_mode():
        for e in _tokenizer(model_dir).encode_batch(list(texts)):
            ids = torch.tensor([e.ids])
            tokens = model(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.tensor([e.type_ids])).last_hidden_state
            rows.append(torch.nn.functional.normalize(tokens.mean(dim=1), p=2, dim=1)[0].numpy())
    return np.stack(rows)
