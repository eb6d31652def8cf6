"""MindStoreGraphStore against LangGraph's BaseStore contract, on real SQLite and PostgreSQL stores.

Where the contract leaves room, InMemoryStore (LangGraph's reference store) is the yardstick: the
same operations run on both must give the same items.
"""

from __future__ import annotations

from typing import TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.store.base import GetOp, InvalidNamespaceError, ListNamespacesOp, MatchCondition, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from mindstore import MindStore
from mindstore.integrations.langgraph import MindStoreGraphStore


@pytest.fixture
def graph_store(store: MindStore) -> MindStoreGraphStore:
    return MindStoreGraphStore(store)


FACTS = {
    ("users", "alice"): {"diet": {"text": "Alice is allergic to peanuts", "year": 2024}, "job": {"text": "Alice works as a nurse in Lisbon", "year": 2020}},
    ("users", "bob"): {"diet": {"text": "Bob is vegetarian", "year": 2023}, "pet": {"text": "Bob's cat is called Pixel", "year": 2021}},
    ("users", "alice", "notes"): {"n1": {"text": "Buy a birthday present for Mia", "year": 2025}},
    ("docs",): {"readme": {"text": "How to install the app", "year": 2022}},
}


def fill(s) -> None:
    for ns, items in FACTS.items():
        for key, value in items.items():
            s.put(ns, key, value)


def keys(items) -> list[tuple[tuple[str, ...], str]]:
    return [(i.namespace, i.key) for i in items]


def test_put_get_replace_delete_keeps_history(graph_store: MindStoreGraphStore, store: MindStore) -> None:
    graph_store.put(("users", "alice"), "diet", {"text": "Alice is allergic to peanuts"})
    first = graph_store.get(("users", "alice"), "diet")
    assert first.value == {"text": "Alice is allergic to peanuts"} and first.namespace == ("users", "alice") and first.key == "diet"

    graph_store.put(("users", "alice"), "diet", {"text": "Alice is allergic to peanuts and shellfish"})
    second = graph_store.get(("users", "alice"), "diet")
    assert second.value["text"].endswith("shellfish")
    assert second.created_at == first.created_at and second.updated_at > first.updated_at
    assert store.count(agent_id="langgraph") == 1  # replaced, not duplicated
    slot = store.list(agent_id="langgraph").slots[0]
    assert [e.kind for e in store.history(slot.id)] == ["add", "update"]

    graph_store.delete(("users", "alice"), "diet")
    assert graph_store.get(("users", "alice"), "diet") is None
    graph_store.delete(("users", "alice"), "diet")  # deleting what is gone is a no-op
    assert [e.kind for e in store.history(slot.id)] == ["add", "update", "delete"]


def test_a_namespace_never_sees_another(graph_store: MindStoreGraphStore) -> None:
    fill(graph_store)
    assert graph_store.get(("users", "alice"), "pet") is None  # bob's key
    assert graph_store.get(("users", "al"), "diet") is None  # a string prefix is not a namespace prefix
    for query in (None, "vegetarian cat Pixel"):
        got = keys(graph_store.search(("users", "alice"), query=query, limit=50))
        assert all(ns[:2] == ("users", "alice") for ns, _ in got)
        assert sorted(got) == [(("users", "alice"), "diet"), (("users", "alice"), "job"), (("users", "alice", "notes"), "n1")]
    assert keys(graph_store.search(("users", "bob", "x"), query="cat")) == []
    assert keys(graph_store.search(("users", "bo"), query="cat")) == []


def test_graph_items_stay_apart_from_other_memories(store: MindStore) -> None:
    store.add("Alice is allergic to peanuts", user_id="alice")
    one, two = MindStoreGraphStore(store, agent_id="graph-one"), MindStoreGraphStore(store, agent_id="graph-two")
    one.put(("users", "alice"), "diet", {"text": "Alice eats no peanuts"})
    assert two.get(("users", "alice"), "diet") is None
    assert two.search(("users",), query="peanuts") == [] and two.list_namespaces() == []
    assert [i.key for i in one.search((), query="peanuts")] == ["diet"]
    store.add("A note an agent wrote without LangGraph", agent_id="graph-one", session_id="users.alice")
    assert [i.key for i in one.search(())] == ["diet"] and one.list_namespaces() == [("users", "alice")]
    assert one.get(("users", "alice"), "diet").value == {"text": "Alice eats no peanuts"}


