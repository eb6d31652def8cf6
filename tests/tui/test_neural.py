"""The neural binding view: a MANN space's slot shows its label, its drawing and what a recall read.

Real app (Textual pilot), real SQLite store, the packaged checkpoint binding five drawings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from mindstore import Config, MindStore
from mindstore.neural.drawing import render_blocks
from mindstore.tui.app import MindStoreApp
from mindstore.tui.data import ScopeFilter
from mindstore.tui.screens import SlotScreen
from mindstore.tui.widgets import BindingView, SlotTable
from tests.conftest import packaged_image_size
from tests.tui.scenes import bind_glyphs, glyphs, pick, settle

pytestmark = pytest.mark.anyio
SIZE = (120, 60)
S = packaged_image_size()


@pytest.fixture
def neural_store(template: Path, tmp_path: Path, embedder) -> Iterator[MindStore]:
    shutil.copy(template / "memory.db", tmp_path / "memory.db")
    with MindStore(f"sqlite:///{tmp_path / 'memory.db'}", embedder=embedder, config=Config(index_dir=tmp_path / "index")) as s:
        bind_glyphs(s)
        yield s


async def open_first_glyph(app: MindStoreApp, pilot) -> SlotScreen:
    await settle(pilot)
    pick(app, ScopeFilter("glyphs"))
    await settle(pilot)
    t = app.screen.query_one("#slots", SlotTable)
    assert t.row_count == len(glyphs())
    assert str(t.get_row_at(0)[1]) == "[label] ring"
    t.focus()
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, SlotScreen)
    return app.screen


async def test_a_neural_slot_shows_its_label_drawing_and_the_slots_a_recall_read(neural_store: MindStore) -> None:
    app = MindStoreApp(store=neural_store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_glyph(app, pilot)
        slot_id = screen.slot_id
        reads_before = neural_store.get(slot_id).usage.reads
        shown_before = screen.slot.usage.reads
        view = screen.query_one(BindingView)
        assert view.display
        assert str(view.query_one("#binding-summary", Static).render()).startswith(f"label ring   slot {slot_id} of 5 in space glyphs")
        assert str(view.query_one("#binding-image", Static).render()) == render_blocks(glyphs(S)["ring"])
        metadata = str(screen.query_one("#slot-metadata", Static).render())
        assert f"<{S}x{S} drawing, shown above>" in metadata and "ffff" not in metadata
        assert screen.query_one("#recall-read", DataTable).row_count == 0

        await pilot.press("c")
        await settle(pilot)
        assert screen.recalled is not None and screen.recalled.label == "ring"
        assert "recalled ring with confidence" in str(view.query_one("#recall-summary", Static).render())
        table = view.query_one("#recall-read", DataTable)
        read = [(float(table.get_row_at(i)[0]), int(table.get_row_at(i)[1]), str(table.get_row_at(i)[2])) for i in range(table.row_count)]
        glyph_ids = {s.id: s.label for s in neural_store.list(space="glyphs", limit=10).slots}
        assert read and all(sid in glyph_ids and label == glyph_ids[sid] for _, sid, label in read)
        assert slot_id in [sid for _, sid, _ in read]
        assert [w for w, _, _ in read] == sorted((w for w, _, _ in read), reverse=True)
        assert sum(w for w, _, _ in read) == pytest.approx(1.0, abs=0.01)
        assert neural_store.get(slot_id).usage.reads > reads_before  # a recall's reads are usage
        shown = screen.slot.usage.reads  # re-read after the recall, and shown
        said = "once" if shown == 1 else f"{shown:,} times"
        assert shown > shown_before and f"read {said} (recalls and searches" in str(view.query_one("#binding-summary", Static).render())


async def test_a_text_slot_has_no_binding_view_and_no_recall(neural_store: MindStore) -> None:
    app = MindStoreApp(store=neural_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#slots", SlotTable).focus()
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SlotScreen) and screen.slot is not None and screen.slot.label is None
        assert not screen.query_one(BindingView).display
        assert not screen.check_action("recall", ())
        await pilot.press("c")
        await settle(pilot)
        assert screen.recalled is None
