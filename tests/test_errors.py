"""Every bad input raises its typed MindStoreError and leaves the store unchanged, row for row."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import snapshot
from mindstore import (
    Config,
    EmbedderMismatchError,
    InvalidFilterError,
    InvalidInputError,
    InvalidVectorError,
    MindStore,
    MindStoreError,
    NotFoundError,
    SpaceError,
    StoreClosedError,
)


@pytest.fixture
def filled(db_url: str, config: Config):
    with MindStore(db_url, config=config) as s:
        s.add("Alice is allergic to peanuts", user_id="alice", metadata={"year": 2024})
        s.add("Bob plays bass", user_id="bob")
        s.create_space("vec", dim=4, key_source="test")
        s.add_vectors(np.eye(4, dtype=np.float32), space="vec", labels=list("abcd"))
        yield s


BAD_CALLS = {
    "empty text": (InvalidInputError, lambda s: s.add("   ", user_id="alice")),
    "non-string text": (InvalidInputError, lambda s: s.add(42, user_id="alice")),
    "bytes text": (InvalidInputError, lambda s: s.add(b"hello", user_id="alice")),
    "empty text in a batch": (InvalidInputError, lambda s: s.add_many(["fine", ""], user_id="alice")),
    "string instead of a list": (InvalidInputError, lambda s: s.add_many("just one", user_id="alice")),
    "empty user id": (InvalidInputError, lambda s: s.add("text", user_id="")),
    "non-string user id": (InvalidInputError, lambda s: s.add("text", user_id=7)),
    "metadata not a dict": (InvalidInputError, lambda s: s.add("text", metadata=["x"])),
    "metadata not JSON": (InvalidInputError, lambda s: s.add("text", metadata={"when": object()})),
    "metadata with NaN": (InvalidInputError, lambda s: s.add("text", metadata={"x": math.nan})),
    "metadata list of wrong length": (InvalidInputError, lambda s: s.add_many(["a b", "c d"], metadata=[{}])),
    "bad message shape": (InvalidInputError, lambda s: s.add_messages([{"content": "no role"}])),
    "bad message content": (InvalidInputError, lambda s: s.add_messages([{"role": "user", "content": 5}])),
    "vector of wrong dimension": (InvalidVectorError, lambda s: s.add_vectors(np.ones((1, 5)), space="vec")),
    "vector with NaN": (InvalidVectorError, lambda s: s.add_vectors(np.array([[1, math.nan, 0, 0]]), space="vec")),
    "zero vector": (InvalidVectorError, lambda s: s.add_vectors(np.zeros((1, 4)), space="vec")),
    "vector too large to normalise": (InvalidVectorError, lambda s: s.add_vectors(np.full((1, 4), 1e30), space="vec")),
    "vector with infinity": (InvalidVectorError, lambda s: s.add_vectors(np.array([[1, math.inf, 0, 0]]), space="vec")),
    "query vector of wrong dimension": (InvalidVectorError, lambda s: s.search_vector([1.0, 2.0], space="vec")),
    "labels of wrong length": (InvalidInputError, lambda s: s.add_vectors(np.eye(4), space="vec", labels=["a"])),
    "unknown space": (SpaceError, lambda s: s.add_vectors(np.eye(4), space="nope")),
    "space with other dim": (SpaceError, lambda s: s.create_space("vec", dim=8, key_source="test")),
    "unknown id get": (NotFoundError, lambda s: s.get(999_999)),
    "unknown id update": (NotFoundError, lambda s: s.update(999_999, text="new words")),
    "unknown id delete": (NotFoundError, lambda s: s.delete(999_999)),
    "unknown id history": (NotFoundError, lambda s: s.history(999_999)),
    "string id": (InvalidInputError, lambda s: s.get("1")),
    "update with nothing": (InvalidInputError, lambda s: s.update(1)),
    "update to empty text": (InvalidInputError, lambda s: s.update(1, text="")),
    "update with bad metadata": (InvalidInputError, lambda s: s.update(1, metadata="x")),
    "empty query": (InvalidInputError, lambda s: s.search("")),
    "k zero": (InvalidInputError, lambda s: s.search("peanuts", k=0)),
    "k not int": (InvalidInputError, lambda s: s.search("peanuts", k=2.5)),
    "min_score NaN": (InvalidInputError, lambda s: s.search("peanuts", min_score=math.nan)),
    "unknown filter operator": (InvalidFilterError, lambda s: s.search("peanuts", filters={"year": {"$like": "20%"}})),
    "filter not a dict": (InvalidFilterError, lambda s: s.search("peanuts", filters="year = 2024; DROP TABLE slots")),
    "range filter on a list": (InvalidFilterError, lambda s: s.search("peanuts", filters={"year": {"$gt": [1]}})),
    "$in with a scalar": (InvalidFilterError, lambda s: s.search("peanuts", filters={"year": {"$in": 2024}})),
    "bad filter in list": (InvalidFilterError, lambda s: s.list(filters={"$and": []})),
    "bad cursor": (InvalidInputError, lambda s: s.list(cursor="'; DROP TABLE slots; --")),
    "bad limit": (InvalidInputError, lambda s: s.list(limit=0)),
    "delete_all without scope": (InvalidInputError, lambda s: s.delete_all()),
    "import of a missing file": (InvalidInputError, lambda s: s.import_("/nonexistent/dump.jsonl")),
}


@pytest.mark.parametrize("case", list(BAD_CALLS), ids=list(BAD_CALLS))
def test_bad_input_raises_typed_error_and_changes_nothing(filled: MindStore, case: str) -> None:
    error, call = BAD_CALLS[case]
    before = snapshot(filled.url)
    with pytest.raises(error) as info:
        call(filled)
    assert isinstance(info.value, MindStoreError)
    assert len(str(info.value)) > 10  # a message that says something
    assert snapshot(filled.url) == before
    # and the store still works
    assert filled.search("peanuts", user_id="alice", k=1)[0].slot.text == "Alice is allergic to peanuts"


def test_bad_import_file_imports_nothing(filled: MindStore, tmp_path) -> None:
    path = tmp_path / "dump.jsonl"
    filled.export(path)
    lines = path.read_text().splitlines()
    with MindStore(f"sqlite:///{tmp_path / 'fresh.db'}", config=Config(index_dir=tmp_path / "i2")) as fresh:
        broken = tmp_path / "broken.jsonl"
        broken.write_text("\n".join(lines[:-1] + ["{not json"]) + "\n")
        before = snapshot(fresh.url)
        with pytest.raises(InvalidInputError, match="broken.jsonl"):
            fresh.import_(broken)
        assert snapshot(fresh.url) == before


def test_opening_with_another_embedder_is_a_clear_error(db_url: str, config: Config) -> None:
    class Other:
        name = "test/other-model"
        dim = 384

        def embed(self, texts, *, batch_size=64):
            rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
            v = rng.normal(size=(len(texts), 384)).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    with MindStore(db_url, config=config) as s:
        s.add("Alice is allergic to peanuts", user_id="alice")
    before = snapshot(db_url)
    with pytest.raises(EmbedderMismatchError, match="reindex") as err:
        MindStore(db_url, config=config, embedder=Other())
    assert snapshot(db_url) == before
    # the hint names what reopens it: the bundled model by its short name
    assert "embedder='all-MiniLM-L6-v2'" in str(err.value)
    # reindex re-embeds with the new model and records it; the default model then mismatches
    with MindStore(db_url, config=config, embedder=Other(), reindex=True) as s:
        assert s.spaces()[0].key_source == "test/other-model"
        assert s.search("anything", k=1)[0].slot.text == "Alice is allergic to peanuts"
    with pytest.raises(EmbedderMismatchError, match="the embedder object named 'test/other-model'"):
        MindStore(db_url, config=config)
    with MindStore(db_url, config=config, reindex=True) as s:
        assert s.search("what is alice allergic to", k=1)[0].score > 0.5


def test_closed_store_refuses_use(db_url: str, config: Config) -> None:
    s = MindStore(db_url, config=config)
    s.close()
    with pytest.raises(StoreClosedError):
        s.add("too late")


def test_bad_url_and_config_are_typed_errors(tmp_path) -> None:
    from mindstore import DatabaseError

    with pytest.raises(DatabaseError, match="not a database URL"):
        MindStore("not a url at all", config=Config(index_dir=tmp_path))
    with pytest.raises(DatabaseError):
        MindStore("postgresql+psycopg://nobody@127.0.0.1:1/none", config=Config(index_dir=tmp_path))
    with pytest.raises(InvalidInputError):
        Config(dedup_threshold=1.5)