def test_semantic_search_ranks_by_meaning_with_scores(graph_store: MindStoreGraphStore) -> None:
    fill(graph_store)
    hits = graph_store.search(("users",), query="which food can't alice eat?", limit=2)
    assert hits[0].key == "diet" and hits[0].namespace == ("users", "alice")
    assert hits[0].score > hits[1].score
    later = graph_store.search(("users",), query="which food can't alice eat?", limit=2, offset=1)
    assert keys(later)[0] == keys(hits)[1]


def test_fields_choose_what_is_embedded(store: MindStore) -> None:
    graph_store = MindStoreGraphStore(store, fields=["text"])
    graph_store.put(("docs",), "a", {"text": "a recipe for lentil soup", "note": "about astronomy"})
    graph_store.put(("docs",), "b", {"text": "the rings of Saturn", "note": "about cooking"})
    assert graph_store.search(("docs",), query="planets and moons", limit=1)[0].key == "b"
    graph_store.put(("docs",), "c", {"text": "the rings of Saturn", "note": "cooking dinner tonight"}, index=["note"])
    assert graph_store.search(("docs",), query="cooking dinner", limit=1)[0].key == "c"


def test_index_false_items_are_stored_but_never_scored(graph_store: MindStoreGraphStore) -> None:
    graph_store.put(("docs",), "hidden", {"text": "peanut allergy action plan"}, index=False)
    graph_store.put(("docs",), "shown", {"text": "how to water tomatoes"})
    assert graph_store.get(("docs",), "hidden").value == {"text": "peanut allergy action plan"}
    hits = graph_store.search(("docs",), query="peanut allergy")
    assert [(h.key, h.score is None) for h in hits] == [("shown", False), ("hidden", True)]
    assert [h.key for h in graph_store.search(("docs",), query="peanut allergy", limit=1)] == ["shown"]
    assert {h.key for h in graph_store.search(("docs",))} == {"hidden", "shown"}


def test_filters_on_values(graph_store: MindStoreGraphStore) -> None:
    fill(graph_store)
    assert sorted(keys(graph_store.search(("users",), filter={"year": {"$gte": 2024}}))) == [(("users", "alice"), "diet"), (("users", "alice", "notes"), "n1")]
    assert keys(graph_store.search((), filter={"text": "Bob is vegetarian"})) == [(("users", "bob"), "diet")]
    assert keys(graph_store.search((), filter={"year": {"$gt": 2020, "$lt": 2022}})) == [(("users", "bob"), "pet")]
    assert len(graph_store.search((), filter={"year": {"$ne": 2020}}, limit=50)) == 5
    hits = graph_store.search(("users",), query="pets", filter={"year": {"$lte": 2021}})
    assert {h.key for h in hits} == {"pet", "job"}
    graph_store.put(("docs",), "nested", {"meta": {"lang": "pt"}})
    assert keys(graph_store.search(("docs",), filter={"meta": {"lang": "pt"}})) == [(("docs",), "nested")]


def test_list_namespaces_prefix_suffix_depth(graph_store: MindStoreGraphStore) -> None:
    fill(graph_store)
    assert graph_store.list_namespaces() == [("docs",), ("users", "alice"), ("users", "alice", "notes"), ("users", "bob")]
    assert graph_store.list_namespaces(prefix=("users",)) == [("users", "alice"), ("users", "alice", "notes"), ("users", "bob")]
    assert graph_store.list_namespaces(suffix=("bob",)) == [("users", "bob")]
    assert graph_store.list_namespaces(prefix=("users", "*", "notes")) == [("users", "alice", "notes")]
    assert graph_store.list_namespaces(max_depth=1) == [("docs",), ("users",)]
    assert graph_store.list_namespaces(limit=2, offset=1) == [("users", "alice"), ("users", "alice", "notes")]


