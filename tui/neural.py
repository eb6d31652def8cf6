"""What the TUI asks of the neural memory: recall from the drawing a binding keeps.

torch and the checkpoint load on the first recall only (in a worker), never on the way to the
first page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mindstore import InvalidInputError, MindStore, Slot
from mindstore.neural.drawing import decode_image

__all__ = ["ReadSlot", "RecallRead", "recall_drawing"]


@dataclass(frozen=True)
class ReadSlot:
    """One slot a recall's read heads read: its share of the read weight and its label."""

    slot_id: int
    weight: float
    label: str | None


@dataclass(frozen=True)
class RecallRead:
    """What recalling a slot's drawing gave: the label voted, its confidence, the slots read."""

    label: str | None
    confidence: float
    read: list[ReadSlot]


def recall_drawing(store: MindStore, slot: Slot, learners: dict[str, Any]) -> RecallRead:
    """Run the read heads of the packaged checkpoint on ``slot``'s kept drawing (read only; the
    slots read count a read). ``learners`` caches one learner per space across calls."""
    image = decode_image(slot.metadata)
    if image is None:
        raise InvalidInputError(f"slot {slot.id} keeps no drawing to recall from; bind the image again to keep one")
    from mindstore.neural import OneShotLearner

    learner = learners.get(slot.space)
    if learner is None:
        learner = learners[slot.space] = OneShotLearner.load(store=store, space=slot.space, create=False)
    prediction = learner.recall(image[None])[0]
    labels = learner.memory.last_read.labels
    read = [ReadSlot(sid, w, labels.get(sid)) for sid, w in zip(prediction.slots, prediction.weights)]
    return RecallRead(prediction.label, prediction.confidence, read)
