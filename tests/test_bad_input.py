"""Generated bad input, through every door: the Python API, the CLI and the MCP tools.

Each call gets one bad value (a wrong type, a lone surrogate, a NUL, a huge or negative number,
deep nesting, a huge size) among otherwise good arguments. Whatever it is, the answer is a
``MindStoreError`` with a message (the CLI: an ``error:`` line and a non-zero exit, no traceback;
MCP: a tool error with text), and the store's rows are unchanged. SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import HashEmbedder, snapshot
from mindstore import Config, MindStore, MindStoreError
from mindstore.validate import MAX_DEPTH, MAX_K, MAX_TEXT_CHARS

# Fixtures stay the same across examples on purpose: no example may change the store.
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# -- bad values ---------------------------------------------------------------------------------

surrogate = st.sampled_from(["\ud800", "\udc00", "\udfff", "\udcff"])
nul = st.just("\x00")


def _tainted(bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A readable string with ``bad`` somewhere inside it."""
    return st.tuples(st.text("abc xyz", min_size=1, max_size=8), bad, st.text("abc xyz", max_size=8)).map("".join)


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


wrong_type = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True), st.binary(max_size=4), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=1), st.builds(object), st.booleans())
huge_int = st.one_of(st.integers(min_value=2**63, max_value=2**200), st.integers(max_value=-(2**63) - 1, min_value=-(2**200)))
deep = st.integers(MAX_DEPTH + 1, 20_000).map(_nested)

# Text a memory cannot be: not a string, blank, NUL, a lone surrogate, too long.
bad_text = st.one_of(wrong_type, st.none(), st.sampled_from(["", "   ", "\n\t"]), _tainted(nul), _tainted(surrogate),
                     st.integers(MAX_TEXT_CHARS + 1, MAX_TEXT_CHARS + 50).map(lambda n: "a" * n))
# A scope id: set, but not a usable one.
bad_scope = st.one_of(wrong_type.filter(lambda v: v is not None), st.sampled_from(["", "  "]), _tainted(nul), _tainted(surrogate),
                      st.integers(256, 2000).map(lambda n: "u" * n))
# A slot id no slot has or can have (NotFoundError) or that is no id (InvalidInputError).
bad_id = st.one_of(huge_int, st.integers(-(2**63), -1), st.integers(10**6, 2**63 - 1), st.sampled_from(["1", "", "²", 1.0, None, [1], True]))
bad_metadata = st.one_of(
    st.sampled_from(["x", 5, ["a"], b"{}"]),
    st.builds(lambda k: {k: 1}, _tainted(st.one_of(nul, surrogate))),
    st.builds(lambda v: {"k": v}, _tainted(st.one_of(nul, surrogate))),
    st.builds(lambda v: {"k": v}, st.sampled_from([math.nan, math.inf, -math.inf, object(), {1, 2}, b"x"])),
    st.just({1: "non-string key"}),
    deep.map(lambda d: {"x": d}),
)
bad_filter = st.one_of(
    st.sampled_from(["year = 2024", 5, ["year"], {"year": {"$like": "x"}}, {"$and": []}, {"$or": 5}, {"year": {"$in": 3}},
                     {"year": {"$gt": [1]}}, {"$not": []}, {"": 1}]),
    st.integers(MAX_DEPTH + 1, 20_000).map(lambda d: _nested_filter(d)),
    st.builds(lambda v: {"k": v}, _tainted(st.one_of(nul, surrogate))),
    st.builds(lambda k: {k: 1}, _tainted(st.one_of(nul, surrogate))),
)
bad_k = st.one_of(st.integers(max_value=0, min_value=-(2**70)), st.integers(MAX_K + 1, 2**70), st.sampled_from([2.5, "5", None, True, math.nan]))
bad_cursor = st.one_of(st.sampled_from(["²", "١٢", "-1", "1.5", "", " 1", "abc", "'; DROP TABLE slots; --", 5, 1.5]),
                       st.integers(2**63, 2**200).map(str), _tainted(st.one_of(nul, surrogate)))
