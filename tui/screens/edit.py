"""Edit a slot's text and metadata; the caller saves through MindStore.update."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static, TextArea

from mindstore import Slot

from ..data import dumps


@dataclass(frozen=True)
class Edit:
    """What changed; None for a part left as it was."""

    text: str | None
    metadata: dict[str, Any] | None


class EditScreen(ModalScreen[Edit | None]):
    """Dismisses with an :class:`Edit`, or None when cancelled or nothing changed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, slot: Slot) -> None:
        super().__init__()
        self.slot = slot

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-box"):
            yield Label(f"Edit slot {self.slot.id}  (Ctrl+S saves and re-embeds, Esc cancels)", id="edit-title")
            yield Label("Text")
            yield TextArea(self.slot.text or "", id="edit-text", soft_wrap=True)
            yield Label("Metadata (a JSON object)")
            yield TextArea(dumps(self.slot.metadata), id="edit-meta", language=None)
            yield Static("", id="edit-error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#edit-text", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def _error(self, message: str) -> None:
        self.query_one("#edit-error", Static).update(message)

    def action_save(self) -> None:
        text = self.query_one("#edit-text", TextArea).text
        raw = self.query_one("#edit-meta", TextArea).text.strip() or "{}"
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._error(f"Metadata is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            return
        if not isinstance(meta, dict):
            self._error("Metadata must be a JSON object, like {\"topic\": \"food\"}")
            return
        if not text.strip() and self.slot.text is not None:
            self._error("Text cannot be empty; delete the slot instead (d)")
            return
        new_text = text if text != (self.slot.text or "") and text.strip() else None
        new_meta = meta if meta != self.slot.metadata else None
        self.dismiss(Edit(new_text, new_meta) if new_text is not None or new_meta is not None else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
