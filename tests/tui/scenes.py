"""The TUI's scenes: a small demo store and the pilot steps from the browse screen to each main
view. The snapshot tests (test_snapshots.py) compare them with their saved pictures, and the same
scenes draw the pictures in docs/ (a developer's tool, kept with the tests, not shipped):

    python -m tests.tui.scenes docs/     # writes docs/tui-*.svg, from the repository's root

Each scene drives the real app with Textual's pilot, from the browse screen to the view it shows.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from textual.pilot import Pilot

from mindstore import Config, MindStore
from mindstore.tui.app import MindStoreApp
from mindstore.tui.data import ScopeFilter
from mindstore.tui.widgets import ScopeTree, SlotTable

__all__ = ["DEMO", "SCENES", "SIZE", "bind_glyphs", "build_demo", "glyphs", "settle", "shoot", "stage"]

SIZE = (150, 36)
DEMO = {
    "alice": [
        "Alice is allergic to peanuts",
        "Alice lives in Lisbon and works as a nurse",
        "Alice prefers tea over coffee in the morning",
    ],
    "bob": [
        "Bob plays the cello in a community orchestra",
        "Bob is training for the Berlin marathon",
    ],
}
DEMO_FILLER = 130  # log lines of agent "logger": more than one page


def build_demo(url: str, *, config: Config | None = None, embedder=None) -> None:
    """A small store: two users' facts and an agent's log lines in one session."""
    with MindStore(url, config=config, embedder=embedder) as store:
        for user, facts in DEMO.items():
            store.add_many(facts, user_id=user, metadata={"source": "demo"})
        store.add_many(
            [f"log entry {i:03d}: the nightly job finished step {i}" for i in range(DEMO_FILLER)],
            agent_id="logger",
            session_id="night-1",
            dedup=False,
        )


def glyphs(size: int = 20) -> dict[str, np.ndarray]:
    """Five simple drawings (strokes 255 on 0, ``size`` x ``size`` uint8), one per label."""
    y, x = np.mgrid[0:size, 0:size]
    c, r = (size - 1) / 2, size * 0.35
    ring = np.abs(np.hypot(x - c, y - c) - r) < 1.2
    cross = (np.abs(x - y) < 1.5) | (np.abs(x + y - (size - 1)) < 1.5)
    plus = (np.abs(x - c) < 1.5) | (np.abs(y - c) < 1.5)
    u, v = x * 20 / size, y * 20 / size  # the L and the T are drawn on a 20 x 20 grid, scaled
    ell = ((u >= 4) & (u <= 6) & (v >= 3) & (v <= 16)) | ((v >= 14) & (v <= 16) & (u >= 4) & (u <= 15))
    tee = ((v >= 3) & (v <= 5) & (u >= 3) & (u <= 16)) | ((u >= 8) & (u <= 11) & (v >= 3) & (v <= 16))
    shapes = {"ring": ring, "cross": cross, "plus": plus, "ell": ell, "tee": tee}
    return {k: v.astype(np.uint8) * 255 for k, v in shapes.items()}


def bind_glyphs(store: MindStore, space: str = "glyphs") -> list[int]:
    """Bind the five demo drawings in ``space`` with the packaged checkpoint: a neural space."""
    from mindstore.neural import OneShotLearner

    learner = OneShotLearner.load(store=store, space=space)
    shapes = glyphs(learner.model.cfg.image_size)
    return learner.bind(np.stack(list(shapes.values())), list(shapes))


async def settle(pilot: Pilot) -> None:
    """Wait until every worker has finished and what it found is on screen."""
    app = pilot.app
    for _ in range(100):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in app.workers):
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
    raise RuntimeError("workers never settled")


def pick(app: MindStoreApp, where: ScopeFilter) -> None:
    """Select ``where`` in the sidebar, as a click on it would."""
    tree = app.screen.query_one(ScopeTree)
    stack = list(tree.root.children)
    while stack:
        node = stack.pop(0)
        if node.data == where and not node.children:
            tree.select_node(node)
            return
        stack.extend(node.children)
    raise LookupError(f"{where} is not in the sidebar")


async def browse(pilot: Pilot) -> None:
    pilot.app.screen.query_one(SlotTable).focus()
    await settle(pilot)


async def search(pilot: Pilot) -> None:
    pick(pilot.app, ScopeFilter("chat", user_id="alice"))
    await settle(pilot)
    await pilot.press("slash", *"what can't she eat", "enter")  # "?" in the box opens help
    await settle(pilot)


async def slot(pilot: Pilot) -> None:
    pick(pilot.app, ScopeFilter("chat", user_id="bob"))
    await settle(pilot)
    pilot.app.screen.query_one(SlotTable).focus()
    await pilot.press("enter")
    await settle(pilot)


async def edit(pilot: Pilot) -> None:
    await slot(pilot)
    await pilot.press("e")
    await settle(pilot)


async def delete(pilot: Pilot) -> None:
    await browse(pilot)
    await pilot.press("d")
    await settle(pilot)


async def neural(pilot: Pilot) -> None:
    """The "ring" binding of the glyphs space, after a recall from its drawing."""
    pick(pilot.app, ScopeFilter("glyphs"))
    await settle(pilot)
    pilot.app.screen.query_one(SlotTable).focus()
    await pilot.press("enter")
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)


async def help(pilot: Pilot) -> None:
    await pilot.press("f1")
    await settle(pilot)


SCENES: dict[str, Callable[[Pilot], Awaitable[None]]] = {
    "browse": browse,
    "search": search,
    "slot": slot,
    "edit": edit,
    "delete": delete,
    "help": help,
    "neural": neural,
}


def stage(store: MindStore, scene: str) -> None:
    """What a scene needs in the demo store beyond build_demo: the neural scene, a glyphs space."""
    if scene == "neural":
        bind_glyphs(store)


async def shoot(store: MindStore, scene: str, out: Path, *, shown_url: str = "sqlite:///memory.db") -> Path:
    """Run one scene on ``store`` and save its SVG as ``out/tui-<scene>.svg``."""
    app = MindStoreApp(store=store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.sub_title = shown_url
        await SCENES[scene](pilot)
        app.clear_notifications()
        await pilot.pause()
        return Path(app.save_screenshot(f"tui-{scene}.svg", path=str(out)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs"), help="folder for tui-*.svg (default: docs)")
    parser.add_argument("--scene", choices=list(SCENES), action="append", help="only these scenes")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/memory.db"
        config = Config(index_dir=Path(tmp) / "index")
        build_demo(url, config=config)
        embedder = None  # loaded by the first scene that searches, then shared
        for scene in args.scene or list(SCENES):
            # A fresh store for each scene: what one scene does (a search counts as a read) stays out of the next.
            fresh = Path(tmp) / scene
            fresh.mkdir()
            (fresh / "memory.db").write_bytes(Path(f"{tmp}/memory.db").read_bytes())
            with MindStore(f"sqlite:///{fresh}/memory.db", config=Config(index_dir=fresh / "index"), embedder=embedder) as store:
                stage(store, scene)
                print(asyncio.run(shoot(store, scene, args.out)))
                embedder = store.embedder


if __name__ == "__main__":
    main()