bad_when = st.one_of(st.sampled_from(["garbage", "9999999-01-01", "2023-13-45", "", 5, [2023], object()]), _tainted(st.one_of(nul, surrogate)))
bad_space = st.one_of(st.sampled_from(["", 5, ["chat"], b"chat"]), _tainted(st.one_of(nul, surrogate)), st.just("nope"))
bad_new_space = st.one_of(st.sampled_from(["", " ", "a/b", "..", ".", "a\\b", 5, None]), st.integers(151, 400).map(lambda n: "n" * n),
                          st.integers(38, 100).map(lambda n: "é" * n * 2), _tainted(st.one_of(nul, surrogate)))
bad_dim = st.one_of(st.integers(max_value=0, min_value=-(2**70)), st.integers(2**17, 2**70), st.sampled_from([2.5, "4", None, True]))
bad_vectors = st.one_of(
    st.sampled_from([[1.0, 2.0], [[1, 2, 3, 4, 5]], "1,2,3,4", None, [[math.nan, 0, 0, 0]], [[0, 0, 0, 0]], [[math.inf, 1, 1, 1]], [[1e30] * 4], [["a"] * 4]]),
    st.integers(5, 50).map(lambda d: np.ones((1, d), dtype=np.float32)),
)


def _nested_filter(depth: int) -> dict:
    spec: dict = {"year": 2024}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


# -- the Python API -----------------------------------------------------------------------------

