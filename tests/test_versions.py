"""Versions of a fact: restatements reinforce, changed near-duplicates supersede, no add loses its
text or metadata, and searches return the newer version first (real MiniLM, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mindstore import Config, InvalidInputError, MindStore, Written
from mindstore.versions import Plan, newest_first, normalise, plan_writes

CORPUS = json.loads((Path(__file__).resolve().parent.parent / "bench" / "data" / "updates.json").read_text())
# The pairs whose old and new texts are less alike than Config.version_threshold: reworded so far
# that no similarity rule ties them (docs/benchmarks.md lists them); a resolver can.
# -- pure logic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b"), [
    ("Alice is allergic to peanuts.", "alice is allergic to peanuts"),
    ("My sister’s name is Emma!", "my sister's name is emma"),
    ("Ｔｈｅ ｃａｔ  sleeps\non the sofa", "the cat sleeps on the sofa"),
    ("Call 555-1234, please", "call 555-1234 please"),
])
def test_normalise_sets_case_quotes_width_and_punctuation_aside(a: str, b: str) -> None:
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Call 555-1234", "Call 5551234"),
    ("It costs 3.5 dollars", "It costs 35 dollars"),
    ("The meeting is at 10:30", "The meeting is at 1030"),
    ("I eat meat", "I don't eat meat"),
])
def test_normalise_keeps_numbers_and_words_apart(a: str, b: str) -> None:
    assert normalise(a) != normalise(b)


def _unit(rows: list[list[float]]) -> np.ndarray:
    v = np.array(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_plan_reinforces_restatements_and_supersedes_changes() -> None:
    unit = _unit([[1, 0], [1, 0.01], [0, 1]])
    nearest = [[(7, 0.99)], [(7, 0.98)], []]
    plans = plan_writes(["Note 1.", "note 2", "other"], unit, nearest, {7: "note 1"}, 0.95)
    # the first restates slot 7; the second supersedes it; the third is new
    assert plans == [Plan("reinforce", old=7), Plan("supersede", old=7), Plan("add")]


def test_plan_compares_a_later_text_with_the_version_an_earlier_one_left() -> None:
    unit = _unit([[1, 0], [1, 0.01], [1, 0.02]])
    nearest = [[(7, 0.99)], [(7, 0.99)], [(7, 0.99)]]
    plans = plan_writes(["v2", "v3", "v3!"], unit, nearest, {7: "v1"}, 0.95)
    assert plans == [Plan("supersede", old=7), Plan("supersede", prior=0), Plan("reinforce", prior=1)]


def test_plan_asks_the_resolver_only_about_changed_near_duplicates() -> None:
    asked: list[tuple[str, str]] = []

    def resolve(old: str, new: str) -> str:
        asked.append((old, new))
        return "add"

    unit = _unit([[1, 0], [1, 0]])
    plans = plan_writes(["v2", "V2."], unit, [[(7, 0.99)], [(7, 0.99)]], {7: "v1"}, 0.95, resolve)
    assert asked == [("v1", "v2")]  # the restatement of v2 needs no judge
    assert plans == [Plan("add"), Plan("reinforce", prior=0)]
    with pytest.raises(InvalidInputError, match="resolver returned"):
        plan_writes(["v2"], unit[:1], [[(7, 0.99)]], {7: "v1"}, 0.95, lambda old, new: "merge")


def test_newest_first_reorders_only_versions_the_question_does_not_tell_apart() -> None:
    unit = {1: np.array([1.0, 0.0]), 2: np.array([0.99, 0.14]), 3: np.array([0.0, 1.0])}
    when = {1: "2023-01-01", 2: "2023-06-01", 3: "2024-01-01"}.__getitem__
    words = {1: frozenset({"note", "w10x"}), 2: frozenset({"note", "w20x"}), 3: frozenset({"other"})}.__getitem__
    assert newest_first([1, 3, 2], unit, when, words, frozenset({"note"}), 0.9) == [2, 3, 1]
    assert newest_first([1, 3, 2], unit, when, words, frozenset({"note"}), 0.9, earliest=True) == [1, 3, 2]
    # a question naming the value they differ in is no tie
    assert newest_first([1, 3, 2], unit, when, words, frozenset({"w10x"}), 0.9) == [1, 3, 2]


def _angle(deg: float) -> np.ndarray:
    return np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg)), 0.0])


def test_a_statement_of_a_change_is_a_version_at_a_lower_similarity_when_singled_out() -> None:
    # 1: "My manager is Priya Shah." 2: "Priya left, so I report to Daniel now." (cosine 0.5)
    # 3: an unrelated older hit, far from both
    unit = {1: _angle(0), 2: _angle(60), 3: np.array([0.0, 0.0, 1.0])}
    when = {1: 1, 2: 2, 3: 0}.__getitem__
    says = {1: frozenset({"manag", "priya"}), 2: frozenset({"priya", "left", "report", "daniel", "now"}), 3: frozenset({"bike"})}
    q = frozenset({"manag"})
    assert newest_first([1, 3, 2], unit, when, says.__getitem__, q, 0.6) == [1, 3, 2]  # no change threshold: no tie
    assert newest_first([1, 3, 2], unit, when, says.__getitem__, q, 0.6, change_threshold=0.3) == [2, 3, 1]
    # without a word of change the same keys are two facts
    plain = {**says, 2: frozenset({"priya", "report", "daniel"})}.__getitem__
    assert newest_first([1, 3, 2], unit, when, plain, q, 0.6, change_threshold=0.3) == [1, 3, 2]
    # nor when either is closer to another hit returned and the question prefers the older one
    unit4 = {**unit, 4: _angle(20)}
    when4 = {1: 1, 2: 2, 3: 0, 4: 0}.__getitem__
    says4 = {**says, 4: frozenset({"team"})}.__getitem__
    rel = {1: 0.7, 2: 0.35, 3: 0.1, 4: 0.5}
    assert newest_first([1, 4, 2], unit4, when4, says4, q, 0.95, change_threshold=0.3, relevance=rel) == [1, 4, 2]
    # unless the question finds the newer one as relevant
    assert newest_first([1, 4, 2], unit4, when4, says4, q, 0.95, change_threshold=0.3, relevance={**rel, 2: 0.69}) == [2, 4, 1]


def test_a_newer_change_just_below_k_is_returned_with_the_hit_it_updates() -> None:
    unit = {1: _angle(0), 2: np.array([0.0, 0.0, 1.0]), 3: np.array([0.0, -1.0, 0.0]), 4: _angle(60), 5: _angle(55)}
    when = {1: 1, 2: 0, 3: 0, 4: 2, 5: 0}.__getitem__
    says = {1: frozenset({"job"}), 2: frozenset({"a"}), 3: frozenset({"b"}), 4: frozenset({"job", "done"}), 5: frozenset({"job", "done"})}.__getitem__
    # 4 (newer, states a change) ranked 4th with k = 3: it joins 1 and the last hit gives way
    assert newest_first([1, 2, 3, 4], unit, when, says, frozenset(), 0.9, change_threshold=0.3, k=3) == [4, 1, 2]
    # an older one from below k never joins: it is no news
    assert newest_first([1, 2, 3, 5], unit, when, says, frozenset(), 0.9, change_threshold=0.3, k=3) == [1, 2, 3]
    # without the change rule nothing below k is taken
    assert newest_first([1, 2, 3, 4], unit, when, says, frozenset(), 0.9, k=3) == [1, 2, 3]


# -- the store ----------------------------------------------------------------------------------


def test_a_changed_fact_supersedes_and_searches_return_the_new_one(store: MindStore) -> None:
    a = store.add("Alice's phone number is 555-1234", user_id="alice", metadata={"source": "chat"})
    b = store.add("Alice's phone number is 555-9876", user_id="alice", metadata={"source": "cli"})
    assert isinstance(b, Written) and (a.change, b.change, b.supersedes) == ("added", "superseded", a.id)
    assert b.text == "Alice's phone number is 555-9876" and b.metadata == {"source": "cli"}
    hits = store.search("what is alice's phone number", user_id="alice")
    assert [h.slot.id for h in hits] == [b.id]
    both = store.search("what is alice's phone number", user_id="alice", include_superseded=True)
    assert {h.slot.id for h in both} == {a.id, b.id}
    assert store.get(a.id).superseded_by == b.id and store.get(a.id).metadata == {"source": "chat"}
    assert [(e.kind, e.new_metadata) for e in store.history(a.id)][1] == ("supersede", {"superseded_by": b.id})
    assert store.count(user_id="alice") == 2  # the old version is kept


def test_a_restatement_reinforces_and_keeps_its_metadata(store: MindStore) -> None:
    a = store.add("Bob works at Acme.", user_id="bob", metadata={"source": "chat"})
    b = store.add("bob works at acme", user_id="bob", metadata={"seen": 2})
    assert (b.id, b.change, b.usage.writes) == (a.id, "reinforced", 2)
    assert store.get(a.id).metadata == {"source": "chat", "seen": 2}
    event = store.history(a.id)[-1]
    assert (event.kind, event.new_text, event.new_metadata) == ("reinforce", "bob works at acme", {"seen": 2})


def test_deleting_the_newest_version_brings_the_older_back(store: MindStore) -> None:
    v1 = store.add("The gate code is 4411", user_id="u")
    v2 = store.add("The gate code is 4412", user_id="u")
    v3 = store.add("The gate code is 4413", user_id="u")
    assert store.get(v1.id).superseded_by == v2.id and store.get(v2.id).superseded_by == v3.id
    store.delete(v2.id)
    assert store.get(v1.id).superseded_by == v3.id  # the chain closes over the gap
    store.delete(v3.id)
    assert store.get(v1.id).superseded_by is None
    assert [h.slot.id for h in store.search("gate code", user_id="u")] == [v1.id]
    assert [e.kind for e in store.history(v1.id)] == ["add", "supersede", "supersede", "restore"]


def test_versions_survive_export_and_import(store: MindStore, tmp_path: Path) -> None:
    a = store.add("The wifi password is tulip42", user_id="u")
    b = store.add("The wifi password is tulip43", user_id="u")
    store.export(tmp_path / "dump.jsonl")
    with MindStore(f"sqlite:///{tmp_path / 'copy.db'}", config=Config(index_dir=tmp_path / "copy")) as copy:
        copy.import_(tmp_path / "dump.jsonl")
        copy.export(tmp_path / "again.jsonl")
        assert copy.get(a.id).superseded_by == b.id
        assert [h.slot.id for h in copy.search("wifi password", user_id="u")] == [b.id]
    assert (tmp_path / "dump.jsonl").read_bytes() == (tmp_path / "again.jsonl").read_bytes()


def test_a_resolver_decides_for_changed_near_duplicates(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config, resolver=lambda old, new: "add") as s:
        a = s.add("The gate code is 4411", user_id="u")
        b = s.add("The gate code is 4412", user_id="u")
        assert (b.change, s.get(a.id).superseded_by) == ("added", None)
    with pytest.raises(InvalidInputError, match="resolver must be a function"):
        MindStore(db_url, config=config, resolver="yes")


def test_update_corpus_every_restatement_reinforces_and_no_add_loses_anything(store: MindStore) -> None:
    firsts = store.add_many([r["text"] for r in CORPUS["restatements"]], user_id="u", metadata=[{"n": i} for i in range(len(CORPUS["restatements"]))])
    again = store.add_many([r["again"] for r in CORPUS["restatements"]], user_id="u", metadata={"again": True})
    assert [s.change for s in firsts] == ["added"] * len(firsts)
    assert [(s.id, s.change) for s in again] == [(s.id, "reinforced") for s in firsts]
    assert store.count(user_id="u") == len(firsts)
    assert all(store.get(s.id).metadata == {"n": i, "again": True} for i, s in enumerate(firsts))


def test_update_corpus_returns_the_newer_fact_first(store: MindStore) -> None:
    """All pairs in one scope, as one user's memory: the olds first, a later date the news."""
    updates = CORPUS["updates"]
    assert len(updates) >= 100 and len(CORPUS["restatements"]) >= 50
    olds = store.add_many([u["old"] for u in updates], user_id="u", occurred_at="2023-01-01", metadata={"v": "old"})
    news = store.add_many([u["new"] for u in updates], user_id="u", occurred_at="2023-06-01", metadata={"v": "new"})
    assert all(n.text == u["new"] and n.metadata["v"] == "new" for n, u in zip(news, updates))  # nothing lost
    missed = []
    for u, old, new in zip(updates, olds, news):
        ranked = [h.slot.id for h in store.search(u["query"], user_id="u", k=10)]
        if new.id not in ranked or (old.id in ranked and ranked.index(old.id) < ranked.index(new.id)):
            missed.append(u["old"])
    assert missed == []


