"""Neural memory: a memory-augmented neural network (Santoro et al. 2016's architecture) for
one-shot binding, with dense or sparse (top-K, Rae et al. 2016) memory access, and
``OneShotLearner``, which puts a checkpoint's heads on a MindStore space so that bindings last.
(In the packaged checkpoint only the conv encoders are trained; docs/neural.md, "What is trained".)

Names are imported lazily so that ``mindstore.neural.cli`` (and ``mindstore --help``) does not
pay for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

# The packaged checkpoint (docs/neural.md says which command made it).
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "mann_sparse.pt"

_NAMES = {
    "MANN": "model", "MANNConfig": "config", "LSTMBaseline": "model", "build_model": "model",
    "DenseMemory": "memory", "SparseMemory": "memory", "TopK": "memory", "ExactTopK": "memory",
    "TrainConfig": "config", "load_checkpoint": "train",
    "save_checkpoint": "train", "accuracy_by_instance": "evaluate",
    "load_omniglot": "data", "OmniglotEpisodes": "data", "SyntheticEpisodes": "data",
    "PersistentMemory": "persistent", "OneShotLearner": "learner", "Prediction": "learner",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