# name -> (bad values, the call that takes one)
CALLS: dict[str, tuple[st.SearchStrategy[Any], Callable[[MindStore, Any], Any]]] = {
    "add text": (bad_text, lambda s, v: s.add(v, user_id="alice")),
    "add user_id": (bad_scope, lambda s, v: s.add("fine words here", user_id=v)),
    "add session_id": (bad_scope, lambda s, v: s.add("fine words here", session_id=v)),
    "add metadata": (bad_metadata, lambda s, v: s.add("fine words here", metadata=v)),
    "add occurred_at": (bad_when, lambda s, v: s.add("fine words here", occurred_at=v)),
    "add dedup": (st.sampled_from(["no", 0, None, 2]), lambda s, v: s.add("fine words here", dedup=v)),
    "add_many texts": (st.one_of(bad_text.map(lambda t: ["fine words", t]), st.sampled_from(["one string", 5, None, b"xy"])),
                       lambda s, v: s.add_many(v, user_id="alice")),
    "add_many metadata list": (st.one_of(st.just([{}]), bad_metadata.map(lambda m: [{}, m])), lambda s, v: s.add_many(["a b", "c d"], metadata=v)),
    "add_vectors keys": (bad_vectors, lambda s, v: s.add_vectors(v, space="vec")),
    "add_vectors labels": (st.one_of(st.sampled_from([["a"], "ab", 5]), st.one_of(bad_text.filter(lambda t: t is not None), st.just("l" * 501)).map(lambda t: ["ok", t])),
                           lambda s, v: s.add_vectors(np.eye(4, dtype=np.float32)[:2], space="vec", labels=v)),
    "add_vectors space": (bad_space, lambda s, v: s.add_vectors(np.eye(4, dtype=np.float32)[:1], space=v)),
    "search query": (bad_text, lambda s, v: s.search(v)),
    "search k": (bad_k, lambda s, v: s.search("peanuts", k=v)),
    "search user_id": (bad_scope, lambda s, v: s.search("peanuts", user_id=v)),
    "search filters": (bad_filter, lambda s, v: s.search("peanuts", filters=v)),
    "search min_score": (st.sampled_from([math.nan, "0.5", [0.5], True]), lambda s, v: s.search("peanuts", min_score=v)),
    "search since": (bad_when, lambda s, v: s.search("peanuts", since=v)),
    "search now": (bad_when, lambda s, v: s.search("peanuts", now=v)),
    "search mode": (st.one_of(st.sampled_from(["", "fuzzy", 5, ["dense"]]), _tainted(surrogate)), lambda s, v: s.search("peanuts", mode=v)),
    "search group_by": (st.sampled_from(["sessions", 5, ""]), lambda s, v: s.search("peanuts", group_by=v)),
    "search reranker": (st.sampled_from([object(), 5, "cross-encoder"]), lambda s, v: s.search("peanuts", reranker=v)),
    "search_vector vector": (bad_vectors, lambda s, v: s.search_vector(v, space="vec")),
    "search_vector space": (bad_space, lambda s, v: s.search_vector([1, 0, 0, 0], space=v)),
    "get id": (bad_id, lambda s, v: s.get(v)),
    "update id": (bad_id, lambda s, v: s.update(v, text="new words here")),
    "update text": (bad_text.filter(lambda t: t is not None), lambda s, v: s.update(1, text=v)),
    "update metadata": (bad_metadata, lambda s, v: s.update(1, metadata=v)),
    "delete id": (bad_id, lambda s, v: s.delete(v)),
    "delete_many ids": (st.one_of(bad_id.map(lambda i: [1, i]), st.sampled_from([5, "12", None])), lambda s, v: s.delete_many(v)),
    "delete_all scope": (bad_scope, lambda s, v: s.delete_all(user_id=v)),
    "history id": (bad_id, lambda s, v: s.history(v)),
    "keys ids": (st.one_of(bad_id.map(lambda i: [i]), st.sampled_from([5, "1", None])), lambda s, v: s.keys(v)),
    "list cursor": (bad_cursor, lambda s, v: s.list(cursor=v)),
    "list limit": (bad_k, lambda s, v: s.list(limit=v)),
    "list space": (bad_space, lambda s, v: s.list(space=v)),
    "list filters": (bad_filter, lambda s, v: s.list(filters=v)),
    "list user_id": (bad_scope, lambda s, v: s.list(user_id=v)),
    "count space": (bad_space, lambda s, v: s.count(space=v)),
    "scopes kind": (st.sampled_from(["user", "", 5, "id"]), lambda s, v: s.scopes(v)),
    "index_info recall_sample": (st.one_of(st.integers(max_value=-1, min_value=-(2**70)), st.integers(MAX_K + 1, 2**70), st.sampled_from(["5", 2.5])),
                                 lambda s, v: s.index_info(recall_sample=v)),
    "update_vectors ids": (st.one_of(bad_id.map(lambda i: [i]), st.sampled_from([5, None, "3"])), lambda s, v: s.update_vectors(v, np.eye(4, dtype=np.float32)[:1])),
    "update_vectors keys": (bad_vectors, lambda s, v: s.update_vectors([3], v)),
    "least_used n": (st.one_of(st.integers(-(2**70), 0), st.integers(2**63, 2**70), st.sampled_from(["2", 2.5, None])), lambda s, v: s.least_used(v)),
    "scopes limit": (st.one_of(st.integers(-(2**70), 0), st.sampled_from(["5", 2.5])), lambda s, v: s.scopes(limit=v)),
    "add_messages messages": (st.one_of(st.sampled_from(["hello", 5, [5], [{"content": "no role"}], [{"role": "user", "content": 5}], [{"role": 5, "content": "x y"}]]),
                                        _tainted(st.one_of(nul, surrogate)).map(lambda t: [{"role": "user", "content": t}])),
                              lambda s, v: s.add_messages(v, user_id="alice")),
    "create_space name": (bad_new_space, lambda s, v: s.create_space(v, dim=4, key_source="test")),
    "create_space dim": (bad_dim, lambda s, v: s.create_space("fresh", dim=v, key_source="test")),
    "create_space key_source": (st.one_of(bad_text, st.just("k" * 501)), lambda s, v: s.create_space("fresh", dim=4, key_source=v)),
}


def _export_paths(tmp: Path) -> st.SearchStrategy[Any]:
    return st.sampled_from([tmp, None, 3, "", str(tmp / "a\x00b.jsonl"), str(tmp / "file" / "under-a-file.jsonl"), [str(tmp / "x.jsonl")]])


@pytest.fixture
def filled(db_url: str, tmp_path: Path) -> Iterator[MindStore]:
    with MindStore(db_url, embedder=HashEmbedder(), config=Config(index_dir=tmp_path / "index")) as s:
        s.add("Alice is allergic to peanuts", user_id="alice", metadata={"year": 2024})
        s.add("Bob plays bass", user_id="bob")
        s.create_space("vec", dim=4, key_source="test")
        s.add_vectors(np.eye(4, dtype=np.float32), space="vec", labels=list("abcd"))
        yield s


