"""Search on both backends, with the real MiniLM model and real FAISS: ranking, scopes, metadata
filters, score floors, vector spaces, and hits counted as reads."""

from __future__ import annotations

import numpy as np
import pytest

from mindstore import Hit, InvalidVectorError, MindStore


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
