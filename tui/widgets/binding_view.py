"""A neural binding (a slot of a MANN space): its label, its drawing, its usage, what a recall read.

The drawing is the one ``OneShotLearner.bind`` kept in the slot's metadata (``drawing.py``), drawn
in half-block characters. ``Recall`` runs the learner on that drawing and lists the slots its read
heads read, with their share of the read weight (``tui.neural.RecallRead``, from the slot screen).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from mindstore import Slot
from mindstore.neural.drawing import decode_image, render_blocks

from ..data import fmt_score, fmt_time
from ..neural import RecallRead


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n:,} times"


class BindingView(Vertical):
    """Shown on the slot screen for slots that carry a label (hidden otherwise)."""

    def compose(self) -> ComposeResult:
        yield Label("Neural binding", classes="section")
        yield Static("", id="binding-summary")
        yield Static("", id="binding-image")
        yield Label("Recall from this drawing (c)", classes="section")
        yield Static("Press c to run the read heads on this drawing and see which slots they read "
                     "(their reads count as usage).", id="recall-summary")
        yield DataTable(id="recall-read", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#recall-read", DataTable).add_columns("weight", "id", "label", "")

    def show(self, slot: Slot, space_count: int | None) -> None:
        image = decode_image(slot.metadata)
        u = slot.usage
        in_space = f" of {space_count:,} in space {slot.space}" if space_count is not None else ""
        self.query_one("#binding-summary", Static).update(Text(
            f"label {slot.label}   slot {slot.id}{in_space}\n"
            f"read {_times(u.reads)} (recalls and searches; the TUI's own look-ups do not count), "
            f"written {_times(u.writes)} (bind and LRUA updates), "
            f"last access {fmt_time(u.last_access)}"
        ))
        self.query_one("#binding-image", Static).update(
            Text(render_blocks(image)) if image is not None
            else Text("(no drawing kept in this slot; OneShotLearner.bind and `mindstore bind` keep one)")
        )

    def show_recall(self, slot: Slot, result: RecallRead) -> None:
        label = result.label if result.label is not None else "(nothing bound)"
        verdict = "its own label" if result.label == slot.label else f"not its label {slot.label!r}"
        self.query_one("#recall-summary", Static).update(Text(
            f"recalled {label} with confidence {result.confidence:.2f} ({verdict}); "
            f"the heads read {len(result.read)} slots:"
        ))
        table = self.query_one("#recall-read", DataTable)
        table.clear()
        for r in result.read:
            mark = "this slot" if r.slot_id == slot.id else ""
            table.add_row(fmt_score(r.weight), str(r.slot_id), Text(r.label or "-"), mark, key=str(r.slot_id))
