"""Writes on both backends: what an add returns, near-duplicates reinforced instead of copied,
updates re-embedded with their history, vector updates."""

from __future__ import annotations

import numpy as np
import pytest

from mindstore import Config, Event, InvalidVectorError, MindStore, NotFoundError, Slot


def test_add_returns_slot_with_scope_metadata_and_usage(store: MindStore) -> None:
    slot = store.add("Alice is allergic to peanuts", user_id="alice", agent_id="cook", session_id="s1", metadata={"source": "chat"})
    assert isinstance(slot, Slot)
    assert slot.id > 0 and slot.space == "chat"
    assert (slot.user_id, slot.agent_id, slot.session_id) == ("alice", "cook", "s1")
    assert slot.metadata == {"source": "chat"}
    assert slot.usage.reads == 0 and slot.usage.writes == 1
    assert slot.created_at is not None and slot.created_at.tzinfo is not None
    assert store.get(slot.id) == slot


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