def test_a_version_2_database_gains_the_superseded_column_on_open(db_url: str, config: Config) -> None:
    from sqlalchemy import create_engine, text

    with MindStore(db_url, config=config) as s:
        old = s.add("The gate code is 4411", user_id="u")
    engine = create_engine(db_url)
    with engine.begin() as c:  # what mindstore made with schema version 2
        c.execute(text("DROP INDEX ix_slots_superseded"))
        c.execute(text("ALTER TABLE slots DROP COLUMN superseded_by"))
        c.execute(text("UPDATE mindstore_meta SET value = '2' WHERE key = 'schema_version'"))
    with MindStore(db_url, config=config) as s:
        new = s.add("The gate code is 4412", user_id="u")
        assert (new.supersedes, s.get(old.id).superseded_by) == (old.id, new.id)
    with engine.connect() as c:
        assert c.execute(text("SELECT value FROM mindstore_meta WHERE key = 'schema_version'")).scalar() == "3"
    engine.dispose()


def test_keyed_items_can_keep_the_rankings_order(store: MindStore) -> None:
    store.add_many(["Alice is allergic to peanuts", "Alice is allergic to peanuts and tree nuts"], user_id="u", dedup=False)
    ranked = store.search("peanut allergy", user_id="u", newest_first=False)
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    with pytest.raises(InvalidInputError, match="newest_first"):
        store.search("peanut allergy", newest_first="yes")