def _refused(store: MindStore, call: Callable[[], Any]) -> MindStoreError:
    before = snapshot(store.url)
    try:
        call()
    except MindStoreError as exc:
        error = exc
    else:
        raise AssertionError("accepted")
    assert len(str(error)) > 10, f"{type(error).__name__} with no message to act on: {error!r}"
    assert snapshot(store.url) == before
    return error


@SETTINGS
@given(data=st.data())
def test_every_bad_argument_is_a_typed_error_that_changes_nothing(filled: MindStore, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(CALLS)), label="call")
    values, call = CALLS[name]
    value = data.draw(values, label="value")
    _refused(filled, lambda: call(filled, value))


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_bad_export_and_import_paths_and_files_change_nothing(filled: MindStore, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("io")
    (tmp / "file").write_text("a file, not a folder")
    listing = sorted(p.name for p in tmp.rglob("*"))
    path = data.draw(_export_paths(tmp), label="path")
    _refused(filled, lambda: filled.export(path))
    _refused(filled, lambda: filled.import_(path))
    # And an export with one more slot line, bad in one generated field: refused by its line number.
    dump = tmp / "dump.jsonl"
    filled.export(dump)
    lines = dump.read_text().splitlines()
    slot = next(obj for obj in map(json.loads, lines) if obj["type"] == "slot" and obj["space"] == "chat")
    field = data.draw(st.sampled_from(sorted(BAD_FIELDS)), label="field")
    line = _json_line({**slot, "id": 10**6, field: data.draw(BAD_FIELDS[field], label="bad")})
    dump.write_text("\n".join([*lines, line or '{"type": "slot", "id": ']) + "\n")  # a value JSON cannot hold: a garbled line
    error = _refused(filled, lambda: filled.import_(dump))
    assert f"dump.jsonl:{len(lines) + 1}: " in str(error) and "nothing was imported" in str(error)
    assert sorted(p.name for p in tmp.rglob("*")) == sorted([*listing, "dump.jsonl"])  # no .tmp file, no folder


# An import line's fields: values JSON can carry that no export writes.
BAD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(huge_int, st.integers(-(2**63), 0), st.sampled_from(["1", 1.5, None, [1], True])),
    "text": bad_text.filter(lambda t: t is not None),
    "user_id": bad_scope,
    "label": st.one_of(bad_scope.filter(lambda v: not isinstance(v, str) or len(v) < 256), st.just("l" * 501)),
    "metadata": st.one_of(st.sampled_from(["x", 5, ["a"], None, math.nan]), st.builds(lambda k: {k: 1}, _tainted(st.one_of(nul, surrogate))),
                          st.builds(lambda v: {"k": v}, st.one_of(_tainted(st.one_of(nul, surrogate)), st.sampled_from([math.nan, math.inf]))),
                          st.integers(MAX_DEPTH + 1, 500).map(lambda d: {"x": _nested(d)})),
    "reads": st.one_of(st.integers(-(2**70), -1), st.integers(2**63, 2**70), st.sampled_from(["5", 2.5, None, True])),
    "space": st.one_of(bad_space, st.just("vec")),
    "key": st.sampled_from([None, "", "not base64!", "AAAA", 5, "AAAAAAAAAAAAAAAAAAAAAA=="]),
    "created_at": bad_when,
}


def _client_can_send(value: Any) -> bool:
    """Whether the MCP client can serialise ``value`` at all: it raises itself, before the server
    sees anything, on a lone surrogate in a dict key and on nesting past about 100 levels."""
    import pydantic_core

    try:
        pydantic_core.to_jsonable_python(value)  # what the client does (model_dump mode="json")
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def _json_ok(value: Any) -> bool:
    return _json_line(value) is not None


def _json_line(value: Any) -> str | None:
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None


# -- opening a store ----------------------------------------------------------------------------

