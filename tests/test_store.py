"""The store's life around its slots on both backends: listing and pages, deletes, reset, close
and reopen, export and import, what reads load, the public seams."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mindstore import Config, InvalidInputError, MindStore, NotFoundError, Page, SpaceError, StoreClosedError


def test_get_list_pagination_is_stable_and_complete(store: MindStore) -> None:
    ids = [s.id for s in store.add_many([f"note number {i}" for i in range(25)], user_id="u", dedup=False)]
    store.add("someone else's note", user_id="v")
    seen, cursor = [], None
    while True:
        page = store.list(user_id="u", limit=10, cursor=cursor)
        assert isinstance(page, Page)
        seen += [s.id for s in page.slots]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        store.add("added while paging", user_id="v")  # other writes do not disturb the pages
    assert seen == ids
    assert store.list(user_id="u", limit=100).next_cursor is None


def test_delete_forgets_but_history_remains(store: MindStore) -> None:
    keep = store.add("keep me", user_id="u")
    gone = store.add("forget me", user_id="u")
    store.delete(gone.id)
    assert [h.slot.id for h in store.search("forget me", user_id="u", k=5)] == [keep.id]
    assert [e.kind for e in store.history(gone.id)] == ["add", "delete"]
    assert store.history(gone.id)[-1].old_text == "forget me"
    assert store.count() == 1


def test_delete_many_is_all_or_nothing_across_spaces(store: MindStore, db_url: str, config) -> None:
    texts = store.add_many(["alpha note", "beta note", "gamma note"], user_id="u", dedup=False)
    store.create_space("v", dim=4, key_source="test")
    vecs = store.add_vectors(np.eye(4, dtype=np.float32), space="v", user_id="u")
    with pytest.raises(NotFoundError, match="nothing was deleted"):
        store.delete_many([texts[0].id, vecs[1].id, 987_654])
    with pytest.raises(InvalidInputError):
        store.delete_many([texts[0].id, "2"])
    with pytest.raises(InvalidInputError):
        store.delete_many("12")
    assert store.count() == 3 and store.count(space="v") == 4  # nothing changed
    assert store.delete_many([texts[0].id, vecs[1].id, texts[0].id, np.int64(vecs[3].id)]) == 3
    assert store.delete_many([]) == 0
    assert [e.kind for e in store.history(vecs[1].id)] == ["add", "delete"]
    assert sorted(h.slot.id for h in store.search("note", user_id="u", k=5)) == [texts[1].id, texts[2].id]
    assert [h.slot.id for h in store.search_vector(np.eye(4, dtype=np.float32)[1], space="v", k=4)] == [vecs[0].id, vecs[2].id]
    with MindStore(db_url, config=Config(index_dir=config.index_dir.parent / "other")) as other:  # its own index, built from SQL
        assert [h.slot.id for h in other.search_vector(np.eye(4, dtype=np.float32)[3], space="v", k=4)] == [vecs[0].id, vecs[2].id]


def test_delete_all_removes_only_that_scope(store: MindStore) -> None:
    store.add_many(["a1", "a2 fact", "a3 thing"], user_id="a", dedup=False)
    store.add_many(["b1", "b2 fact"], user_id="b", dedup=False)
    store.add("a in session x", user_id="a", session_id="x")
    assert store.delete_all(user_id="a", session_id="x") == 1
    assert store.delete_all(user_id="a") == 3
    assert store.count(user_id="a") == 0 and store.count(user_id="b") == 2
    assert {h.slot.user_id for h in store.search("fact", k=10)} == {"b"}


def test_reset_empties_the_store(store: MindStore) -> None:
    store.add("something", user_id="u")
    store.reset()
    assert store.count() == 0 and store.spaces() == []
    assert store.add("fresh start", user_id="u").text == "fresh start"


def test_close_and_reopen_keeps_slots_usage_history_and_results(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config) as s:
        s.add_many(["Mia's birthday is in March", "The car needs new tyres", "Grandma likes orchids"], user_id="u")
        edited = s.search("birthday", user_id="u", k=1)[0].slot
        s.update(edited.id, metadata={"important": True})
        before_hits = [(h.slot.id, round(h.score, 5)) for h in s.search("flowers for grandma", user_id="u", k=3)]
        before_slots = s.list(limit=100).slots
        before_history = s.history(edited.id)
    with MindStore(db_url, config=config) as s:
        assert s.list(limit=100).slots == before_slots
        assert s.history(edited.id) == before_history
        assert [(h.slot.id, round(h.score, 5)) for h in s.search("flowers for grandma", user_id="u", k=3)] == before_hits


def test_export_import_round_trips_exactly(store: MindStore, tmp_path) -> None:
    a = store.add("Alice is allergic to peanuts", user_id="alice", metadata={"tags": ["health"], "n": 1.5})
    store.add("Bob plays bass", user_id="bob", agent_id="x", session_id="y")
    store.update(a.id, text="Alice is allergic to peanuts and shellfish")
    gone = store.add("temporary", user_id="alice")
    store.delete(gone.id)
    store.search("allergy", user_id="alice")
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert store.export(first) == 2
    with MindStore(f"sqlite:///{tmp_path / 'other.db'}", config=Config(index_dir=tmp_path / "other")) as other:
        assert other.import_(first) == 2
        other.export(second)
        assert other.get(a.id) == store.get(a.id)
        assert other.history(gone.id) == [
            type(e)(id=o.id, **{k: getattr(e, k) for k in ("slot_id", "kind", "old_text", "new_text", "old_metadata", "new_metadata", "at")})
            for e, o in zip(store.history(gone.id), other.history(gone.id))
        ]
        assert other.search("shellfish", user_id="alice", k=1)[0].slot.id == a.id
    assert first.read_bytes() == second.read_bytes()
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert [line["type"] for line in lines][:1] == ["space"]


def test_import_into_a_store_with_those_ids_changes_nothing(store: MindStore, tmp_path) -> None:
    store.add("one", user_id="u")
    path = tmp_path / "dump.jsonl"
    store.export(path)
    from mindstore import InvalidInputError

    with pytest.raises(InvalidInputError, match="already exist"):
        store.import_(path)
    assert store.count() == 1


def test_reading_rows_never_loads_the_model(db_url: str, config: Config) -> None:
    """Listing, counting and vector search on an existing store leave the embedder unloaded."""
    from mindstore.embed import SentenceTransformerEmbedder

    with MindStore(db_url, config=config) as s:
        slot = s.add("a memory to read back", user_id="u")
        key = s.keys([slot.id])[0]
    lazy = SentenceTransformerEmbedder()  # a fresh embedder: loads its model only when asked to embed
    with MindStore(db_url, config=config, embedder=lazy) as s:
        assert s.count() == 1 and s.list().slots[0].id == slot.id and s.get(slot.id).text == "a memory to read back"
        assert s.scopes() == [("u", 1)]
        assert "chat" not in s._spaces.loaded  # reads that only touch SQL leave the key index unloaded
        assert s.search_vector(key, k=1)[0].slot.id == slot.id
        assert lazy.backend is None  # no model loaded yet
        s.search("memory", k=1)
        assert lazy.backend is not None


def test_scopes_lists_distinct_values_with_counts(store: MindStore) -> None:
    store.add_many(["a one", "a two", "a three"], user_id="alice", session_id="s1", dedup=False)
    store.add("b one", user_id="bob", session_id="s2")
    store.add("nobody's", session_id="s2")
    assert store.scopes() == [("alice", 3), ("bob", 1)]
    assert store.scopes("session_id") == [("s1", 3), ("s2", 2)]
    assert store.scopes("session_id", limit=1) == [("s1", 3)]
    assert store.scopes("agent_id") == []
    from mindstore import InvalidInputError

    with pytest.raises(InvalidInputError):
        store.scopes("role")


def test_the_public_seams_show_the_store_as_it_is(sqlite_url: str, tmp_path) -> None:
    """key_index, lexical_index and engine: read-only views for diagnostics, tests and benchmarks."""
    from sqlalchemy import text

    config = Config(index_dir=tmp_path / "index", approximate_from=1000, train_in_background=False)
    with MindStore(sqlite_url, config=config) as s:
        with pytest.raises(SpaceError, match="has no slots yet"):
            s.key_index()
        with pytest.raises(SpaceError, match="has no slots yet"):
            s.lexical_index()
        first = s.add("Alice is allergic to peanuts", user_id="u")
        index = s.key_index("chat")
        assert s.key_index() is index and len(index) == 1 and not index.approximate and index.nlist == index.nprobe == 0
        second = s.add("Bob plays the cello on Sundays", user_id="u")
        assert len(index) == 2 and index.ids().tolist() == sorted([first.id, second.id])
        assert len(s.lexical_index("chat")) == 2
        with pytest.raises(SpaceError, match=r"no space named 'nope' in this store; spaces: \['chat'\]"):
            s.key_index("nope")
        with s.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM slots")).scalar() == 2
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(np.random.default_rng(0).normal(size=(1200, 8)).astype(np.float32), space="v", user_id="u")
        ivf = s.key_index("v")
        assert ivf.approximate and ivf.nlist > 1 and len(ivf) == 1200 == s.index_info("v").keys
        s.search_vector(np.ones(8, dtype=np.float32), space="v", k=1)
        assert 0 < ivf.nprobe <= ivf.nlist
    with pytest.raises(StoreClosedError):
        s.key_index()
