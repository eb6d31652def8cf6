"""The slot table: rows arrive a page at a time; nearing the end asks for more."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from mindstore import Hit, Slot

from ..data import fmt_scope, fmt_score, fmt_time, slot_title

BROWSE_COLUMNS = ("id", "text / label", "scope", "created", "last access", "reads")
SEARCH_COLUMNS = ("score",) + BROWSE_COLUMNS
LOOKAHEAD = 20  # rows left below the cursor (or the view) before the next page is asked for


class SlotTable(DataTable):
    """Rows of slots. Posts :class:`NeedMore` near the end, :class:`Opened` on Enter."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("n", "more", "More rows")]

    class NeedMore(Message):
        """The user is near the last loaded row."""

    class Opened(Message):
        def __init__(self, slot_id: int) -> None:
            self.slot_id = slot_id
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.has_more = False
        self.searching = False

    def reset(self, *, search: bool) -> None:
        self.searching = search
        self.has_more = False
        self.clear(columns=True)
        self.add_columns(*(SEARCH_COLUMNS if search else BROWSE_COLUMNS))

    def add_slots(self, slots: list[Slot], *, has_more: bool) -> None:
        for s in slots:
            self.add_row(*self._cells(s), key=str(s.id))
        self.has_more = has_more

    def add_hits(self, hits: list[Hit]) -> None:
        # The score the rows are ordered by (fused in hybrid search), not the cosine: the column
        # must go down as the rows do.
        for h in hits:
            self.add_row(fmt_score(h.rank_score), *self._cells(h.slot), key=str(h.slot.id))
        self.has_more = False

    @staticmethod
    def _cells(s: Slot) -> tuple[str | Text, ...]:
        # User text goes in as Text: a "[" in a memory must not be read as markup.
        return (str(s.id), Text(slot_title(s, 40)), Text(fmt_scope(s.scope)), fmt_time(s.created_at), fmt_time(s.usage.last_access), str(s.usage.reads))

    @property
    def current_id(self) -> int | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None

    def action_more(self) -> None:
        if self.has_more:
            self.post_message(self.NeedMore())

    def _near_end(self) -> bool:
        bottom = max(self.cursor_row, int(self.scroll_y) + self.scrollable_content_region.height)
        return self.has_more and bottom >= self.row_count - LOOKAHEAD

    def watch_cursor_coordinate(self, old, new) -> None:
        super().watch_cursor_coordinate(old, new)
        if self._near_end():
            self.post_message(self.NeedMore())

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._near_end():
            self.post_message(self.NeedMore())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Opened(int(event.row_key.value)))