BAD_OPENS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "space": bad_new_space.map(lambda v: {"space": v}),
    "embedder": st.one_of(st.sampled_from([5, "", object(), b"all-MiniLM-L6-v2"]), _tainted(st.one_of(nul, surrogate))).map(lambda v: {"embedder": v}),
    "reindex": st.sampled_from(["yes", 1, None]).map(lambda v: {"reindex": v}),
    "reranker": st.sampled_from([object(), 5, "cross-encoder"]).map(lambda v: {"reranker": v}),
    "resolver": st.sampled_from([5, "supersede"]).map(lambda v: {"resolver": v}),
    "config": st.sampled_from([{"dedup_threshold": 0.9}, 5, "Config()"]).map(lambda v: {"config": v}),
}
BAD_CONFIGS = st.one_of(
    st.builds(lambda f, v: {f: v}, st.sampled_from(["dedup_threshold", "time_weight", "dense_weight"]),
              st.sampled_from(["x", None, math.nan, -1.0, 2.0, [0.5]])),
    st.builds(lambda v: {"usage_flush_s": v}, st.sampled_from(["x", None, math.nan, -1.0, [0.5]])),
    st.builds(lambda f, v: {f: v}, st.sampled_from(["save_index_every", "embed_batch_size", "fusion_depth", "rerank_depth", "capacity", "approximate_from"]),
              st.one_of(st.sampled_from(["x", 2.5, 0, -1, True]), st.integers(max_value=-1, min_value=-(2**70)))),
    st.builds(lambda f, v: {f: v}, st.sampled_from(["search_mode", "fusion", "device"]), st.sampled_from(["", "x", 5, None])),
    st.sampled_from([{"index_dir": 5}, {"index_dir": "a\x00b"}, {"ttl": "60"}, {"ttl": -1}, {"index_context": "yes"}]),
)


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_bad_store_arguments_open_nothing_and_change_nothing(filled: MindStore, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("open")
    if data.draw(st.booleans(), label="a Config field"):
        fields = data.draw(BAD_CONFIGS, label="config")
        _refused(filled, lambda: Config(**fields))
        return
    kwargs = data.draw(st.sampled_from(sorted(BAD_OPENS)).flatmap(BAD_OPENS.__getitem__), label="kwargs")
    _refused(filled, lambda: MindStore(filled.url, **{"config": Config(index_dir=tmp / "index"), **kwargs}))
    assert list(tmp.iterdir()) == []


def _other_files(tmp: Path) -> Path:
    """Files in ``tmp`` that no store may take over: a plain file, a text file named .db, another
    application's SQLite database with tables named like a store's."""
    import sqlite3

    (tmp / "file").write_text("a file, not a folder")
    (tmp / "text.db").write_text("notes, not a database")
    app = sqlite3.connect(tmp / "other-app.db")
    app.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT); CREATE TABLE slots (n INTEGER); INSERT INTO events (what) VALUES ('x');")
    app.close()
    return tmp


def _bad_urls(tmp: Path) -> st.SearchStrategy[Any]:
    return st.sampled_from([
        "", "  ", 5, b"sqlite://", "not a url at all", "nonsense://", "postgresql+psycopg://nobody@127.0.0.1:1/none",
        f"sqlite:///{tmp}/a\x00b.db", f"sqlite:///{tmp}/bad\ud800.db", f"sqlite:///{tmp}/file/under-a-file.db", f"sqlite:///{tmp}",
        f"sqlite:///{tmp}/other-app.db", f"sqlite:///{tmp}/text.db", f"sqlite:///file:{tmp}/uri/x.db?mode=ro&uri=true",
    ])


@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_a_url_that_names_no_store_is_refused_and_touches_no_file(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    import hashlib
    import os

    tmp = _other_files(tmp_path_factory.mktemp("urls"))
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.iterdir()}
    url = data.draw(_bad_urls(tmp), label="url")
    cwd = os.getcwd()
    os.chdir(tmp)  # a relative path made by mistake would land here
    try:
        with pytest.raises(MindStoreError) as info:
            MindStore(url, embedder=HashEmbedder(), config=Config(index_dir=tmp / "index"))
    finally:
        os.chdir(cwd)
    assert len(str(info.value)) > 10
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.iterdir()} == files  # nothing new, nothing changed