@pytest.mark.parametrize(("a", "b"), [("My balance is -200", "My balance is 200"), ("Freezer at -18 C", "Freezer at 18 C"), ("Rate is .5%", "Rate is 5%")])
def test_normalise_keeps_signs_and_decimal_points(a: str, b: str) -> None:
    assert normalise(a) != normalise(b)
    assert normalise(a + ".") == normalise(a)


def test_a_hit_found_only_by_its_words_is_still_returned(store: MindStore) -> None:
    """The default hybrid search keeps candidates that only BM25 proposed."""
    store.add_many([f"Shopping list item {i}: apples, bread and milk" for i in range(60)], user_id="u", dedup=False)
    code = store.add("zq7 is the locker combination", user_id="u")
    assert code.id in [h.slot.id for h in store.search("zq7", user_id="u", k=5)]


def test_calendar_words_are_read_in_the_callers_timezone(store: MindStore) -> None:
    friday = store.add("I baked bread", user_id="u", occurred_at="2023-05-19T18:00-05:00")
    store.add("I baked a cake", user_id="u", occurred_at="2023-05-20T18:00-05:00")
    # Saturday 21:00 in Chicago is already Sunday in UTC: "yesterday" is Friday there
    hits = store.search("what did I bake yesterday?", user_id="u", now="2023-05-20T21:00-05:00", k=1)
    assert [h.slot.id for h in hits] == [friday.id]
    with pytest.raises(InvalidInputError, match="out of range"):
        store.search("cake", now="9999-12-31T23:00-05:00")
