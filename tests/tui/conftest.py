"""A real SQLite store with known slots, built (and embedded) once, copied fresh for each test.

Timestamps are pinned so that rendered screens are the same on every run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from textual.app import App
from textual.notifications import Notification

from tests.tui.scenes import build_demo

FIXED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def notifications(app: App) -> list[Notification]:
    """The notifications the app shows now. Textual keeps them in a private attribute with no
    public reader: this is the tests' one reach into it (listed in tests/conftest.py)."""
    return list(app._notifications)


def pin_times(url: str) -> None:
    """Set every timestamp to FIXED (rendered screens must not depend on the clock)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("UPDATE slots SET created_at=:t, updated_at=:t, last_access=:t"), {"t": FIXED.replace(tzinfo=None)})
        c.execute(text("UPDATE events SET at=:t"), {"t": FIXED.replace(tzinfo=None)})
    engine.dispose()


@pytest.fixture(scope="session")
def embedder():
    from mindstore.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from mindstore import Config

    folder = tmp_path_factory.mktemp("template")
    url = f"sqlite:///{folder / 'memory.db'}"
    build_demo(url, config=Config(index_dir=folder / "index"), embedder=embedder)
    pin_times(url)
    return folder


@pytest.fixture
def store(template: Path, tmp_path: Path, embedder) -> Iterator:
    from mindstore import Config, MindStore

    shutil.copy(template / "memory.db", tmp_path / "memory.db")
    with MindStore(f"sqlite:///{tmp_path / 'memory.db'}", embedder=embedder, config=Config(index_dir=tmp_path / "index")) as s:
        yield s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
