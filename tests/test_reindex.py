"""Re-embedding a space with another model: cut short at any batch (an error, a SIGKILL), the
space stays searchable with its old model and a rerun finishes it; a space left with keys of two
sizes by an older mindstore is reported, and repaired by a reindex."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, update

from mindstore import Config, MindStore, MixedKeysError
from mindstore.db import SlotRow, StagedKeyRow

from conftest import HashEmbedder, kill_after_acks, snapshot

N = 200  # slots; embed_batch_size=4 makes a reindex batch of 64, so 4 batches (64, 64, 64, 8)
QUERIES = [f"memory number {i} about topic {i % 7}" for i in (0, 5, 70, 150, 199)]


def _config(tmp_path: Path) -> Config:
    return Config(index_dir=tmp_path / "index", embed_batch_size=4)


def _filled(url: str, tmp_path: Path) -> list[list[int]]:
    """A store of N slots keyed by the "test/a" embedder; returns the ids each query finds."""
    with MindStore(url, embedder=HashEmbedder("test/a", 32), config=_config(tmp_path)) as s:
        s.add_many([f"memory number {i} about topic {i % 7}" for i in range(N)], user_id="u", dedup=False)
        return [[h.slot.id for h in s.search(q, user_id="u", k=5)] for q in QUERIES]


def _searches(url: str, tmp_path: Path, embedder: HashEmbedder) -> list[list[int]]:
    with MindStore(url, embedder=embedder, config=_config(tmp_path)) as s:
        return [[h.slot.id for h in s.search(q, user_id="u", k=5)] for q in QUERIES]


def _assert_reindexed(url: str, tmp_path: Path) -> None:
    """Every slot holds a 16-dim "test/b" key, nothing is left staged, and each text finds its slot."""
    with MindStore(url, embedder=HashEmbedder("test/b", 16), config=_config(tmp_path)) as s:
        assert [(sp.key_source, sp.dim) for sp in s.spaces()] == [("test/b", 16)]
        ids = [sl.id for sl in s.list(user_id="u", limit=1000).slots]
        b = HashEmbedder("test/b", 16)
        np.testing.assert_array_equal(s.keys(ids), b.embed([s.get(i).text for i in ids]))
        for q in QUERIES:
            assert s.search(q, user_id="u", k=1, mode="dense")[0].slot.text == q
    engine = create_engine(url)
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(StagedKeyRow)) == 0
    engine.dispose()


def test_a_reindex_failing_at_its_second_batch_changes_nothing_and_a_rerun_finishes_it(db_url: str, tmp_path: Path) -> None:
    before = _filled(db_url, tmp_path)
    rows = {t: v for t, v in snapshot(db_url).items() if t in ("spaces", "slots")}
    with pytest.raises(RuntimeError, match="failed at call 2"):
        MindStore(db_url, embedder=HashEmbedder("test/b", 16, fail_at=2), config=_config(tmp_path), reindex=True)
    assert {t: v for t, v in snapshot(db_url).items() if t in ("spaces", "slots")} == rows
    # still the old model's store: it opens with it and searches as before
    assert _searches(db_url, tmp_path, HashEmbedder("test/a", 32)) == before
    # changes made meanwhile with the old model: an edit of a slot whose new key is staged, a new slot
    with MindStore(db_url, embedder=HashEmbedder("test/a", 32), config=_config(tmp_path)) as s:
        first = s.list(user_id="u", limit=1).slots[0].id
        s.update(first, text="memory number 0 about topic 0")  # same words, new row
        s.update(first + 1, text="memory number 1 rewritten")
        QUERIES.append("memory number 1 rewritten")
        s.add("memory number 200 about topic 4", user_id="u", dedup=False)
    try:
        b = HashEmbedder("test/b", 16)
        with MindStore(db_url, embedder=b, config=_config(tmp_path), reindex=True):
            pass
        # the first batch's staged keys were kept, but for the two slots edited since
        assert b.texts == N + 1 - 64 + 2
        _assert_reindexed(db_url, tmp_path)
    finally:
        QUERIES.remove("memory number 1 rewritten")


class _WritesMeanwhile(HashEmbedder):
    """At its second call, another store edits a slot the reindex has already staged."""

    def __init__(self, url: str, config: Config) -> None:
        super().__init__("test/b", 16)
        self.url, self.config = url, config

    def embed(self, texts, *, batch_size: int = 64):  # noqa: ANN001, ANN201
        if self.calls == 1:
            with MindStore(self.url, embedder=HashEmbedder("test/a", 32), config=self.config) as other:
                other.update(other.list(user_id="u", limit=2).slots[1].id, text="memory number 1 changed meanwhile")
        return super().embed(texts, batch_size=batch_size)


def test_a_slot_changed_while_the_reindex_runs_gets_its_new_key(db_url: str, tmp_path: Path) -> None:
    _filled(db_url, tmp_path)
    b = _WritesMeanwhile(db_url, _config(tmp_path))
    with MindStore(db_url, embedder=b, config=_config(tmp_path), reindex=True):
        pass
    assert b.texts == N + 1  # the edited slot, once more, in the switch
    QUERIES.append("memory number 1 changed meanwhile")
    try:
        _assert_reindexed(db_url, tmp_path)
    finally:
        QUERIES.pop()


REINDEXER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from conftest import HashEmbedder
    from mindstore import Config, MindStore

    class Loud(HashEmbedder):
        def embed(self, texts, *, batch_size=64):
            keys = super().embed(texts, batch_size=batch_size)
            print(len(texts), flush=True)  # a batch embedded (its keys are staged after this)
            return keys

    MindStore(sys.argv[1], embedder=Loud("test/b", 16), config=Config(index_dir=sys.argv[2], embed_batch_size=4), reindex=True)
    print(0, flush=True)
    """
)


