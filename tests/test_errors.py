"""Every bad input raises its typed MindStoreError and leaves the store unchanged, row for row."""

from __future__ import annotations

import math

import numpy as np
import pytest

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

from conftest import snapshot


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


def _nested_filter(depth: int) -> dict:
    spec: dict = {"year": 2024}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


def _nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


BAD_CALLS.update({
    "lone surrogate in text": (InvalidInputError, lambda s: s.add("bad \ud800 text", user_id="alice")),
    "lone surrogate in a batch": (InvalidInputError, lambda s: s.add_many(["fine words", "bad \udc00"], user_id="alice")),
    "lone surrogate in query": (InvalidInputError, lambda s: s.search("peanuts \ud800")),
    "lone surrogate in user id": (InvalidInputError, lambda s: s.add("fine words", user_id="al\ud800ice")),
    "lone surrogate in a search scope": (InvalidInputError, lambda s: s.search("peanuts", user_id="al\ud800ice")),
    "lone surrogate in metadata": (InvalidInputError, lambda s: s.add("fine words", metadata={"k": ["\ud800"]})),
    "lone surrogate in a metadata key": (InvalidInputError, lambda s: s.update(1, metadata={"\ud800": 1})),
    "NUL in text": (InvalidInputError, lambda s: s.add("nuts\x00bolts", user_id="alice")),
    "NUL in update text": (InvalidInputError, lambda s: s.update(1, text="nuts\x00bolts")),
    "NUL in user id": (InvalidInputError, lambda s: s.add("fine words", user_id="al\x00ice")),
    "NUL in metadata": (InvalidInputError, lambda s: s.add("fine words", metadata={"k": "a\x00"})),
    "text over the size limit": (InvalidInputError, lambda s: s.add("words " * 20_000, user_id="alice")),
    "id past 64 bits get": (NotFoundError, lambda s: s.get(2**63)),
    "id past 64 bits update": (NotFoundError, lambda s: s.update(2**70, text="new words")),
    "id past 64 bits delete": (NotFoundError, lambda s: s.delete(2**63)),
    "id below 64 bits delete_many": (NotFoundError, lambda s: s.delete_many([1, -(2**64)])),
    "id past 64 bits history": (NotFoundError, lambda s: s.history(2**63)),
    "id past 64 bits keys": (NotFoundError, lambda s: s.keys([2**63])),
    "keys of strings": (InvalidInputError, lambda s: s.keys(["a"])),
    "keys not a list": (InvalidInputError, lambda s: s.keys(5)),
    "update_vectors with a None id": (InvalidInputError, lambda s: s.update_vectors([None], np.eye(4)[:1])),
    "deeply nested filter": (InvalidFilterError, lambda s: s.search("peanuts", filters=_nested_filter(5000))),
    "deeply nested filter in list": (InvalidFilterError, lambda s: s.list(filters=_nested_filter(5000))),
    "deeply nested metadata": (InvalidInputError, lambda s: s.add("fine words", metadata={"x": _nested_list(100_000)})),
    "deeply nested update metadata": (InvalidInputError, lambda s: s.update(1, metadata={"x": _nested_list(100_000)})),
    "reranker not a cross-encoder": (InvalidInputError, lambda s: s.search("peanuts", reranker=object())),
})


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


def _b64(values: list[float]) -> str:
    import base64

    return base64.b64encode(np.array(values, dtype=np.float32).tobytes()).decode()


def _first(kind: str):  # noqa: ANN202 - picks the first line of one type
    return lambda lines: next(i for i, obj in enumerate(lines) if obj["type"] == kind)


def _set(line_type: str, **fields):  # noqa: ANN202 - a mutation of the first line of that type
    def mutate(lines: list[dict]) -> int:
        i = _first(line_type)(lines)
        lines[i].update(fields)
        return i

    return mutate


def _duplicate_id(lines: list[dict]) -> int:
    slots = [i for i, obj in enumerate(lines) if obj["type"] == "slot"]
    lines[slots[2]]["id"] = lines[slots[0]]["id"]
    return slots[2]


def _vec_key(values: list[float]):  # noqa: ANN202 - a key for the 4-dim "vec" space
    def mutate(lines: list[dict]) -> int:
        i = next(i for i, obj in enumerate(lines) if obj["type"] == "slot" and obj["space"] == "vec")
        lines[i]["key"] = _b64(values)
        return i

    return mutate