def test_same_answers_as_langgraphs_in_memory_store(graph_store: MindStoreGraphStore) -> None:
    reference = InMemoryStore()
    for s in (graph_store, reference):
        fill(s)
        s.put(("users", "alice"), "job", {"text": "Alice works as a nurse in Porto", "year": 2026})
        s.delete(("users", "bob"), "pet")
    ops = [
        GetOp(("users", "alice"), "job"),
        GetOp(("users", "bob"), "pet"),
        SearchOp(("users",), filter={"year": {"$gte": 2023}}, limit=50),
        SearchOp(("users", "alice"), limit=50),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("users",)),), max_depth=2),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("notes",)),)),
    ]
    ours, theirs = graph_store.batch(ops), reference.batch(ops)
    assert ours[0].value == theirs[0].value and ours[0].namespace == theirs[0].namespace
    assert ours[1] is None and theirs[1] is None
    for i in (2, 3):
        assert sorted((*k, str(v)) for k, v in zip(keys(ours[i]), [x.value for x in ours[i]])) == sorted(
            (*k, str(v)) for k, v in zip(keys(theirs[i]), [x.value for x in theirs[i]])
        )
    assert ours[4:] == theirs[4:]


def test_batch_runs_ops_in_order(graph_store: MindStoreGraphStore) -> None:
    results = graph_store.batch([
        PutOp(("a",), "k", {"n": 1}),
        GetOp(("a",), "k"),
        PutOp(("a",), "k", {"n": 2}),
        SearchOp(("a",)),
        PutOp(("a",), "k", None),
        GetOp(("a",), "k"),
        ListNamespacesOp(),
    ])
    assert results[0] is None and results[1].value == {"n": 1}
    assert [i.value for i in results[3]] == [{"n": 2}]
    assert results[5] is None and results[6] == []
    # A run of puts is applied together; for one key the last put wins.
    graph_store.batch([PutOp(("b", str(i % 3)), f"k{i % 5}", {"n": i}) for i in range(30)])
    assert graph_store.list_namespaces() == [("b", "0"), ("b", "1"), ("b", "2")]
    assert graph_store.get(("b", "2"), "k4").value == {"n": 29} and graph_store.get(("b", "0"), "k0").value == {"n": 15}
    assert len(graph_store.search(("b",), limit=100)) == 15


@pytest.mark.anyio
async def test_async_methods(graph_store: MindStoreGraphStore) -> None:
    await graph_store.aput(("users", "alice"), "diet", {"text": "Alice is allergic to peanuts"})
    await graph_store.aput(("users", "bob"), "diet", {"text": "Bob is vegetarian"})
    assert (await graph_store.aget(("users", "alice"), "diet")).value["text"] == "Alice is allergic to peanuts"
    hits = await graph_store.asearch(("users", "bob"), query="meat")
    assert [h.namespace for h in hits] == [("users", "bob")]
    assert await graph_store.alist_namespaces(prefix=("users",)) == [("users", "alice"), ("users", "bob")]
    results = await graph_store.abatch([GetOp(("users", "bob"), "diet"), PutOp(("users", "bob"), "diet", None), GetOp(("users", "bob"), "diet")])
    assert results[0].value["text"] == "Bob is vegetarian" and results[2] is None
    await graph_store.adelete(("users", "alice"), "diet")
    assert await graph_store.aget(("users", "alice"), "diet") is None


