"""SVG snapshots of the main screens (pytest-textual-snapshot), in tests/tui/__snapshots__/.

Each scene drives the real app with the pilot, from the browse screen to the view it shows, on a
copy of the demo store whose timestamps are pinned. What would differ between runs or machines is
held still: the clock (a search stamps "last access") reads the pinned time, and similarity
scores and read weights (whose last digit may differ between CPUs) are masked. After an intended
change, look at the report pytest writes for a failure, then record the new screens:
``python -m pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from mindstore.tui import data
from mindstore.tui.app import MindStoreApp
from tests.tui.scenes import SCENES, SIZE, settle, stage

from .conftest import FIXED


@pytest.fixture
def still(monkeypatch: pytest.MonkeyPatch) -> None:
    import mindstore.core.state

    monkeypatch.setattr(mindstore.core.state, "now", lambda: FIXED)
    monkeypatch.setattr(data, "SCORE_FORMAT", "0.###")


@pytest.mark.parametrize("scene", list(SCENES))
def test_main_screens_match_their_snapshots(snap_compare, store, still, scene: str) -> None:
    stage(store, scene)

    async def run_before(pilot) -> None:
        await settle(pilot)
        pilot.app.sub_title = "sqlite:///memory.db"
        await SCENES[scene](pilot)
        pilot.app.clear_notifications()
        await settle(pilot)

    assert snap_compare(MindStoreApp(store=store), terminal_size=SIZE, run_before=run_before)

