"""The TUI driven through Textual's pilot against a real SQLite store and the real MiniLM model."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea

from mindstore import NotFoundError
from mindstore.tui.app import MindStoreApp
from mindstore.tui.data import ScopeFilter
from mindstore.tui.screens import (
    ConfirmScreen,
    EditScreen,
    ErrorScreen,
    HelpScreen,
    SlotScreen,
)
from mindstore.tui.widgets import ScopeTree, SlotTable
from tests.tui.conftest import notifications
from tests.tui.scenes import DEMO as FACTS
from tests.tui.scenes import DEMO_FILLER as FILLER
from tests.tui.scenes import pick, settle

from conftest import FUSION_QUERY, FUSION_TEXTS

pytestmark = pytest.mark.anyio
TOTAL = sum(len(v) for v in FACTS.values()) + FILLER
SIZE = (120, 36)


def table(app) -> SlotTable:
    return app.screen.query_one("#slots", SlotTable)


def cell(t: DataTable, row: int, column: int) -> str:
    return str(t.get_row_at(row)[column])


def row_texts(t: DataTable, store) -> list[str]:
    """The full text of each row's slot, in table order (the table cuts long texts)."""
    return [store.get(int(t.coordinate_to_cell_key((i, 0)).row_key.value)).text for i in range(t.row_count)]


async def open_slot(app: MindStoreApp, pilot: Pilot) -> SlotScreen:
    """Open the browse table's highlighted slot; its screen, once its worker has run."""
    table(app).focus()
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, SlotScreen)
    return app.screen


async def edit_slot(app: MindStoreApp, pilot: Pilot) -> tuple[int, EditScreen]:
    """Open the highlighted slot and press e: (its id, the edit screen)."""
    slot_id = (await open_slot(app, pilot)).slot_id
    await pilot.press("e")
    await pilot.pause()
    assert isinstance(app.screen, EditScreen)
    return slot_id, app.screen


def _walk(node):
    for child in node.children:
        yield child
        yield from _walk(child)