# -- the CLI ------------------------------------------------------------------------------------

ids_text = st.one_of(st.integers(2**63, 2**200).map(str), st.integers(-(2**200), -1).map(str), st.sampled_from(["²", "abc", "", "1.5", "0x10", "1e3", "--", "١"]))
cli_text = st.one_of(st.sampled_from(["", "   "]), _tainted(st.one_of(nul, surrogate)), st.just("a" * (MAX_TEXT_CHARS + 1)))
# name -> (bad strings, the arguments after the command's --db)
CLI: dict[str, tuple[st.SearchStrategy[str], Callable[[str], list[str]]]] = {
    "show id": (ids_text, lambda v: ["show", v]),
    "rm id": (ids_text, lambda v: ["rm", v]),
    "edit id": (ids_text, lambda v: ["edit", v, "--text", "new words here"]),
    "history id": (ids_text, lambda v: ["history", v]),
    "edit text": (cli_text, lambda v: ["edit", "1", "--text", v]),
    "add text": (cli_text, lambda v: ["add", v]),
    "add user": (st.one_of(st.sampled_from(["", "u" * 256]), _tainted(st.one_of(nul, surrogate))), lambda v: ["add", "fine words", "--user", v]),
    "add meta": (st.one_of(st.sampled_from(["noequals", "=1", "a=" + "[" * 5000 + "]" * 5000]), _tainted(st.one_of(nul, surrogate)).map(lambda t: f"k={t}")),
                 lambda v: ["add", "fine words", "--meta", v]),
    "list cursor": (st.one_of(ids_text, _tainted(st.one_of(nul, surrogate))), lambda v: ["list", "--cursor", v]),
    "list limit": (st.one_of(ids_text, st.just("0"), st.integers(MAX_K + 1, 2**70).map(str)), lambda v: ["list", "--limit", v]),
    "list space": (st.one_of(st.just("nope"), _tainted(st.one_of(nul, surrogate))), lambda v: ["list", "--space", v]),
    "search k": (st.one_of(ids_text, st.just("0"), st.integers(MAX_K + 1, 2**70).map(str)), lambda v: ["search", "peanuts", "-k", v]),
    "search filter": (st.sampled_from(["{bad", "[1]", "5", '{"year": {"$like": 1}}', '{"a":' * 3000 + "1" + "}" * 3000, '{"k": "a\\u0000"}', '{"k": "\\ud800"}']),
                      lambda v: ["search", "peanuts", "--filter", v]),
    "search now": (st.one_of(st.sampled_from(["garbage", "9999999-01-01", "2023-13-45", ""]), _tainted(st.one_of(nul, surrogate))),
                   lambda v: ["search", "peanuts", "--now", v]),
    "search since": (st.one_of(st.sampled_from(["garbage words", "2023-13-45", ""]), _tainted(st.one_of(nul, surrogate))), lambda v: ["search", "peanuts", "--since", v]),
    "search min-score": (st.sampled_from(["nan", "x", ""]), lambda v: ["search", "peanuts", "--min-score", v]),
    "search query": (cli_text, lambda v: ["search", v]),
    "stats recall-sample": (st.one_of(st.integers(-(2**70), -1).map(str), st.integers(MAX_K + 1, 2**70).map(str)), lambda v: ["stats", "--recall-sample", v]),
    "mcp port": (st.one_of(st.integers(-(2**70), 0).map(str), st.integers(65536, 2**70).map(str)), lambda v: ["mcp", "--transport", "http", "--port", v]),
}


@pytest.fixture
def cli_store(db_url: str) -> str:
    """A store made by the CLI's own embedder (the default model): the CLI cannot be given another."""
    with MindStore(db_url) as s:
        s.add("Alice is allergic to peanuts", user_id="alice", metadata={"year": 2024})
        s.add("Bob plays bass", user_id="bob")
    return db_url


