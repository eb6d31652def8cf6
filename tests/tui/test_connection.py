"""A lost PostgreSQL connection shows a clear message, never a traceback, and the app recovers.

The server really drops the app's connections (pg_terminate_backend) while new ones are refused
(ALLOW_CONNECTIONS false), so the pool's pre-ping cannot quietly reconnect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mindstore import Config, MindStore
from mindstore.tui.app import MindStoreApp
from mindstore.tui.screens import SlotScreen
from mindstore.tui.widgets import SlotTable
from tests.conftest import PG_ADMIN_URL
from tests.tui.conftest import notifications
from tests.tui.scenes import settle

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
SIZE = (120, 36)


@pytest.fixture
def pg_store(pg_url: str, tmp_path: Path, embedder) -> Iterator[MindStore]:
    with MindStore(pg_url, embedder=embedder, config=Config(index_dir=tmp_path / "index")) as s:
        s.add_many(["Alice is allergic to peanuts", "Alice lives in Lisbon"], user_id="alice")
        yield s


def cut_off(url: str, *, allow: bool) -> None:
    """Refuse (or allow again) new connections to the database, and drop every open one."""
    name = make_url(url).database
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'))
        if not allow:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
    admin.dispose()


def errors(app: MindStoreApp) -> list[str]:
    return [n.message for n in notifications(app) if n.severity == "error"]


async def test_a_lost_connection_is_reported_in_words_and_the_app_recovers(pg_store: MindStore, pg_url: str) -> None:
    app = MindStoreApp(store=pg_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#slots", SlotTable)
        assert table.row_count == 2
        try:
            cut_off(pg_url, allow=False)
            await pilot.press("r")  # reload the page and the sidebar
            await settle(pilot)
            table.focus()
            await pilot.press("enter")  # open a slot: its worker fails too
            await settle(pilot)
            found = errors(app)
            assert found, "no message about the lost connection"
            assert all("Traceback" not in m and "database" in m.lower() for m in found)
            assert any("connection" in m.lower() for m in found)
        finally:
            cut_off(pg_url, allow=True)
        if isinstance(app.screen, SlotScreen):
            await pilot.press("r")
            await settle(pilot)
            assert app.screen.slot is not None and app.screen.slot.text.startswith("Alice")
            await pilot.press("escape")
        app.clear_notifications()
        await pilot.press("r")
        await settle(pilot)
        assert table.row_count == 2 and not errors(app)
