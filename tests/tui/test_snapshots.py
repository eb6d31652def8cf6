"""Snapshots of the main screens, as plain text, against files in tests/tui/__snapshots__/.

Text, not SVG: the layout and the words are what must not change by accident; colours may.
(pytest-textual-snapshot, which would keep SVGs, cannot be installed beside our dev extra: its
latest release, 1.1.0, pins syrupy==4.8.0, which needs pytest<9, while langchain-tests 1.1.9
needs pytest>=9.0.3 and syrupy>=5,<6. Checked 2026-11-26.)
Similarity scores and the clock (a search stamps "last access") are masked. To record new
snapshots after an intended change: ``MINDSTORE_UPDATE_SNAPSHOTS=1 python -m pytest tests/tui``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from mindstore.tui.app import MindStoreApp
from mindstore.tui.screenshots import SCENES, SIZE, screen_text, settle, stage

from .conftest import FIXED

pytestmark = pytest.mark.anyio
SNAPSHOTS = Path(__file__).parent / "__snapshots__"
PINNED = FIXED.strftime("%Y-%m-%d %H:%M")


def normalise(text: str) -> str:
    text = re.sub(r"\b[01]\.\d{3}\b", "0.###", text)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", lambda m: m[0] if m[0] == PINNED else "YYYY-MM-DD hh:mm", text)


@pytest.mark.parametrize("scene", list(SCENES))
async def test_main_screens_match_their_snapshots(store, scene: str) -> None:
    stage(store, scene)
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.sub_title = "sqlite:///memory.db"
        await SCENES[scene](pilot)
        app.clear_notifications()
        await pilot.pause()
        text = normalise(screen_text(app))
    path = SNAPSHOTS / f"{scene}.txt"
    if os.environ.get("MINDSTORE_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; record it with MINDSTORE_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"screen {scene!r} changed; see {path}"