@settings(SETTINGS, max_examples=40)
@given(data=st.data())
def test_the_cli_answers_bad_arguments_with_one_error_line(cli_store: str, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    from typer.testing import CliRunner

    from mindstore.cli import app

    tmp = _other_files(tmp_path_factory.mktemp("cli"))
    name = data.draw(st.sampled_from([*sorted(CLI), "--db", "export path", "import path"]), label="command")
    if name == "--db":
        args = ["list", "--db", data.draw(_bad_urls(tmp).filter(lambda u: isinstance(u, str) and "\x00" not in u), label="url")]
    elif name in ("export path", "import path"):
        path = data.draw(st.sampled_from([str(tmp), str(tmp / "file" / "x.jsonl"), str(tmp / "a\x00b"), str(tmp / "missing.jsonl"), ""]), label="path")
        if name == "export path" and path.endswith("missing.jsonl"):
            path = str(tmp)
        args = [name.split()[0], path, "--db", cli_store]
    else:
        values, make = CLI[name]
        args = [*make(data.draw(values, label="value")), "--db", cli_store]
    before = snapshot(cli_store)
    result = CliRunner().invoke(app, args)
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error" in result.output.lower(), result.output  # ours ("error: ...") or click's usage error
    assert snapshot(cli_store) == before


# -- the MCP tools ------------------------------------------------------------------------------

mcp_text = st.one_of(st.sampled_from(["", "   ", 5, None, ["x"]]), _tainted(st.one_of(nul, surrogate)), st.just("a" * (MAX_TEXT_CHARS + 1)))
mcp_id = st.one_of(huge_int, st.integers(-(2**63), 0), st.integers(10**6, 2**63 - 1), st.sampled_from(["x", 1.5, None]))
MCP: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], dict[str, Any]]]] = {
    "add_memory text": (mcp_text, lambda v: {"user_id": "alice", "text": v}),
    "add_memory user_id": (st.one_of(st.sampled_from(["", "u" * 256, 5]), _tainted(st.one_of(nul, surrogate))), lambda v: {"user_id": v, "text": "fine words"}),
    "add_memory metadata": (st.one_of(st.sampled_from(["x", [1]]), st.builds(lambda t: {"k": t}, _tainted(st.one_of(nul, surrogate))),
                                      st.integers(MAX_DEPTH + 1, 60).map(lambda d: {"x": _nested(d)})),  # deeper fails in the client
                            lambda v: {"user_id": "alice", "text": "fine words", "metadata": v}),
    "search_memories query": (mcp_text, lambda v: {"user_id": "alice", "query": v}),
    "search_memories k": (st.one_of(st.integers(-(2**70), 0), st.integers(101, 2**70), st.sampled_from(["x", 2.5])), lambda v: {"user_id": "alice", "query": "peanuts", "k": v}),
    "search_memories filters": (st.one_of(bad_filter, st.integers(MAX_DEPTH + 1, 60).map(_nested_filter)), lambda v: {"user_id": "alice", "query": "peanuts", "filters": v}),
    "list_memories cursor": (bad_cursor, lambda v: {"user_id": "alice", "cursor": v}),
    "update_memory memory_id": (mcp_id, lambda v: {"user_id": "alice", "memory_id": v, "text": "new words here"}),
    "update_memory text": (mcp_text.filter(lambda t: t is not None), lambda v: {"user_id": "alice", "memory_id": 1, "text": v}),
    "delete_memory memory_id": (mcp_id, lambda v: {"user_id": "alice", "memory_id": v}),
    "memory_history memory_id": (mcp_id, lambda v: {"user_id": "alice", "memory_id": v}),
}


@settings(SETTINGS, max_examples=25)
@given(data=st.data())
def test_mcp_tools_answer_bad_arguments_with_a_tool_error(filled: MindStore, data: st.DataObject) -> None:
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client

    from mindstore.integrations.mcp import create_server

    name = data.draw(st.sampled_from(sorted(MCP)), label="tool")
    values, make = MCP[name]
    arguments = make(data.draw(values.filter(_client_can_send), label="value"))

    async def call() -> Any:
        async with Client(create_server(filled)) as client:
            return await client.call_tool(name.split()[0], arguments)

    before = snapshot(filled.url)
    result = anyio.run(call)
    assert result.is_error, result.structured_content
    assert result.content and len(result.content[0].text) > 30, result.content  # "Error executing tool x: " and a reason
    assert snapshot(filled.url) == before
