"""One slot: text, metadata, usage, history of events and nearest neighbours."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from mindstore import Event, Hit, NotFoundError, Slot
from mindstore.neural.drawing import IMAGE_KEY, decode_image

from ..data import dumps, fmt_scope, fmt_score, fmt_time, one_at_a_time, slot_title
from ..neural import RecallRead, recall_drawing
from ..widgets import BindingView
from .edit import Edit, EditScreen

NEIGHBOURS = 5


def _change(e: Event) -> str:
    if e.kind == "add":
        return f"+ {e.new_text or ''}"
    if e.kind == "delete":
        return f"- {e.old_text or ''}"
    if e.kind == "undelete":
        return f"+ {e.new_text or ''} (undo of the delete)"
    if e.kind == "reinforce":
        return f"= {e.new_text or ''}"
    if e.kind in ("supersede", "restore"):
        by = (e.new_metadata or {}).get("superseded_by")
        return f"superseded by [{by}]: {e.new_text or ''}".rstrip(": ") if by is not None else "current again (its newer version was deleted)"
    parts = []
    if e.old_text != e.new_text:
        parts.append(f"{e.old_text!r} -> {e.new_text!r}")
    if e.old_metadata != e.new_metadata:
        parts.append(f"metadata {dumps(e.old_metadata or {}).replace(chr(10), ' ')} -> {dumps(e.new_metadata or {}).replace(chr(10), ' ')}")
    return "; ".join(parts) or "(no change)"


class SlotScreen(Screen[None]):
    """Everything about one slot. Neighbours are searched with the slot's own key, in its scope."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("r", "reload", "Reload"),
        Binding("c", "recall", "Recall"),
    ]

    def __init__(self, slot_id: int) -> None:
        super().__init__()
        self.slot_id = slot_id
        self.slot: Slot | None = None
        self.history: list[Event] = []
        self.neighbours: list[Hit] = []
        self.recalled: RecallRead | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="slot-body"):
            yield Static("", id="slot-summary")
            yield BindingView(id="binding")
            yield Label("Text", classes="section")
            yield Static("", id="slot-text")
            yield Label("Metadata", classes="section")
            yield Static("", id="slot-metadata")
            yield Label("History", classes="section")
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield Label("Nearest neighbours (same scope)", classes="section")
            yield DataTable(id="neighbours", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#history", DataTable).add_columns("at", "kind", "change")
        self.query_one("#neighbours", DataTable).add_columns("score", "id", "text / label", "scope")
        self.action_reload()

    def action_reload(self) -> None:
        self.query_one("#slot-body").loading = True
        self._load()

    @work(thread=True, exclusive=True, group="slot")
    @one_at_a_time
    def _load(self) -> None:
        store = self.app.store
        try:
            slot = store.get(self.slot_id)
            history = store.history(self.slot_id)
            hits = store.search_vector(
                store.keys([slot.id]), space=slot.space, k=NEIGHBOURS + 1, count_reads=self.app.count_reads, **slot.scope.as_dict()
            )
            space_count = store.count(space=slot.space) if slot.label is not None else None
        except NotFoundError:
            self.app.call_from_thread(self._gone)
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            self.app.call_from_thread(self._failed, exc)
            return
        neighbours = [h for h in hits if h.slot.id != slot.id][:NEIGHBOURS]
        self.app.call_from_thread(self._show, slot, history, neighbours, space_count)

    def _gone(self) -> None:
        self.app.notify(f"Slot {self.slot_id} no longer exists", severity="warning")
        self.dismiss(None)

    def _failed(self, exc: BaseException) -> None:
        self.query_one("#slot-body").loading = False
        self.app.report_error(exc)

    def _show(self, slot: Slot, history: list[Event], neighbours: list[Hit], space_count: int | None = None) -> None:
        self.slot, self.history, self.neighbours = slot, history, neighbours
        self.sub_title = f"slot {slot.id}"
        u = slot.usage
        summary = (
            f"slot {slot.id}   space {slot.space}   scope {fmt_scope(slot.scope)}\n"
            f"created {fmt_time(slot.created_at)}   updated {fmt_time(slot.updated_at)}\n"
            f"reads {u.reads}   writes {u.writes}   last access {fmt_time(u.last_access)}"
        )
        self.query_one("#slot-summary", Static).update(Text(summary))
        self.query_one("#slot-text", Static).update(Text(slot.text if slot.text is not None else "(no text)"))
        binding = self.query_one("#binding", BindingView)
        binding.display = slot.label is not None
        if slot.label is not None:
            binding.show(slot, space_count)
        shown = dict(slot.metadata)
        image = decode_image(shown)
        if image is not None:  # 800 hex characters say nothing to a person: the drawing is shown above
            shown[IMAGE_KEY] = f"<{image.shape[0]}x{image.shape[1]} drawing, shown above>"
        self.query_one("#slot-metadata", Static).update(Text(dumps(shown)))
        table = self.query_one("#history", DataTable)
        table.clear()
        for e in history:
            table.add_row(fmt_time(e.at), Text(e.kind), Text(_change(e)), key=str(e.id))
        table = self.query_one("#neighbours", DataTable)
        table.clear()
        for h in neighbours:
            table.add_row(fmt_score(h.score), str(h.slot.id), Text(slot_title(h.slot)), Text(fmt_scope(h.slot.scope)), key=str(h.slot.id))
        self.query_one("#slot-body").loading = False
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "neighbours" and event.row_key.value is not None:
            event.stop()
            self.app.push_screen(SlotScreen(int(event.row_key.value)))

    def action_back(self) -> None:
        self.dismiss(None)

    def action_edit(self) -> None:
        if self.slot is not None:
            self.app.push_screen(EditScreen(self.slot), self._edited)

    def _edited(self, edit: Edit | None) -> None:
        if edit is None:
            return
        self.query_one("#slot-body").loading = True
        self._save(edit)

    @work(thread=True, exclusive=True, group="slot")
    @one_at_a_time
    def _save(self, edit: Edit) -> None:
        store = self.app.store
        try:
            slot = store.update(self.slot_id, text=edit.text, metadata=edit.metadata)
            events = len(store.history(self.slot_id))
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._failed, exc)
            return
        what = " and ".join(w for w, changed in (("text (re-embedded)", edit.text is not None), ("metadata", edit.metadata is not None)) if changed)
        self.app.call_from_thread(self.app.notify, f"Saved {what} of slot {slot.id}; its history has {events} events")
        self.app.call_from_thread(self.app.store_changed)
        self.app.call_from_thread(self._load)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Recall needs a binding that kept its drawing; elsewhere the key is hidden from the footer.
        return action != "recall" or (self.slot is not None and self.slot.label is not None and decode_image(self.slot.metadata) is not None)

    def action_recall(self) -> None:
        if self.slot is not None and self.check_action("recall", ()):
            self.query_one("#binding").loading = True
            self._recall(self.slot)

    @work(thread=True, exclusive=True, group="slot")
    @one_at_a_time
    def _recall(self, slot: Slot) -> None:
        try:
            result = recall_drawing(self.app.store, slot, self.app.learners)
        except Exception as exc:  # noqa: BLE001 - shown to the user, never a traceback
            self.app.call_from_thread(self._recall_failed, exc)
            return
        self.app.call_from_thread(self._recalled, slot, result)

    def _recall_failed(self, exc: BaseException) -> None:
        self.query_one("#binding").loading = False
        self.app.report_error(exc)

    def _recalled(self, slot: Slot, result: RecallRead) -> None:
        self.recalled = result
        self.query_one("#binding").loading = False
        self.query_one("#binding", BindingView).show_recall(slot, result)
        self._load()  # the slots read count a read: show this slot's new usage

    def action_delete(self) -> None:
        if self.slot is not None:
            self.app.delete_slot(self.slot, then=lambda: self.dismiss(None))
