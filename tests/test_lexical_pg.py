"""BM25 in PostgreSQL beside the pgvector keys: the same ranking as the per-process index, written
with the slots, no copy in any process; tables made before it and imports are filled in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from mindstore import Config, MindStore
from mindstore.lexical import Bm25, tokenize
from mindstore.lexical_pg import PgLexical
from mindstore.retrieval import indexed_text

pytestmark = pytest.mark.postgres

TURNS = [
    ("alice", "I adopted a beagle puppy named Biscuit last week", {"speaker": "Alice", "occurred_at": "2024-03-02T10:00:00"}),
    ("alice", "Biscuit chewed my running shoes again", {"speaker": "Alice"}),
    ("alice", "My sister lives in Porto and teaches chemistry", {}),
    ("bob", "Bob's beagle is called Pepper and hates the rain", {"speaker": "Bob"}),
    ("bob", "I run a half marathon every spring", {}),
    ("bob", "Running in the rain is my favourite kind of running", {}),
]
QUERIES = ["what is the name of the beagle", "running shoes", "rain", "who teaches chemistry in Porto", "Alice March 2024", "zzz unknown"]


def pg_store(pg_url: str, tmp_path: Path) -> MindStore:
    s = MindStore(pg_url, config=Config(key_index="pgvector", index_dir=tmp_path / "index"))
    for user, body, meta in TURNS:
        s.add(body, user_id=user, metadata=meta, dedup=False)
    return s


def test_bm25_in_postgresql_ranks_and_scores_as_the_per_process_index(pg_url: str, tmp_path: Path) -> None:
    with pg_store(pg_url, tmp_path) as s:
        lex = s.lexical_index()
        assert isinstance(lex, PgLexical) and len(lex) == len(TURNS)
        ref = Bm25()
        for slot in s.list(limit=100).slots:
            ref.add(slot.id, tokenize(indexed_text(slot.text, slot.metadata)))
        alice = np.array(sorted(sl.id for sl in s.list(user_id="alice", limit=100).slots))
        for q in QUERIES:
            for subset in (None, alice):
                got, want = lex.search(q, 4, subset), ref.search(tokenize(q), 4, subset)
                assert got[0].tolist() == want[0].tolist(), q
                assert np.allclose(got[1], want[1], rtol=1e-4), q
        assert lex.search("beagle", 4)[0].size == 2
    assert not list(tmp_path.rglob("*.bm25*"))  # the index is the table: no file, no copy


def test_updates_deletes_and_restatements_reach_the_table_in_their_transaction(pg_url: str, tmp_path: Path) -> None:
    with pg_store(pg_url, tmp_path) as s, MindStore(pg_url, config=Config(key_index="pgvector", index_dir=tmp_path / "b")) as other:
        pepper = other.search("Pepper", mode="lexical", user_id="bob", k=1)[0].slot
        s.update(pepper.id, text="Bob's beagle is called Nutmeg")
        assert [h.slot.id for h in other.search("Nutmeg", mode="lexical", user_id="bob", k=1)] == [pepper.id]
        assert other.search("Pepper", mode="lexical", user_id="bob", k=1) == []
        s.update(pepper.id, metadata={"speaker": "Roberto"})  # the speaker is indexed with the text
        assert [h.slot.id for h in other.search("Roberto", mode="lexical", user_id="bob", k=1)] == [pepper.id]
        s.delete(pepper.id)
        assert other.search("Nutmeg", mode="lexical", user_id="bob", k=1) == []
        with s.engine.connect() as c:
            assert c.scalar(text(f"SELECT count(*) FROM {s.lexical_index().table}")) == len(TURNS) - 1


def test_a_key_table_without_its_text_table_gets_one_when_opened(pg_url: str, tmp_path: Path) -> None:
    with pg_store(pg_url, tmp_path) as s:
        table = s.lexical_index().table
        with s.engine.begin() as c:  # what a store made before BM25 moved into PostgreSQL has
            c.execute(text(f"DROP TABLE {table}"))
    with MindStore(pg_url, config=Config(index_dir=tmp_path / "index")) as s:
        assert s.index_info().kind == "hnsw (pgvector)"
        assert [h.slot.text for h in s.search("Porto chemistry", mode="lexical", k=1)] == ["My sister lives in Porto and teaches chemistry"]
        assert len(s.lexical_index()) == len(TURNS)


def test_an_import_into_a_pgvector_space_gets_its_keys_and_terms(pg_url: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    with pg_store(pg_url, tmp_path) as s:
        assert s.export(dump) == len(TURNS)
        s.reset()
        s.delete(s.add("a placeholder that makes the space and its tables again", user_id="carol").id)
        assert s.index_info().kind == "hnsw (pgvector)" and s.index_info().keys == 0
        assert s.import_(dump) == len(TURNS)
        info = s.index_info()
        assert info.keys == len(TURNS) and info.repaired is None
        assert [h.slot.text for h in s.search("beagle puppy", user_id="alice", k=1, mode="dense")][0].startswith("I adopted")
        assert [h.slot.text for h in s.search("chemistry", mode="lexical", k=1)] == ["My sister lives in Porto and teaches chemistry"]
