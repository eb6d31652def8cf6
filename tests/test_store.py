"""MindStore behaviour on both backends, with the real MiniLM model and real FAISS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mindstore import Config, Event, Hit, InvalidInputError, InvalidVectorError, MindStore, NotFoundError, Page, Slot, SpaceError, StoreClosedError


def test_add_returns_slot_with_scope_metadata_and_usage(store: MindStore) -> None:
    slot = store.add("Alice is allergic to peanuts", user_id="alice", agent_id="cook", session_id="s1", metadata={"source": "chat"})
    assert isinstance(slot, Slot)
    assert slot.id > 0 and slot.space == "chat"
    assert (slot.user_id, slot.agent_id, slot.session_id) == ("alice", "cook", "s1")
    assert slot.metadata == {"source": "chat"}
    assert slot.usage.reads == 0 and slot.usage.writes == 1
    assert slot.created_at is not None and slot.created_at.tzinfo is not None
    assert store.get(slot.id) == slot


def test_search_ranks_the_matching_memory_first(store: MindStore) -> None:
    store.add_many(["Bob plays bass in a jazz trio", "Alice is allergic to peanuts", "The office moved to Porto"], user_id="u")
    hits = store.search("does she have a food allergy?", user_id="u", k=3)
    assert [type(h) for h in hits] == [Hit] * 3
    assert hits[0].slot.text == "Alice is allergic to peanuts"
    assert hits[0].score > hits[1].score >= hits[2].score


def test_search_hits_count_as_reads(store: MindStore) -> None:
    slot = store.add("The wifi password is on the fridge", user_id="u")
    hit = store.search("where is the wifi password", user_id="u", k=1)[0]
    assert hit.slot.id == slot.id and hit.slot.usage.reads == 1
    store.search("wifi", user_id="u", k=1)
    again = store.get(slot.id)
    assert again.usage.reads == 2
    assert again.usage.last_access >= slot.usage.last_access


def test_scoped_search_returns_exactly_k_however_many_other_users(store: MindStore) -> None:
    others = [f"User {i} likes topic number {i} very much" for i in range(300)]
    store.add_many(others, user_id="crowd", dedup=False)
    mine = ["I like tea", "I own a red bicycle", "My sister lives in Oslo", "I play chess", "I hate mornings", "I collect stamps"]
    store.add_many(mine, user_id="me")
    hits = store.search("topic number", user_id="me", k=5)
    assert len(hits) == 5
    assert all(h.slot.user_id == "me" for h in hits)
    assert len(store.search("anything", user_id="me", k=50)) == len(mine)
    assert store.search("anything", user_id="nobody") == []


def test_scope_fields_combine(store: MindStore) -> None:
    store.add("shared fact", user_id="u", agent_id="a1", session_id="s1")
    store.add("other agent's fact", user_id="u", agent_id="a2", session_id="s1")
    store.add("other session's fact", user_id="u", agent_id="a1", session_id="s2")
    assert {h.slot.text for h in store.search("fact", user_id="u", agent_id="a1", k=10)} == {"shared fact", "other session's fact"}
    assert {h.slot.text for h in store.search("fact", session_id="s1", k=10)} == {"shared fact", "other agent's fact"}
    assert len(store.search("fact", k=10)) == 3


def test_metadata_filters_equality_in_and_ranges(store: MindStore) -> None:
    store.add("trip to Rome", user_id="u", metadata={"year": 2019, "kind": "travel"})
    store.add("trip to Oslo", user_id="u", metadata={"year": 2023, "kind": "travel"})
    store.add("new job at the bakery", user_id="u", metadata={"year": 2023, "kind": "work"})
    texts = lambda hits: {h.slot.text for h in hits}  # noqa: E731
    assert texts(store.search("trip", user_id="u", filters={"kind": "travel"}, k=10)) == {"trip to Rome", "trip to Oslo"}
    assert texts(store.search("trip", user_id="u", filters={"year": {"$gte": 2020}}, k=10)) == {"trip to Oslo", "new job at the bakery"}
    assert texts(store.search("trip", user_id="u", filters={"kind": {"$in": ["work"]}, "year": 2023}, k=10)) == {"new job at the bakery"}
    assert texts(store.search("trip", user_id="u", filters={"$or": [{"year": 2019}, {"kind": "work"}]}, k=10)) == {"trip to Rome", "new job at the bakery"}
    assert store.search("trip", filters={"kind": "sport"}) == []


def test_min_score_drops_weak_hits(store: MindStore) -> None:
    store.add_many(["The cat sleeps on the sofa", "Quarterly tax forms are due in April"], user_id="u")
    hits = store.search("where does the cat sleep", user_id="u", k=2, min_score=0.4)
    assert [h.slot.text for h in hits] == ["The cat sleeps on the sofa"]


def test_near_duplicate_reinforces_instead_of_copying(store: MindStore) -> None:
    first = store.add("Alice is allergic to peanuts.", user_id="alice")
    again = store.add("Alice is allergic to peanuts", user_id="alice")
    assert again.id == first.id
    assert again.usage.writes == 2
    assert store.count(user_id="alice") == 1
    assert [e.kind for e in store.history(first.id)] == ["add", "reinforce"]
    # another scope keeps its own copy; dedup=False always stores
    assert store.add("Alice is allergic to peanuts", user_id="bob").id != first.id
    assert store.add("Alice is allergic to peanuts", user_id="alice", dedup=False).id != first.id
    assert store.count(user_id="alice") == 2


def test_add_many_dedups_within_the_batch(store: MindStore) -> None:
    slots = store.add_many(["I love green tea", "I love green tea!", "Paris is in France"], user_id="u")
    assert slots[0].id == slots[1].id
    assert slots[1].usage.writes == 2
    assert store.count(user_id="u") == 2


def test_dedup_threshold_is_configurable(db_url: str, config: Config) -> None:
    loose = Config(index_dir=config.index_dir, dedup_threshold=0.5)
    with MindStore(db_url, config=loose) as s:
        a = s.add("I love green tea", user_id="u")
        b = s.add("I really enjoy green tea", user_id="u")
        # near-duplicates at this threshold, but not the same statement: a new version
        assert (b.change, b.supersedes) == ("superseded", a.id)
    with MindStore(db_url, config=Config(index_dir=config.index_dir)) as s:
        c = s.add("I love green tea, really", user_id="v")
        d = s.add("I really enjoy green tea", user_id="v")
        assert (c.change, d.change) == ("added", "added")


def test_add_messages_keeps_what_is_worth_keeping(store: MindStore) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "I'm moving to Vienna next spring."},
        {"role": "assistant", "content": "Congratulations! Vienna has great coffee houses."},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "thanks"},
        {"role": "assistant", "content": "Congratulations!"},
        {"role": "user", "content": "Hi there! 👋"},
        {"role": "user", "content": "ok, thanks, sounds good"},
    ]
    slots = store.add_messages(messages, user_id="u", session_id="s", metadata={"channel": "web"})
    assert [s.text for s in slots] == ["I'm moving to Vienna next spring.", "Congratulations! Vienna has great coffee houses."]
    assert [s.metadata["role"] for s in slots] == ["user", "assistant"]
    assert all(s.metadata["channel"] == "web" and s.session_id == "s" for s in slots)


def test_worth_keeping_skips_greetings_and_acknowledgements_only() -> None:
    from mindstore.messages import worth_keeping

    for text in ("Hi there!", "Congratulations!", "Thank you so much", "ok 👍", "  ", "👍", "Yes, please."):
        assert not worth_keeping(text), text
    for text in ("Hi, I'm Dana", "Thanks, the gate code is 4411", "42", "no peanuts please, I'm allergic", "Good luck!"):
        assert worth_keeping(text), text


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


def test_update_reembeds_and_records_history(store: MindStore) -> None:
    slot = store.add("Alice works in Lisbon", user_id="alice", metadata={"v": 1})
    updated = store.update(slot.id, text="Alice works in Tokyo", metadata={"v": 2})
    assert updated.text == "Alice works in Tokyo" and updated.metadata == {"v": 2}
    assert updated.usage.writes == 2
    assert store.search("Japan", user_id="alice", k=1)[0].slot.id == slot.id
    events = store.history(slot.id)
    assert [type(e) for e in events] == [Event, Event]
    add, upd = events
    assert (upd.kind, upd.old_text, upd.new_text, upd.old_metadata, upd.new_metadata) == ("update", "Alice works in Lisbon", "Alice works in Tokyo", {"v": 1}, {"v": 2})
    assert add.at <= upd.at


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


def test_vector_spaces_are_separate_from_text(store: MindStore) -> None:
    info = store.create_space("glyphs", dim=8, key_source="test-controller")
    assert (info.name, info.dim, info.count) == ("glyphs", 8, 0)
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(20, 8)).astype(np.float32)
    slots = store.add_vectors(keys, space="glyphs", labels=[f"c{i}" for i in range(20)], user_id="u")
    hit = store.search_vector(keys[7] + 0.01, space="glyphs", k=1, user_id="u")[0]
    assert hit.slot.id == slots[7].id and hit.slot.label == "c7" and hit.slot.space == "glyphs"
    np.testing.assert_array_equal(store.keys([slots[3].id, slots[1].id]), keys[[3, 1]])
    assert store.count(space="glyphs") == 20 and store.count() == 0
    store.add("a text memory", user_id="u")
    assert {(s.name, s.count) for s in store.spaces()} == {("glyphs", 20), ("chat", 1)}
    assert all(h.slot.space == "chat" for h in store.search("text", user_id="u", k=5))


def test_many_slots_search_stays_exact(store: MindStore) -> None:
    """Filtered scans (large scopes) and direct scoring (small scopes) agree with brute force."""
    store.create_space("v", dim=16, key_source="random")
    rng = np.random.default_rng(1)
    keys = rng.normal(size=(3000, 16)).astype(np.float32)
    users = np.where(np.arange(3000) % 3 == 0, "big", np.where(np.arange(3000) % 100 == 1, "small", "other"))
    ids = np.empty(3000, dtype=np.int64)
    for u in ("big", "small", "other"):
        mask = users == u
        ids[mask] = [s.id for s in store.add_vectors(keys[mask], space="v", user_id=u)]
    q = rng.normal(size=16).astype(np.float32)
    unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    sims = unit @ (q / np.linalg.norm(q))
    for u in ("big", "small"):
        mask = users == u
        expected = ids[mask][np.argsort(-sims[mask])[:10]]
        hits = store.search_vector(q, space="v", user_id=u, k=10)
        assert [h.slot.id for h in hits] == list(expected)
        # scores are float32 cosines of the stored keys, not the index's float16 approximations
        np.testing.assert_allclose([h.score for h in hits], np.sort(sims[mask])[::-1][:10], rtol=0, atol=1e-6)


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


def test_batch_vector_search_equals_one_by_one(store: MindStore) -> None:
    rng = np.random.default_rng(1)
    store.create_space("v", dim=8, key_source="test")
    keys = rng.normal(size=(200, 8)).astype(np.float32)
    store.add_vectors(keys, space="v", labels=[f"l{i}" for i in range(200)])
    qs = keys[:5] + 0.01
    batch = store.search_vectors(qs, space="v", k=4)
    for q, hits in zip(qs, batch):
        assert [h.slot.id for h in hits] == [h.slot.id for h in store.search_vector(q, space="v", k=4)]
    with pytest.raises(InvalidVectorError):
        store.search_vectors(np.zeros((2, 7)), space="v")


def test_update_vectors_moves_keys_and_labels_and_least_used_orders_by_access(store: MindStore) -> None:
    rng = np.random.default_rng(2)
    store.create_space("v", dim=8, key_source="test")
    keys = rng.normal(size=(10, 8)).astype(np.float32)
    slots = store.add_vectors(keys, space="v", labels=[f"l{i}" for i in range(10)])
    ids = [s.id for s in slots]
    store.search_vector(keys[0], space="v", k=1)  # slot 0 read: it is no longer the least used
    assert store.least_used(2, space="v") == ids[1:3]
    new = store.update_vectors([ids[1]], -keys[5:6], labels=["moved"])
    assert new[0].label == "moved" and new[0].usage.writes == 2
    np.testing.assert_array_equal(store.keys([ids[1]]), -keys[5:6])
    assert store.search_vector(-keys[5], space="v", k=1)[0].slot.id == ids[1]
    assert [e.kind for e in store.history(ids[1])] == ["add", "update"]
    assert ids[1] not in store.least_used(3, space="v")
    with pytest.raises(NotFoundError):
        store.update_vectors([999999], keys[:1])
    with pytest.raises(InvalidVectorError):
        store.update_vectors([ids[2]], keys[:2])
    np.testing.assert_array_equal(store.keys([ids[2]]), keys[2:3])  # rejected: nothing changed


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