BAD_IMPORT_LINES = {
    "NaN key": _vec_key([1, math.nan, 0, 0]),
    "all-zero key": _vec_key([0, 0, 0, 0]),
    "infinite value vector": _set("slot", value=_b64([math.inf])),
    "text a number": _set("slot", text=42),
    "empty text": _set("slot", text="   "),
    "text with NUL": _set("slot", text="nuts\x00bolts"),
    "text with a lone surrogate": _set("slot", text="bad \ud800 text"),
    "int user_id": _set("slot", user_id=7),
    "over-long user_id": _set("slot", user_id="u" * 300),
    "user_id with NUL": _set("slot", user_id="al\x00ice"),
    "list label": _set("slot", label=["a"]),
    "negative id": _set("slot", id=-3),
    "float id": _set("slot", id=1.5),
    "huge id": _set("slot", id=2**70),
    "duplicate id": _duplicate_id,
    "metadata a string": _set("slot", metadata="x"),
    "metadata with NUL": _set("slot", metadata={"a\x00": 1}),
    "negative reads": _set("slot", reads=-1),
    "no created_at": _set("slot", created_at=None),
    "unknown space": _set("slot", space="nope"),
    "over-long event kind": _set("event", kind="k" * 40),
    "negative event slot": _set("event", slot_id=-1),
    "event text with NUL": _set("event", new_text="a\x00b"),
    "space dim a string": _set("space", dim="4"),
    "line not an object": lambda lines: (lines.__setitem__(1, [1, 2]), 1)[1],
}


@pytest.mark.parametrize("case", list(BAD_IMPORT_LINES))
def test_import_refuses_a_bad_line_by_number_and_writes_nothing(filled: MindStore, tmp_path, case: str) -> None:
    import json

    path = tmp_path / "dump.jsonl"
    filled.export(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    at = BAD_IMPORT_LINES[case](lines)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps(obj) + "\n" for obj in lines))  # ASCII escapes keep lone surrogates
    # Into the filled store (every id clashes, which is checked after the lines) and a fresh one.
    for store in (filled, None):
        target = store or MindStore(f"sqlite:///{tmp_path / 'fresh.db'}", config=Config(index_dir=tmp_path / "i2"))
        before = snapshot(target.url)
        with pytest.raises(InvalidInputError, match=f"broken.jsonl:{at + 1}: ") as info:
            target.import_(broken)
        assert "nothing was imported" in str(info.value)
        assert snapshot(target.url) == before
        if store is None:
            target.close()


def test_a_clean_export_still_imports_into_a_fresh_store(filled: MindStore, tmp_path) -> None:
    path = tmp_path / "dump.jsonl"
    filled.export(path)
    with MindStore(f"sqlite:///{tmp_path / 'fresh.db'}", config=Config(index_dir=tmp_path / "i2")) as fresh:
        assert fresh.import_(path) == filled.count() + filled.count(space="vec")


@pytest.mark.parametrize("where", ["a folder", "None", "a number", "a missing folder", "an empty path", "a NUL byte"])
def test_export_and_import_paths_that_name_no_file_are_typed_errors(filled: MindStore, tmp_path, where: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    path = {"a folder": folder, "None": None, "a number": 3, "a missing folder": tmp_path / "nope" / "deeper",
            "an empty path": "", "a NUL byte": str(tmp_path / "a\x00b.jsonl")}[where]
    before = snapshot(filled.url)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidInputError, match="folder|file|path|exist"):
        filled.import_(path)
    if where != "a missing folder":  # export makes the folders a file path names
        with pytest.raises(InvalidInputError, match="folder|file|path"):
            filled.export(path)
    assert snapshot(filled.url) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # no <dir>.tmp, nothing else left