def test_bad_input_gets_langgraphs_errors_and_changes_nothing(graph_store: MindStoreGraphStore, store: MindStore) -> None:
    graph_store.put(("docs",), "k", {"x": 1})
    before = store.count()
    with pytest.raises(InvalidNamespaceError):
        graph_store.put(("a.b",), "k", {"x": 1})
    with pytest.raises(InvalidNamespaceError):
        graph_store.put((), "k", {"x": 1})
    with pytest.raises(InvalidNamespaceError):
        graph_store.batch([PutOp(("a.b", "c"), "k", {"x": 1})])  # ops handed to batch directly are checked too
    with pytest.raises(InvalidNamespaceError):
        graph_store.put(("langgraph",), "k", {"x": 1})  # reserved for LangGraph, which writes it through batch()
    with pytest.raises(InvalidNamespaceError):
        graph_store.put(("x" * 300,), "k", {"x": 1})
    with pytest.raises(ValueError):
        graph_store.put(("docs",), "k2", "not a dict")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        graph_store.put(("docs",), "k2", {"when": object()})
    with pytest.raises(ValueError):
        graph_store.search(("docs",), filter={"x": {"$regex": ".*"}})
    with pytest.raises(ValueError):
        graph_store.search(("docs",), query="x", limit=-1)
    with pytest.raises(NotImplementedError):
        graph_store.put(("docs",), "k2", {"x": 1}, ttl=5)
    with pytest.raises(ValueError):  # a bad put in a batch: none of the batch's puts is applied
        graph_store.batch([PutOp(("docs",), "k", {"x": 2}), PutOp(("docs",), "k3", {"x": 3}), PutOp(("docs",), "k4", {"x": float("nan")})])
    assert store.count() == before and graph_store.get(("docs",), "k").value == {"x": 1}


class State(TypedDict):
    user: str
    fact: str
    recalled: list[str]


def test_a_compiled_graph_remembers_through_the_store(graph_store: MindStoreGraphStore) -> None:
    from langgraph.graph import END, START, StateGraph
    from langgraph.runtime import Runtime

    def remember(state: State, runtime: Runtime) -> dict:
        runtime.store.put(("memories", state["user"]), str(abs(hash(state["fact"]))), {"text": state["fact"]})
        return {}

    def recall(state: State, runtime: Runtime) -> dict:
        hits = runtime.store.search(("memories", state["user"]), query="what does the user eat?", limit=1)
        return {"recalled": [h.value["text"] for h in hits]}

    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    graph = builder.compile(store=graph_store)
    graph.invoke({"user": "alice", "fact": "Alice is vegan", "recalled": []})
    out = graph.invoke({"user": "bob", "fact": "Bob plays bass in a jazz trio", "recalled": []})
    assert out["recalled"] == ["Bob plays bass in a jazz trio"]  # alice's memory is in another namespace


# -- the behaviour LangGraph's own store tests expect of InMemoryStore, asked of ours -----------

NESTED = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f"), ("users", "123"), ("users", "456", "settings"), ("admin", "users", "789")]