@pytest.mark.slow
def test_a_reindex_killed_midway_leaves_the_old_model_searchable_and_a_rerun_finishes_it(db_url: str, tmp_path: Path) -> None:
    before = _filled(db_url, tmp_path)
    rows = {t: v for t, v in snapshot(db_url).items() if t in ("spaces", "slots")}
    kill_after_acks(REINDEXER, tmp_path, [db_url, str(tmp_path / "index"), str(Path(__file__).parent)], 3)
    assert {t: v for t, v in snapshot(db_url).items() if t in ("spaces", "slots")} == rows
    assert _searches(db_url, tmp_path, HashEmbedder("test/a", 32)) == before
    b = HashEmbedder("test/b", 16)
    with MindStore(db_url, embedder=b, config=_config(tmp_path), reindex=True):
        pass
    assert b.texts <= N - 2 * 64  # the two batches staged before the kill are kept
    _assert_reindexed(db_url, tmp_path)


def test_a_space_left_with_keys_of_two_sizes_says_so_and_a_reindex_repairs_it(db_url: str, tmp_path: Path) -> None:
    _filled(db_url, tmp_path)
    # what an older mindstore left when its in-place re-embedding to a 16-dim model died midway
    engine = create_engine(db_url)
    with engine.begin() as c:
        ids = c.scalars(select(SlotRow.id).order_by(SlotRow.id).limit(64)).all()
        c.execute(update(SlotRow).where(SlotRow.id.in_(ids)).values(key=np.zeros(16, np.float32).tobytes()))
    engine.dispose()
    (tmp_path / "index" / "chat.faiss").unlink()  # that reindex deleted the key index file too
    with MindStore(db_url, embedder=HashEmbedder("test/a", 32), config=_config(tmp_path)) as s:
        with pytest.raises(MixedKeysError, match=r"reindex=True") as err:
            s.search(QUERIES[0], user_id="u")
        assert "[16, 32] dimensions" in str(err.value)
    a = HashEmbedder("test/a", 32)
    with MindStore(db_url, embedder=a, config=_config(tmp_path), reindex=True) as s:
        assert a.texts == N  # every slot re-embedded with the model the space records
        for q in QUERIES:
            assert s.search(q, user_id="u", k=1, mode="dense")[0].slot.text == q
