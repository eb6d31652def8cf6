"""The first screen: spaces and scopes on the left, slots on the right, search on top."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static

from mindstore import Hit, Page

from ..data import ScopeFilter, SpaceTree, load_space_tree, one_at_a_time
from ..widgets import ScopeTree, SearchBox, SlotTable

PAGE_SIZE = 100
SEARCH_K = 50
SEARCH_DELAY = 0.4  # seconds of no typing before a live search runs


class BrowseScreen(Screen[None]):
    """Browse a space or scope page by page, or search it by meaning."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search"),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("d", "delete_slot", "Delete"),
        Binding("D", "delete_scope", "Delete scope"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.where: ScopeFilter | None = None
        self.next_cursor: str | None = None
        self.total: int | None = 0  # None while the first page is shown and its count still runs
        self.query_text = ""
        self._generation = 0  # answers from workers of an older view are dropped
        self._paging = False
        self._search_timer: Timer | None = None
        self._focus_results = False  # after Enter in the search box, the results take the focus
        self._tree_pending = False
        self._keep_row: int | None = None  # after a change: the cursor row to return to once rows land
        self._model_ready = False  # a search has answered, so the embedding model is loaded

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield ScopeTree(id="scopes")
            with Vertical(id="right"):
                yield SearchBox(placeholder="Search by meaning: type, results follow (Esc clears)", id="query")
                yield Static("Opening the store…", id="status")
                yield SlotTable(id="slots")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#slots", SlotTable).reset(search=False)
        self.query_one("#slots", SlotTable).loading = True
        if self.app.store is not None:
            self.reload()

    @property
    def table(self) -> SlotTable:
        return self.query_one("#slots", SlotTable)

    # -- loading ------------------------------------------------------------------------------

    def reload(self, *, keep_place: bool = False) -> None:
        """Re-read the sidebar and the current view (after any change to the store). With
        ``keep_place`` the cursor returns to its row (after a delete: the row that followed)."""
        if self.where is None:
            self.where = ScopeFilter(self.app.store.space)
        self._keep_row = self.table.cursor_row if keep_place and self.table.row_count else None
        self._tree_pending = True  # loaded once the first rows are on screen: they come first
        self._show_view()

    @work(thread=True, exclusive=True, group="tree")
    def _load_tree(self) -> None:
        # SQL reads only (no key index is built), so no store lock: its GROUP BYs are slow on a
        # big store (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them), and paging must not wait for them.
        try:
            spaces = load_space_tree(self.app.store)
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self.app.report_error, exc)
            return
        self.app.call_from_thread(self._show_tree, spaces)

    def _show_tree(self, spaces: list[SpaceTree]) -> None:
        self.query_one(ScopeTree).show(spaces, self.where)
        if spaces and self.where is not None and self.where.space not in {s.name for s in spaces}:
            # The text space does not exist yet (or the picked space is gone): show the first one.
            self.where = ScopeFilter(spaces[0].name)
            self.query_one(ScopeTree).show(spaces, self.where)
            self._show_view()

    def _show_view(self) -> None:
        if self.app.store is None or self.where is None:
            return  # still opening: reload() runs when the store is open
        self._generation += 1
        if self.query_text:
            self._run_search(self.query_text)
        else:
            self.table.reset(search=False)
            self.table.loading = True
            self.next_cursor = None
            self._paging = True
            self._load_page(self._generation, None)

    @work(thread=True, group="page")
    @one_at_a_time
    def _load_page(self, generation: int, cursor: str | None) -> None:
        store, where = self.app.store, self.where
        assert where is not None
        try:
            page = store.list(space=where.space, limit=PAGE_SIZE, cursor=cursor, **where.kwargs())
            if cursor is None and not page.slots and where.is_whole_space:
                # An empty space, or no text space at all: open the first space that has slots.
                other = next((sp.name for sp in store.spaces() if sp.count and sp.name != where.space), None)
                if other is not None:
                    self.app.call_from_thread(self._switch_space, generation, other)
                    return
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._page_failed, generation, exc)
            return
        self.app.call_from_thread(self._show_page, generation, page, cursor is None)

    @work(thread=True, exclusive=True, group="total")
    def _load_total(self, generation: int, where: ScopeFilter) -> None:
        # After the first page is on screen: counting scans the scope's index entries (measured:
        # docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). SQL only, so without the store lock: paging does not wait for it.
        try:
            total = self.app.store.count(space=where.space, **where.kwargs())
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self.app.report_error, exc)
            return
        self.app.call_from_thread(self._show_total, generation, total)

    def _switch_space(self, generation: int, space: str) -> None:
        if generation == self._generation:
            self.where = ScopeFilter(space)
            self._show_view()

    def _page_failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._paging = False
            self.table.loading = False
            self._then_tree()
        self.app.report_error(exc)

    def _then_tree(self) -> None:
        if self._tree_pending:
            self._tree_pending = False
            self._load_tree()

    def _show_page(self, generation: int, page: Page, first: bool) -> None:
        if generation != self._generation:
            return
        if first:
            self.total = None
            self._load_total(generation, self.where)
        self._paging = False
        self.next_cursor = page.next_cursor
        self.table.add_slots(page.slots, has_more=page.next_cursor is not None)
        if self._keep_row is not None and self._keep_row >= self.table.row_count and self.next_cursor:
            self._paging = True  # the kept row lies beyond this page: fetch the next one first
            self._load_page(generation, self.next_cursor)
            return
        self._results_shown()

    def _show_total(self, generation: int, total: int) -> None:
        if generation == self._generation:
            self.total = total
            self._status()

    def _status(self) -> None:
        assert self.where is not None
        if self.query_text:
            text = f"{self.where.describe()} — {self.table.row_count} results for {self.query_text!r}"
        else:
            more = "; ↓ or n loads more" if self.next_cursor else ""
            of = f"{self.total:,}" if self.total is not None else "… (counting)"
            text = f"{self.where.describe()} — {self.table.row_count:,} of {of} slots shown{more}"
        self.query_one("#status", Static).update(Text(text))

    @on(SlotTable.NeedMore)
    def _more(self) -> None:
        if self._paging or self.next_cursor is None or self.query_text:
            return
        self._paging = True
        self._load_page(self._generation, self.next_cursor)

    @on(ScopeTree.Picked)
    def _picked(self, event: ScopeTree.Picked) -> None:
        if event.where != self.where:
            self.where = event.where
            self._show_view()

    # -- search -------------------------------------------------------------------------------

    @on(Input.Changed, "#query")
    def _typed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DELAY, lambda: self._set_query(event.value))

    @on(Input.Submitted, "#query")
    def _submitted(self, event: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        if event.value.strip() == self.query_text:
            self.table.focus()
        else:
            self._focus_results = True
            self._set_query(event.value)

    def _set_query(self, value: str) -> None:
        value = value.strip()
        if value == self.query_text and (value or self.table.row_count):
            return
        self.query_text = value
        self._show_view()

    def _run_search(self, query: str) -> None:
        assert self.where is not None
        if self.where.space != self.app.store.space:
            self.app.notify(
                f"Search by text works in the text space {self.app.store.space!r}; pick it in the sidebar",
                severity="warning",
            )
            self.query_text = ""
            self._show_view()
            return
        self.table.reset(search=True)
        self.table.loading = True
        if not self._model_ready:
            self.query_one("#status", Static).update(Text(
                f"Searching for {query!r}: loading the embedding model first (once per session, "
                "several seconds on a CPU; later searches take milliseconds)…"))
        self._search(self._generation, query)

    @work(thread=True, exclusive=True, group="search")
    @one_at_a_time
    def _search(self, generation: int, query: str) -> None:
        store, where = self.app.store, self.where
        assert where is not None
        try:
            hits = store.search(query, k=SEARCH_K, count_reads=self.app.count_reads, **where.kwargs())
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._page_failed, generation, exc)
            return
        self.app.call_from_thread(self._show_hits, generation, hits)

    def _show_hits(self, generation: int, hits: list[Hit]) -> None:
        self._model_ready = True
        if generation != self._generation:
            return
        self.table.add_hits(hits)
        self._results_shown()

    def _results_shown(self) -> None:
        """After a page or a search landed: stop the indicator, return to the kept row, focus if
        asked, update status."""
        self.table.loading = False
        if self._keep_row is not None:
            if self.table.row_count:
                self.table.move_cursor(row=min(self._keep_row, self.table.row_count - 1), animate=False)
            self._keep_row = None
        if self._focus_results:
            self._focus_results = False
            self.table.focus()
        self._status()
        self._then_tree()

    def action_focus_search(self) -> None:
        self.query_one("#query", Input).focus()

    @on(SearchBox.ToResults)
    def _to_results(self) -> None:
        """↓ from the search box: a search still waiting for its typing pause runs now, and the
        table takes the focus, its highlighted row the one Enter opens and d deletes."""
        box = self.query_one("#query", Input)
        if self._search_timer is not None:
            self._search_timer.stop()
        if box.value.strip() != self.query_text:
            self._focus_results = True
            self._set_query(box.value)
        else:
            self.table.focus()

    def action_clear_search(self) -> None:
        box = self.query_one("#query", Input)
        if self._search_timer is not None:
            self._search_timer.stop()
        if box.value or self.query_text:
            box.value = ""
            self.query_text = ""
            self._show_view()
        self.table.focus()

    # -- open, delete, reload -----------------------------------------------------------------

    @on(SlotTable.Opened)
    def _open(self, event: SlotTable.Opened) -> None:
        from .slot import SlotScreen

        self.app.push_screen(SlotScreen(event.slot_id))

    def action_delete_slot(self) -> None:
        slot_id = self.table.current_id
        if slot_id is None:
            self.app.notify("No slot highlighted", severity="warning")
            return
        self.app.delete_slot_id(slot_id)

    def action_delete_scope(self) -> None:
        if self.where is None or self.where.is_whole_space:
            self.app.notify(
                "Pick a user, agent or session in the sidebar first; a whole space is not deleted from here",
                severity="warning",
            )
            return
        self.app.delete_scope(self.where, self.total if not self.query_text else None)

    def action_reload(self) -> None:
        if self.app.store is not None:
            self.reload()