def test_list_namespaces_as_langgraph_specifies(graph_store: MindStoreGraphStore) -> None:
    for i, ns in enumerate(NESTED):
        graph_store.put(ns, f"id_{i}", {"data": f"value_{i:02d}"})
    ls = graph_store.list_namespaces
    assert ls(prefix=("a", "b")) == [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert ls(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert ls(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert ls(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert ls(prefix=("a", "b"), limit=2) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert ls(prefix=("a", "b"), offset=2) == [("a", "b", "d", "i"), ("a", "b", "f")]
    assert ls(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert ls(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert ls(prefix=("*", "users"), suffix=("*", "settings")) == []
    assert ls(prefix=("nonexistent",)) == [] and ls(prefix=("users", "123")) == [("users", "123")]
    assert ls(max_depth=2) == [("a", "b"), ("a", "c"), ("admin", "users"), ("b", "a"), ("users", "123"), ("users", "456")]
    assert ls() == sorted(NESTED)


def test_list_namespaces_pages(graph_store: MindStoreGraphStore) -> None:
    assert graph_store.list_namespaces() == []
    graph_store.batch([PutOp(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": i}) for i in range(12)])
    assert graph_store.list_namespaces(prefix=("namespace",), limit=5, offset=5) == [("namespace", f"sub_{i:02d}") for i in range(5, 10)]


def test_labels_are_literal_and_langgraph_may_write_its_root(graph_store: MindStoreGraphStore) -> None:
    graph_store.put(("tenant", "a_%"), "k", {"x": 1})
    graph_store.put(("tenant", "ab"), "k", {"x": 2})
    assert [i.value for i in graph_store.search(("tenant", "a_%"))] == [{"x": 1}]  # no LIKE patterns
    graph_store.batch([PutOp(("langgraph", "foo"), "bar", {"foo": "bar"})])
    assert graph_store.get(("langgraph", "foo"), "bar").value == {"foo": "bar"}
    graph_store.put(("foo", "langgraph", "foo"), "bar", {"foo": "bar"})
    assert graph_store.search(("foo", "langgraph", "foo"))[0].value == {"foo": "bar"}
    for bad in (("foo.bar",), ("foo", ""), (123,)):
        for call in (lambda: graph_store.get(bad, "k"), lambda: graph_store.search(bad), lambda: graph_store.list_namespaces(prefix=bad), lambda: graph_store.delete(bad, "k")):
            with pytest.raises(InvalidNamespaceError):
                call()


def test_updating_an_item_updates_what_a_query_finds(graph_store: MindStoreGraphStore) -> None:
    graph_store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    graph_store.put(("test",), "doc2", {"text": "something about dogs"})
    graph_store.put(("test",), "doc3", {"text": "text about birds"})
    before = graph_store.search(("test",), query="Zany Xerxes")
    assert before[0].key == "doc1"
    graph_store.put(("test",), "doc1", {"text": "new text about dogs"})
    after = next(r.score for r in graph_store.search(("test",), query="Zany Xerxes") if r.key == "doc1")
    assert after < before[0].score
    assert graph_store.search(("test",), query="new text about dogs")[0].key == "doc1"
    graph_store.put(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    assert "doc4" not in [r.key for r in graph_store.search(("test",), query="new text about dogs", limit=3)]


def test_query_search_with_filters_and_pages(graph_store: MindStoreGraphStore) -> None:
    docs = {"doc1": ("red apple", "red", 4.5), "doc2": ("red car", "red", 3.0), "doc3": ("green apple", "green", 4.0), "doc4": ("blue car", "blue", 3.5)}
    for key, (text, color, score) in docs.items():
        graph_store.put(("test",), key, {"text": text, "color": color, "score": score})
    assert [r.key for r in graph_store.search(("test",), query="apple", filter={"color": "red"})][0] == "doc1"
    assert [r.key for r in graph_store.search(("test",), query="car", filter={"color": "red"})] == ["doc2", "doc1"]
    above = graph_store.search(("test",), query="blue", filter={"score": {"$gt": 3.2}})
    assert len(above) == 3 and above[0].key == "doc4"
    assert [r.key for r in graph_store.search(("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"})] == ["doc3"]
    first, second = graph_store.search(("test",), query="car", limit=2), graph_store.search(("test",), query="car", limit=2, offset=2)
    assert len(first) == len(second) == 2 and {r.key for r in first}.isdisjoint(r.key for r in second)
    for query in ("", None, "   ", "test " * 100, "test!@#$%^&*()"):
        assert len(graph_store.search(("test",), query=query)) == 4


@pytest.mark.anyio
async def test_concurrent_async_calls(graph_store: MindStoreGraphStore) -> None:
    import asyncio

    await asyncio.gather(*(graph_store.aput(("users", f"u{i % 4}"), f"k{i}", {"text": f"fact {i}"}) for i in range(24)))
    found = await asyncio.gather(*(graph_store.asearch(("users", f"u{i}"), query="fact", limit=50) for i in range(4)))
    assert [sorted(int(item.key[1:]) for item in items) for items in found] == [list(range(i, 24, 4)) for i in range(4)]
