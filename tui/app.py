"""``mindstore tui``: browse, search, edit and delete the slots of a store in the terminal.

    MindStoreApp("sqlite:///memory.db").run()     # or: MindStoreApp(store=an_open_store)

Every store call runs in a worker thread; the UI thread only draws.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel

from mindstore import MindStore, Slot

from .data import (
    DeletedSlots,
    ScopeFilter,
    capture_for_undo,
    describe_error,
    one_at_a_time,
    restore,
    slot_title,
)
from .screens import BrowseScreen, ConfirmScreen, ErrorScreen, HelpScreen

__all__ = ["MindStoreApp", "run"]


class MindStoreApp(App[None]):
    """The mindstore TUI over a database URL (opened here, closed on exit) or an open store."""

    TITLE = "mindstore"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("u", "undo", "Undo delete"),
    ]

    def __init__(self, db: str | None = None, *, store: MindStore | None = None, count_reads: bool = False) -> None:
        """``count_reads``: whether the TUI's searches and neighbour lists count as reads of the
        slots they show. Off by default: a person looking at memories must not change which ones
        the store evicts or overwrites; on, the TUI reads as the application does."""
        super().__init__()
        self.db = db
        self.count_reads = count_reads
        self.store: MindStore | None = store
        self._owns_store = store is None
        self.open_error: str | None = None
        self.last_deleted: DeletedSlots | None = None
        self.store_lock = threading.RLock()  # see data.one_at_a_time
        self.browse = BrowseScreen()
        self.learners: dict[str, Any] = {}  # one OneShotLearner per neural space, loaded on first recall

    def on_mount(self) -> None:
        self.push_screen(self.browse)
        if self.store is None:
            self._open()
        else:
            self.sub_title = self._where()

    def _where(self) -> str:
        return self.store.url if self.store is not None else (self.db or "")

    @work(thread=True, exclusive=True, group="open")
    def _open(self) -> None:
        try:
            store = MindStore(self.db)
        except Exception as exc:  # noqa: BLE001 - a clear screen, never a traceback
            self.call_from_thread(self._open_failed, exc)
            return
        self.call_from_thread(self._opened, store)

    def _opened(self, store: MindStore) -> None:
        self.store = store
        self.sub_title = self._where()
        self.browse.reload()

    def _open_failed(self, exc: BaseException) -> None:
        self.open_error = describe_error(exc)
        self.push_screen(ErrorScreen(f"Cannot open the store {self.db or '(default location)'}", self.open_error))

    def on_unmount(self) -> None:
        if self._owns_store and self.store is not None:
            self.store.close()

    # -- shared actions -------------------------------------------------------------------------

    def notify(  # type: ignore[override]
        self, message: str, *, title: str = "", severity: SeverityLevel = "information", timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """As App.notify, but plain text by default: messages quote stored text and ids."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def report_error(self, exc: BaseException) -> None:
        self.notify(describe_error(exc), title="mindstore", severity="error", timeout=8)

    def store_changed(self) -> None:
        """Reload the browse view after an edit, delete or undo, its cursor kept in place."""
        if self.store is not None:
            self.browse.reload(keep_place=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Nothing to undo before a store is open: False also hides the key from the footer.
        return not (action == "undo" and self.store is None)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def delete_slot_id(self, slot_id: int) -> None:
        self._fetch_then_delete(slot_id)

    @work(thread=True, group="write")
    @one_at_a_time
    def _fetch_then_delete(self, slot_id: int) -> None:
        try:
            slot = self.store.get(slot_id)
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.report_error, exc)
            return
        self.call_from_thread(self.delete_slot, slot)

    def delete_slot(self, slot: Slot, then: Callable[[], None] | None = None) -> None:
        """Ask, then delete one slot; ``then`` runs after a confirmed delete."""

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(slot=slot, then=then)

        self.push_screen(ConfirmScreen(f"Delete slot {slot.id}?", slot_title(slot, 200)), answered)

    def delete_scope(self, where: ScopeFilter, count: int | None) -> None:
        """Ask, then delete every slot of a user, agent or session in one space."""
        n = f"all {count:,}" if count is not None else "all"

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(where=where)

        self.push_screen(
            ConfirmScreen(f"Delete {n} slots of {where.describe()}?", "Undo (u) puts them back as they were, ids included.",
                          confirm_label="Delete all"),
            answered,
        )

    @work(thread=True, group="write")
    @one_at_a_time
    def _delete(self, *, slot: Slot | None = None, where: ScopeFilter | None = None, then: Callable[[], None] | None = None) -> None:
        store = self.store
        try:
            record = capture_for_undo(store, slot=slot, where=where)
            if slot is not None:
                store.delete(slot.id)
                n = 1
            else:
                assert where is not None
                n = store.delete_all(space=where.space, **where.kwargs())
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.report_error, exc)
            return
        self.call_from_thread(self._deleted, record, n, then)

    def _deleted(self, record: DeletedSlots, n: int, then: Callable[[], None] | None) -> None:
        self.last_deleted = record
        hint = "Press u to undo." if record.restorable else f"This cannot be undone: {record.reason}."
        self.notify(f"Deleted {n:,} slot{'s' if n != 1 else ''} ({record.what}). {hint}")
        if then is not None:
            then()
        self.store_changed()

    def action_undo(self) -> None:
        record = self.last_deleted
        if record is None:
            self.notify("Nothing to undo in this session", severity="warning")
        elif not record.restorable:
            self.notify(f"Cannot undo deleting {record.what}: {record.reason}", severity="warning")
        else:
            self.last_deleted = None
            self._undo(record)

    @work(thread=True, group="write")
    @one_at_a_time
    def _undo(self, record: DeletedSlots) -> None:
        try:
            slots = restore(self.store, record)
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.report_error, exc)
            return
        ids = ", ".join(str(s.id) for s in slots[:5]) + (" …" if len(slots) > 5 else "")
        self.call_from_thread(
            self.notify, f"Restored {len(slots):,} slot{'s' if len(slots) != 1 else ''} of {record.what} as they were (ids {ids})"
        )
        self.call_from_thread(self.store_changed)


def run(db: str | None) -> None:
    """Run the TUI on the store at ``db`` (a SQLAlchemy URL; None: the default store)."""
    app = MindStoreApp(db)
    app.run()
    if app.open_error is not None:
        print(f"mindstore tui: {app.open_error}", file=sys.stderr)
        raise SystemExit(1)