class _Impostor:
    """Claims the store's model name but makes keys of another dimension."""

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 64

    def embed(self, texts, *, batch_size=64):
        v = np.ones((len(texts), 64), dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


BAD_OPENS = {
    "embedder a number": (InvalidInputError, dict(embedder=123)),
    "space a number": (InvalidInputError, dict(space=5)),
    "space empty": (InvalidInputError, dict(space="")),
    "config not a Config": (InvalidInputError, dict(config={"dedup_threshold": 0.9})),
    "reranker not a cross-encoder": (InvalidInputError, dict(reranker=object())),
    "reindex not a bool": (InvalidInputError, dict(reindex="yes")),
    "embedder with the stored name and another dimension": (EmbedderMismatchError, dict(embedder=_Impostor())),
}


@pytest.mark.parametrize("case", list(BAD_OPENS))
def test_bad_store_arguments_are_typed_errors_and_change_nothing(filled: MindStore, config: Config, case: str) -> None:
    error, kwargs = BAD_OPENS[case]
    before = snapshot(filled.url)
    with pytest.raises(error) as info:
        MindStore(filled.url, **{"config": config, **kwargs})
    assert isinstance(info.value, MindStoreError) and len(str(info.value)) > 10
    assert snapshot(filled.url) == before


def test_a_nul_byte_in_a_database_path_is_a_typed_error(tmp_path) -> None:
    from mindstore import DatabaseError

    with pytest.raises(DatabaseError, match="NUL"):
        MindStore(f"sqlite:///{tmp_path}/me\x00mory.db", config=Config(index_dir=tmp_path / "index"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field, value", [("dedup_threshold", "x"), ("save_index_every", "x"), ("embed_batch_size", 2.5),
                                          ("index_context", "yes"), ("index_dir", 5), ("index_dir", "a\x00b"), ("ttl", "60"),
                                          ("fusion_depth", None), ("approximate_from", 5000.0), ("device", 0)])
def test_wrongly_typed_config_fails_at_construction(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError, match=f"Config.{field}"):
        Config(**{field: value})


def test_a_space_name_that_cannot_name_its_files_is_refused_and_leaves_no_row(filled: MindStore) -> None:
    before = snapshot(filled.url)
    for name in ("n" * 300, "é" * 100, "a/b", "..", "a\\b"):
        with pytest.raises(InvalidInputError, match="space name"):
            filled.create_space(name, dim=4, key_source="test")
    assert snapshot(filled.url) == before
    with pytest.raises(InvalidInputError, match="space"):
        MindStore(filled.url, space="n" * 300)


def _other_app(path, *tables: str) -> bytes:
    import sqlite3

    conn = sqlite3.connect(path)
    for table in tables:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, what TEXT)")
        conn.execute(f"INSERT INTO {table} (what) VALUES ('theirs')")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("tables", [("events",), ("slots", "spaces"), ("users",), ("mindstore_meta",)])
def test_another_applications_sqlite_file_is_refused_untouched(tmp_path, tables: tuple[str, ...]) -> None:
    from mindstore import DatabaseError

    path = tmp_path / "app.db"
    data = _other_app(path, *tables)
    with pytest.raises(DatabaseError, match="not a mindstore database") as info:
        MindStore(f"sqlite:///{path}", config=Config(index_dir=tmp_path / "index"))
    assert "untouched" in str(info.value)
    assert path.read_bytes() == data  # no WAL switch, no ALTER TABLE, no new table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path) -> None:
    from mindstore import DatabaseError

    path = tmp_path / "notes.db"
    path.write_text("x")  # SQLite itself would have taken this over
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        MindStore(f"sqlite:///{path}", config=Config(index_dir=tmp_path / "index"))
    assert path.read_text() == "x"


def test_an_empty_file_or_an_empty_sqlite_database_becomes_a_store(tmp_path) -> None:
    import sqlite3

    empty = tmp_path / "empty.db"
    empty.touch()
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).execute("PRAGMA user_version = 1").connection.close()  # a database file with no tables
    for path in (empty, blank):
        with MindStore(f"sqlite:///{path}", config=Config(index_dir=tmp_path / f"{path.name}.index")) as s:
            s.create_space("v", dim=4, key_source="test")
        with MindStore(f"sqlite:///{path}", config=Config(index_dir=tmp_path / f"{path.name}.index")) as s:  # and opens again
            assert [sp.name for sp in s.spaces()] == ["v"]


@pytest.mark.postgres
def test_a_postgres_database_with_tables_named_like_ours_is_refused_untouched(pg_url: str, tmp_path) -> None:
    from sqlalchemy import create_engine, text

    from mindstore import DatabaseError

    engine = create_engine(pg_url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE events (id SERIAL PRIMARY KEY, what TEXT)"))
        c.execute(text("CREATE TABLE invoices (id SERIAL PRIMARY KEY)"))
    columns = "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
    with engine.connect() as c:
        before = c.execute(text(columns)).all()
    with pytest.raises(DatabaseError, match=r"not a mindstore database.*events"):
        MindStore(pg_url, config=Config(index_dir=tmp_path / "index"))
    with engine.connect() as c:
        assert c.execute(text(columns)).all() == before
    # An application's own tables beside a store's are fine when none is named like ours.
    with engine.begin() as c:
        c.execute(text("DROP TABLE events"))
    with MindStore(pg_url, config=Config(index_dir=tmp_path / "index")) as s:
        s.create_space("v", dim=4, key_source="test")
    engine.dispose()


@pytest.mark.parametrize("url", ["", "   ", "sqlite:///file:{tmp}/sub/x.db?mode=ro&uri=true", "sqlite:///{tmp}/a-file/x.db", "sqlite:///{tmp}"])
def test_urls_that_name_no_usable_file_are_typed_errors_that_make_nothing(tmp_path, monkeypatch, url: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.chdir(tmp_path)  # a relative path made by mistake (./file:...) would land here
    with pytest.raises(MindStoreError) as info:
        MindStore(url.format(tmp=tmp_path), config=Config(index_dir=tmp_path / "index"))
    assert len(str(info.value)) > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