async def test_browse_shows_spaces_scopes_and_the_first_page(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        t = table(app)
        assert t.row_count == 100 and t.has_more
        assert cell(t, 0, 1) == FACTS["alice"][0]
        labels = [str(n.label) for n in _walk(app.screen.query_one(ScopeTree).root)]
        assert f"chat ({TOTAL})" in labels
        assert "alice (3)" in labels and "bob (2)" in labels and "logger (130)" in labels and "night-1 (130)" in labels
        assert f"100 of {TOTAL} slots shown" in str(app.screen.query_one("#status", Static).render())


async def test_scrolling_to_the_end_loads_the_next_page(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        t = table(app)
        t.focus()
        await pilot.press("pagedown")
        await settle(pilot)
        assert t.row_count == 100  # one screen down is far from the end
        await pilot.press("ctrl+end")
        await settle(pilot)
        assert t.row_count == TOTAL and not t.has_more
        assert cell(t, TOTAL - 1, 0) == str(max(s.id for s in store.list(limit=1000).slots))


async def test_picking_a_user_shows_only_their_slots(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pick(app, ScopeFilter("chat", user_id="bob"))
        await settle(pilot)
        t = table(app)
        assert row_texts(t, store) == FACTS["bob"]


async def test_search_shows_the_closest_slot_first_with_scores(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"what food is alice allergic to", "enter")
        await settle(pilot)
        t = table(app)
        assert t.searching
        assert cell(t, 0, 2) == "Alice is allergic to peanuts"
        assert 0 < float(cell(t, 0, 0)) <= 1 and float(cell(t, 0, 0)) >= float(cell(t, 1, 0))
        await pilot.press("escape")
        await settle(pilot)
        assert not t.searching and t.row_count == 100


async def test_the_score_column_goes_down_the_rows_as_hybrid_search_ranks_them(store) -> None:
    query = FUSION_QUERY.rstrip("?")  # "?" in the search box opens the help
    puppy, invoice = (s.id for s in store.add_many(list(FUSION_TEXTS), user_id="fusion")[:2])
    cosine = {h.slot.id: h.score for h in store.search(query, k=len(FUSION_TEXTS), user_id="fusion", count_reads=False)}
    assert cosine[invoice] < cosine[puppy]  # hybrid search ranks the invoice first all the same
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pick(app, ScopeFilter("chat", user_id="fusion"))
        await settle(pilot)
        await pilot.press("slash", *query, "enter")
        await settle(pilot)
        t = table(app)
        assert t.searching and [cell(t, r, 1) for r in range(2)] == [str(invoice), str(puppy)]
        shown = [float(cell(t, r, 0)) for r in range(t.row_count)]
        assert t.row_count >= 2 and all(a >= b for a, b in zip(shown, shown[1:])), shown


async def test_opening_a_slot_shows_text_metadata_history_and_neighbours(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_slot(app, pilot)
        slot_id = screen.slot_id
        assert str(screen.query_one("#slot-text", Static).render()) == FACTS["alice"][0]
        assert '"source": "demo"' in str(screen.query_one("#slot-metadata", Static).render())
        history = screen.query_one("#history", DataTable)
        assert history.row_count == 1 and cell(history, 0, 1) == "add"
        neighbours = screen.query_one("#neighbours", DataTable)
        ids = [int(cell(neighbours, i, 1)) for i in range(neighbours.row_count)]
        assert ids and slot_id not in ids
        assert all(store.get(i).user_id == "alice" for i in ids)
        await pilot.press("escape")
        assert app.screen is app.browse


async def test_editing_a_slot_saves_through_update_and_grows_its_history(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        slot_id, edit = await edit_slot(app, pilot)
        edit.query_one("#edit-text", TextArea).text = "Alice is allergic to peanuts and shellfish"
        edit.query_one("#edit-meta", TextArea).text = '{"source": "demo", "checked": true}'
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, SlotScreen)
        slot = store.get(slot_id)
        assert slot.text == "Alice is allergic to peanuts and shellfish"
        assert slot.metadata == {"source": "demo", "checked": True}
        assert [e.kind for e in store.history(slot_id)] == ["add", "update"]
        assert app.screen.query_one("#history", DataTable).row_count == 2
        assert store.search("shellfish allergy", user_id="alice", k=1)[0].slot.id == slot_id


async def test_edit_rejects_metadata_that_is_not_a_json_object(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        slot_id, edit = await edit_slot(app, pilot)
        edit.query_one("#edit-meta", TextArea).text = "{not json"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        assert "not valid JSON" in str(app.screen.query_one("#edit-error", Static).render())
        await pilot.press("escape")
        await settle(pilot)
        assert [e.kind for e in store.history(slot_id)] == ["add"]


async def test_delete_asks_first_and_cancel_keeps_the_slot(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).focus()
        slot_id = table(app).current_id
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # Cancel has the focus
        await settle(pilot)
        assert app.screen is app.browse
        assert store.get(slot_id).text == FACTS["alice"][0]


async def test_delete_confirmed_removes_the_slot_and_undo_puts_it_back_as_it_was(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table(app).focus()
        slot_id = table(app).current_id
        store.search("peanut allergy", user_id="alice", k=1)  # the application reads it: usage to keep
        before = store.get(slot_id)
        assert before.usage.reads == 1
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        with pytest.raises(NotFoundError):
            store.get(slot_id)
        assert store.count() == TOTAL - 1
        assert row_texts(table(app), store)[0] == FACTS["alice"][1]
        await pilot.press("u")
        await settle(pilot)
        back = store.get(slot_id)  # the same id, not a copy under a new one
        assert (back.text, back.metadata, back.scope) == (before.text, before.metadata, before.scope)
        assert (back.usage, back.created_at, back.updated_at) == (before.usage, before.created_at, before.updated_at)
        assert [e.kind for e in store.history(slot_id)] == ["add", "delete", "undelete"]  # one id, one history
        assert [s.id for s in store.list(user_id="alice").slots if s.text == before.text] == [slot_id]
        assert store.search("peanut allergy", user_id="alice", k=1)[0].slot.id == slot_id  # searchable again
        assert store.count() == TOTAL
        assert any("as they were" in n.message for n in notifications(app))


async def test_deleting_a_scope_removes_all_its_slots_after_confirmation(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pick(app, ScopeFilter("chat", user_id="bob"))
        await settle(pilot)
        bob_ids = sorted(s.id for s in store.list(user_id="bob").slots)
        table(app).focus()
        await pilot.press("D")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert store.count(user_id="bob") == 2
        await pilot.press("D")
        await settle(pilot)
        await pilot.click("#confirm")
        await settle(pilot)
        assert store.count(user_id="bob") == 0 and store.count() == TOTAL - 2
        assert table(app).row_count == 0
        await pilot.press("u")
        await settle(pilot)
        assert sorted(s.text for s in store.list(user_id="bob").slots) == sorted(FACTS["bob"])
        assert sorted(s.id for s in store.list(user_id="bob").slots) == bob_ids  # with their ids


async def test_help_screen_opens_and_closes(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is app.browse


async def test_question_mark_opens_help_from_the_search_box_without_searching(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"cello", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        box = app.screen.query_one("#query", Input)
        assert app.screen is app.browse and app.focused is box
        assert box.value == "cello"  # no "?" typed
        await pilot.press("ctrl+a", "ctrl+k", "question_mark")  # an empty box: still help
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause(0.6)
        await settle(pilot)
        assert box.value == "" and app.browse.query_text == "" and not table(app).searching


async def test_down_then_enter_from_the_search_box_opens_the_highlighted_slot(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"what food is alice allergic to", "down")  # before the live search ran
        await settle(pilot)
        t = table(app)
        assert app.focused is t and t.searching and t.cursor_row == 0
        highlighted = t.current_id
        assert store.get(highlighted).text == "Alice is allergic to peanuts"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, SlotScreen) and app.screen.slot_id == highlighted
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        with pytest.raises(NotFoundError):
            store.get(highlighted)
        assert store.count() == TOTAL - 1  # that slot, and only it


async def test_down_from_the_search_box_after_the_results_landed_focuses_them(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"cello")
        await pilot.pause(0.6)
        await settle(pilot)
        t = table(app)
        assert isinstance(app.focused, Input) and t.searching
        first = t.current_id
        await pilot.press("down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, SlotScreen) and app.screen.slot_id == first


async def test_a_delete_from_the_table_keeps_the_cursor_in_place(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        t = table(app)
        t.focus()
        await pilot.press("down", "down", "down")
        assert t.cursor_row == 3
        following = int(t.coordinate_to_cell_key((4, 0)).row_key.value)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert t.cursor_row == 3 and t.current_id == following  # the row after the deleted one
        await pilot.press("ctrl+end")
        await settle(pilot)
        t.move_cursor(row=120)  # on the second page: it is loaded again to get back there
        await pilot.pause()
        following = int(t.coordinate_to_cell_key((121, 0)).row_key.value)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert t.cursor_row == 120 and t.current_id == following
        await pilot.press("u")
        await settle(pilot)
        assert t.cursor_row == 120  # undo keeps the place too


async def test_browsing_and_searching_do_not_count_as_reads(store) -> None:
    def usage() -> dict:
        return {s.id: s.usage for s in store.list(limit=1000).slots}

    before = usage()
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"what food is alice allergic to", "enter")
        await settle(pilot)
        await pilot.press("enter")  # open the first hit: its neighbours are searched too
        await settle(pilot)
        assert isinstance(app.screen, SlotScreen) and app.screen.query_one("#neighbours", DataTable).row_count
    assert usage() == before  # looking changed nothing that orders eviction
    app = MindStoreApp(store=store, count_reads=True)  # configured: the TUI reads as the application does
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"what food is alice allergic to", "enter")
        await settle(pilot)
    assert sum(u.reads for u in usage().values()) > sum(u.reads for u in before.values())


async def test_a_database_that_cannot_be_opened_shows_a_message_not_a_traceback() -> None:
    app = MindStoreApp("nosuchdriver://nowhere/db")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        assert "not a database URL" in str(app.screen.query_one("#error-message", Static).render()) or "cannot use database" in app.open_error
        await pilot.press("q")
    assert app.open_error


async def test_a_lost_database_is_reported_and_the_app_keeps_running(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        store.close()
        await pilot.press("r")
        await settle(pilot)
        assert app.is_running and app.screen is app.browse
        assert any(n.severity == "error" and "closed" in n.message for n in notifications(app))


async def test_search_runs_while_typing_without_enter(store) -> None:
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"du q cello")  # d, u and q are keys of the screen too
        assert isinstance(app.focused, Input)  # typing stays in the box while results arrive
        await pilot.pause(0.6)
        await settle(pilot)
        t = table(app)
        assert t.searching and row_texts(t, store)[0] == FACTS["bob"][0]


async def test_a_store_of_vector_slots_opens_on_its_space_and_shows_labels(tmp_path) -> None:
    import numpy as np

    from mindstore import Config, MindStore

    with MindStore(f"sqlite:///{tmp_path / 'v.db'}", config=Config(index_dir=tmp_path / "index")) as store:
        store.create_space("omniglot", dim=8, key_source="controller-test")
        keys = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
        store.add_vectors(keys, space="omniglot", labels=[f"glyph-{i}" for i in range(12)], session_id="episode-1")
        app = MindStoreApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            t = table(app)
            assert app.browse.where == ScopeFilter("omniglot")
            assert t.row_count == 12 and cell(t, 0, 1) == "[label] glyph-0"
            t.focus()
            await pilot.press("enter")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, SlotScreen)
            assert str(screen.query_one("#binding-summary", Static).render()).startswith("label glyph-0")
            assert "no drawing kept" in str(screen.query_one("#binding-image", Static).render())
            assert not screen.check_action("recall", ())  # nothing to recall from
            assert screen.query_one("#neighbours", DataTable).row_count == 5
            await pilot.press("d")
            await settle(pilot)
            await pilot.press("y")
            await settle(pilot)
            assert store.count(space="omniglot") == 11
            await pilot.press("u")
            await settle(pilot)
            assert store.count(space="omniglot") == 11  # no text to re-embed: undo says so and does nothing
            assert any("Cannot undo" in n.message for n in notifications(app))


async def test_brackets_in_stored_text_and_ids_are_shown_as_written(store) -> None:
    text = "Remember [bold]this[/] and [red"
    slot = store.add(text, user_id="[carol]", dedup=False)
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pick(app, ScopeFilter("chat", user_id="[carol]"))
        await settle(pilot)
        t = table(app)
        assert cell(t, 0, 1) == text and cell(t, 0, 2) == "u:[carol]"
        t.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert str(app.screen.query_one("#slot-text", Static).render()) == text
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is app.browse and store.count(user_id="[carol]") == 0
        assert any(f"slot {slot.id}" in n.message for n in notifications(app))


class GatedEmbedder:
    """The real embedder, held at a gate: a search stays in flight until the test opens it."""

    def __init__(self, inner) -> None:
        import threading

        self.inner, self.gate = inner, threading.Event()
        self.name, self.dim = inner.name, inner.dim

    def embed(self, texts, *, batch_size: int = 64):
        assert self.gate.wait(30), "the test never opened the gate"
        return self.inner.embed(texts, batch_size=batch_size)


async def test_the_ui_keeps_working_while_a_search_is_in_flight(template, tmp_path, embedder) -> None:
    import shutil

    from mindstore import Config, MindStore

    shutil.copy(template / "memory.db", tmp_path / "memory.db")
    gated = GatedEmbedder(embedder)
    with MindStore(f"sqlite:///{tmp_path / 'memory.db'}", embedder=gated, config=Config(index_dir=tmp_path / "i")) as store:
        app = MindStoreApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            try:
                await pilot.press("slash", *"marathon", "enter")
                await pilot.pause(0.2)
                t = table(app)
                assert t.loading and t.searching  # the loading indicator is up while the worker waits
                await pilot.press("f1")  # and the app still answers keys
                assert isinstance(app.screen, HelpScreen)
                await pilot.press("escape")
            finally:
                gated.gate.set()
            await settle(pilot)
            assert not t.loading and row_texts(t, store)[0] == FACTS["bob"][1]


async def test_the_first_search_says_it_is_loading_the_model(template, tmp_path, embedder) -> None:
    import shutil

    from mindstore import Config, MindStore

    shutil.copy(template / "memory.db", tmp_path / "memory.db")
    gated = GatedEmbedder(embedder)  # a model that takes as long as the test likes to load
    with MindStore(f"sqlite:///{tmp_path / 'memory.db'}", embedder=gated, config=Config(index_dir=tmp_path / "i")) as store:
        app = MindStoreApp(store=store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)

            def status() -> str:
                return str(app.screen.query_one("#status", Static).render())

            try:
                await pilot.press("slash", *"marathon", "enter")
                await pilot.pause(0.2)
                assert table(app).loading and "loading the embedding model" in status()
            finally:
                gated.gate.set()
            await settle(pilot)
            assert "results for 'marathon'" in status() and "model" not in status()
            await pilot.press("slash", "ctrl+a", "ctrl+k", *"cello", "enter")
            await pilot.pause(0)
            assert "model" not in status()  # once per session


def test_the_sidebar_lists_the_largest_scopes_and_says_when_there_are_more(tmp_path) -> None:
    import numpy as np

    from mindstore import Config, MindStore
    from mindstore.tui.data import MAX_SCOPES_SHOWN, load_space_tree

    with MindStore(f"sqlite:///{tmp_path / 'v.db'}", config=Config(index_dir=tmp_path / "index")) as store:
        store.create_space("v", dim=4, key_source="test")
        rng = np.random.default_rng(0)
        for u in range(MAX_SCOPES_SHOWN + 1):
            store.add_vectors(rng.normal(size=(2 if u == 7 else 1, 4)), space="v", user_id=f"u{u:03d}")
        (tree,) = load_space_tree(store)
    users = tree.scopes["user_id"]
    assert tree.count == MAX_SCOPES_SHOWN + 2 and len(users) == MAX_SCOPES_SHOWN and tree.more["user_id"]
    assert (users[0].value, users[0].count) == ("u007", 2)
    assert tree.scopes["agent_id"] == [] and not tree.more["agent_id"]
