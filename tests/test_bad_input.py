"""Generated bad input, through every door: the Python API, ``import_``, the CLI and the MCP tools.

Each call gets one bad value (a wrong type, a lone surrogate, a NUL, a huge or negative number,
deep nesting, a huge size) among otherwise good arguments. Whatever it is, the answer is a
``MindStoreError`` whose message says what to do (the CLI: an ``error:`` line and a non-zero exit,
no traceback; MCP: a tool error with text), and the store's rows are unchanged.

Every public method of ``MindStore`` and each of its parameters, every option of the CLI's commands
and every argument of the MCP tools is in a table below (``CALLS``, ``CLI``, ``MCP``) with the bad
values it is driven with, or exempt with a reason: ``test_every_door_is_in_a_table`` fails when one
is added without either. On PostgreSQL every call is also made on a SQLite twin of the store, and
both must answer with the same error and the same message.
"""

from __future__ import annotations

import base64
import inspect
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mindstore import Config, MindStore, MindStoreError
from mindstore.validate import MAX_BATCH, MAX_DEPTH, MAX_DIM, MAX_K, MAX_METADATA_BYTES, MAX_TEXT_CHARS

from conftest import HashEmbedder, snapshot

# Fixtures stay the same across examples on purpose: no example may change the store.
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

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


def _nested_filter(depth: int) -> dict:
    spec: dict = {"year": 2024}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


wrong_type = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True), st.binary(max_size=4), st.lists(st.integers(), max_size=2),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=1), st.builds(object), st.booleans())
huge_int = st.one_of(st.integers(min_value=2**63, max_value=2**200), st.integers(max_value=-(2**63) - 1, min_value=-(2**200)))
deep = st.integers(MAX_DEPTH + 1, 20_000).map(_nested)
# Instants a calendar cannot hold in UTC, though each reads as a date: 9999-12-31T23:59-01:00 is in the year 10000.
edge_of_time = st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])

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
    st.builds(lambda v: {"k": v}, st.sampled_from([math.nan, math.inf, -math.inf, object(), {1, 2}, b"x", 10**5000])),
    st.just({1: "non-string key"}),
    deep.map(lambda d: {"x": d}),
    # Past MAX_METADATA_BYTES of JSON: one long value, many keys, or few characters of many bytes.
    st.integers(MAX_METADATA_BYTES, MAX_METADATA_BYTES + 5000).map(lambda n: {"k": "m" * n}),
    st.just({f"key{i}": i for i in range(8000)}),
    st.just({"k": "é" * (MAX_METADATA_BYTES // 2 + 10)}),
)
bad_filter = st.one_of(
    st.sampled_from(["year = 2024", 5, ["year"], {"year": {"$like": "x"}}, {"$and": []}, {"$or": 5}, {"year": {"$in": 3}},
                     {"year": {"$gt": [1]}}, {"$not": []}, {"": 1}]),
    st.integers(MAX_DEPTH + 1, 20_000).map(_nested_filter),
    st.builds(lambda v: {"k": v}, _tainted(st.one_of(nul, surrogate))),
    st.builds(lambda k: {k: 1}, _tainted(st.one_of(nul, surrogate))),
)
bad_k = st.one_of(st.integers(max_value=0, min_value=-(2**70)), st.integers(MAX_K + 1, 2**70), st.sampled_from([2.5, "5", None, True, math.nan]))
bad_cursor = st.one_of(st.sampled_from(["²", "١٢", "-1", "1.5", "", " 1", "abc", "'; DROP TABLE slots; --", 5, 1.5]),
                       st.integers(2**63, 2**200).map(str), _tainted(st.one_of(nul, surrogate)))
bad_when = st.one_of(st.sampled_from(["garbage", "9999999-01-01", "2023-13-45", "", 5, [2023], object()]), _tainted(st.one_of(nul, surrogate)), edge_of_time)
bad_space = st.one_of(st.sampled_from(["", 5, ["chat"], b"chat"]), _tainted(st.one_of(nul, surrogate)), st.just("nope"))
bad_new_space = st.one_of(st.sampled_from(["", " ", "a/b", "..", ".", "a\\b", 5, None]), st.integers(151, 400).map(lambda n: "n" * n),
                          st.integers(38, 100).map(lambda n: "é" * n * 2), _tainted(st.one_of(nul, surrogate)))
bad_dim = st.one_of(st.integers(max_value=0, min_value=-(2**70)), st.integers(MAX_DIM + 1, 2**70), st.sampled_from([2.5, "4", None, True]))
bad_vectors = st.one_of(
    st.sampled_from([[1.0, 2.0], [[1, 2, 3, 4, 5]], "1,2,3,4", None, [[math.nan, 0, 0, 0]], [[0, 0, 0, 0]], [[math.inf, 1, 1, 1]], [[1e30] * 4], [["a"] * 4]]),
    st.integers(5, 50).map(lambda d: np.ones((1, d), dtype=np.float32)),
)
bad_flag = st.sampled_from(["no", "True", 0, 1, None, [True]])  # True or False only
bad_seconds = st.one_of(st.sampled_from(["5", [1], True, math.nan, math.inf, -math.inf]), st.floats(max_value=-1e-9, allow_infinity=False),
                        st.integers(10**6 + 1, 2**70))
bad_batch = st.one_of(st.integers(-(2**70), 0), st.integers(MAX_BATCH + 1, 2**70), st.sampled_from(["64", 2.5, True, math.nan]))
bad_values = st.sampled_from(["x", object(), [[1.0, 2.0, 3.0]], [[math.nan]], [[math.inf]], [[1e39]], {"a": 1}])  # for two keys
bad_export_path = st.sampled_from([None, 3, "", ".", b"x.jsonl", "a\x00b.jsonl", ["x.jsonl"], "/", "/dev/null/x.jsonl", "/proc/version"])
bad_import_path = st.sampled_from([None, 3, "", ".", b"x.jsonl", "a\x00b.jsonl", ["x.jsonl"], "/", "/nonexistent/x.jsonl", "/etc/passwd"])

# -- the Python API -----------------------------------------------------------------------------

Call = Callable[[MindStore, Any], Any]


def _scoped(method: str, call: Callable[[MindStore, dict[str, Any]], Any]) -> dict[str, tuple[st.SearchStrategy[Any], Call]]:
    """The rows of ``method``'s scope parameters: ``call`` with one bad id among good arguments."""
    return {f"{method} {p}": (bad_scope, lambda s, v, p=p: call(s, {p: v})) for p in ("user_id", "agent_id", "session_id")}


KEY = np.eye(4, dtype=np.float32)  # keys of the 4-dim "vec" space
# "method parameter" -> (bad values, the call that takes one among good arguments).
CALLS: dict[str, tuple[st.SearchStrategy[Any], Call]] = {
    "add text": (bad_text, lambda s, v: s.add(v, user_id="alice")),
    **_scoped("add", lambda s, kw: s.add("fine words here", **kw)),
    "add metadata": (bad_metadata, lambda s, v: s.add("fine words here", metadata=v)),
    "add occurred_at": (bad_when, lambda s, v: s.add("fine words here", occurred_at=v)),
    "add dedup": (bad_flag, lambda s, v: s.add("fine words here", dedup=v)),
    "add_many texts": (st.one_of(bad_text.map(lambda t: ["fine words", t]), st.sampled_from(["one string", 5, None, b"xy"])),
                       lambda s, v: s.add_many(v, user_id="alice")),
    **_scoped("add_many", lambda s, kw: s.add_many(["a b", "c d"], **kw)),
    "add_many metadata": (st.one_of(st.just([{}]), bad_metadata.map(lambda m: [{}, m]), bad_metadata), lambda s, v: s.add_many(["a b", "c d"], metadata=v)),
    "add_many dedup": (bad_flag, lambda s, v: s.add_many(["a b"], dedup=v)),
    "add_many occurred_at": (bad_when, lambda s, v: s.add_many(["a b"], occurred_at=v)),
    "add_messages messages": (st.one_of(st.sampled_from(["hello", 5, [5], [{"content": "no role"}], [{"role": "user", "content": 5}], [{"role": 5, "content": "x y"}],
                                                         [{"role": "user", "content": "ok\x00"}]]),  # malformed, though too short to keep
                                        _tainted(st.one_of(nul, surrogate)).map(lambda t: [{"role": "user", "content": t}]),
                                        _tainted(st.one_of(nul, surrogate)).map(lambda t: [{"role": "user", "content": "I moved to Lisbon", "name": t}])),
                              lambda s, v: s.add_messages(v, user_id="alice")),
    # A system turn is not kept: the arguments must be checked all the same.
    **_scoped("add_messages", lambda s, kw: s.add_messages([{"role": "system", "content": "You are helpful"}], **kw)),
    "add_messages metadata": (bad_metadata, lambda s, v: s.add_messages([{"role": "user", "content": "I moved to Lisbon"}], metadata=v)),
    "add_messages dedup": (bad_flag, lambda s, v: s.add_messages([], dedup=v)),
    "add_messages occurred_at": (bad_when, lambda s, v: s.add_messages([{"role": "system", "content": "You are helpful"}], occurred_at=v)),
    "add_messages speakers": (st.one_of(st.sampled_from([["Mia"], "Mia", 5, {"user": ""}, {"user": 5}]), _tainted(st.one_of(nul, surrogate)).map(lambda t: {"user": t})),
                              lambda s, v: s.add_messages([{"role": "user", "content": "I moved to Lisbon"}], speakers=v)),
    "add_vectors keys": (bad_vectors, lambda s, v: s.add_vectors(v, space="vec")),
    "add_vectors space": (bad_space, lambda s, v: s.add_vectors(KEY[:1], space=v)),
    "add_vectors labels": (st.one_of(st.sampled_from([["a"], "ab", 5]), st.one_of(bad_text.filter(lambda t: t is not None), st.just("l" * 501)).map(lambda t: ["ok", t])),
                           lambda s, v: s.add_vectors(KEY[:2], space="vec", labels=v)),
    "add_vectors texts": (st.one_of(st.sampled_from([["a b"], "ab", 5]), bad_text.filter(lambda t: t is not None).map(lambda t: ["fine words", t])),
                          lambda s, v: s.add_vectors(KEY[:2], space="vec", texts=v)),
    "add_vectors values": (bad_values, lambda s, v: s.add_vectors(KEY[:2], space="vec", values=v)),
    **_scoped("add_vectors", lambda s, kw: s.add_vectors(KEY[:1], space="vec", **kw)),
    "add_vectors metadata": (st.one_of(bad_metadata, bad_metadata.map(lambda m: [{}, m]), st.just([{}])), lambda s, v: s.add_vectors(KEY[:2], space="vec", metadata=v)),
    "search query": (bad_text, lambda s, v: s.search(v)),
    "search k": (bad_k, lambda s, v: s.search("peanuts", k=v)),
    **_scoped("search", lambda s, kw: s.search("peanuts", **kw)),
    "search filters": (bad_filter, lambda s, v: s.search("peanuts", filters=v)),
    "search min_score": (st.sampled_from([math.nan, math.inf, -math.inf, "0.5", [0.5], True]), lambda s, v: s.search("peanuts", min_score=v)),
    "search mode": (st.one_of(st.sampled_from(["", "fuzzy", 5, ["dense"]]), _tainted(surrogate)), lambda s, v: s.search("peanuts", mode=v)),
    "search since": (bad_when, lambda s, v: s.search("peanuts", since=v)),
    "search until": (bad_when, lambda s, v: s.search("peanuts", until=v)),
    "search reranker": (st.sampled_from([object(), 5, "cross-encoder"]), lambda s, v: s.search("peanuts", reranker=v)),
    "search now": (bad_when, lambda s, v: s.search("peanuts", now=v)),
    "search group_by": (st.sampled_from(["sessions", 5, ""]), lambda s, v: s.search("peanuts", group_by=v)),
    "search include_superseded": (bad_flag, lambda s, v: s.search("peanuts", include_superseded=v)),
    "search newest_first": (bad_flag, lambda s, v: s.search("peanuts", newest_first=v)),
    "search count_reads": (bad_flag, lambda s, v: s.search("peanuts", count_reads=v)),
    "search_vector vector": (bad_vectors, lambda s, v: s.search_vector(v, space="vec")),
    "search_vector space": (bad_space, lambda s, v: s.search_vector([1, 0, 0, 0], space=v)),
    "search_vector k": (bad_k, lambda s, v: s.search_vector([1, 0, 0, 0], space="vec", k=v)),
    **_scoped("search_vector", lambda s, kw: s.search_vector([1, 0, 0, 0], space="vec", **kw)),
    "search_vector filters": (bad_filter, lambda s, v: s.search_vector([1, 0, 0, 0], space="vec", filters=v)),
    "search_vector min_score": (st.sampled_from([math.nan, math.inf, "0.5", [0.5], True]), lambda s, v: s.search_vector([1, 0, 0, 0], space="vec", min_score=v)),
    "search_vector count_reads": (bad_flag, lambda s, v: s.search_vector([1, 0, 0, 0], space="vec", count_reads=v)),
    "search_vectors vectors": (bad_vectors, lambda s, v: s.search_vectors(v, space="vec")),
    "search_vectors space": (bad_space, lambda s, v: s.search_vectors(KEY[:2], space=v)),
    "search_vectors k": (bad_k, lambda s, v: s.search_vectors(KEY[:2], space="vec", k=v)),
    **_scoped("search_vectors", lambda s, kw: s.search_vectors(KEY[:2], space="vec", **kw)),
    "search_vectors filters": (bad_filter, lambda s, v: s.search_vectors(KEY[:2], space="vec", filters=v)),
    "search_vectors min_score": (st.sampled_from([math.nan, -math.inf, "0.5", [0.5], False]), lambda s, v: s.search_vectors(KEY[:2], space="vec", min_score=v)),
    "search_vectors count_reads": (bad_flag, lambda s, v: s.search_vectors(KEY[:2], space="vec", count_reads=v)),
    "get id": (bad_id, lambda s, v: s.get(v)),
    "update id": (bad_id, lambda s, v: s.update(v, text="new words here")),
    "update text": (bad_text.filter(lambda t: t is not None), lambda s, v: s.update(1, text=v)),
    "update metadata": (bad_metadata, lambda s, v: s.update(1, metadata=v)),
    "update_vectors ids": (st.one_of(bad_id.map(lambda i: [i]), st.sampled_from([5, None, "3", [3, 3]])), lambda s, v: s.update_vectors(v, KEY[:1])),
    "update_vectors keys": (bad_vectors, lambda s, v: s.update_vectors([3], v)),
    "update_vectors labels": (st.one_of(st.sampled_from(["ab", 5, ["a", "b"]]), st.one_of(bad_text.filter(lambda t: t is not None), st.just("l" * 501)).map(lambda t: [t])),
                              lambda s, v: s.update_vectors([3], KEY[:1], labels=v)),
    "update_vectors metadata": (st.one_of(bad_metadata.map(lambda m: [m]), st.sampled_from([[{}, {}], "x"])), lambda s, v: s.update_vectors([3], KEY[:1], metadata=v)),
    "delete id": (bad_id, lambda s, v: s.delete(v)),
    "delete_many ids": (st.one_of(bad_id.map(lambda i: [1, i]), st.sampled_from([5, "12", None])), lambda s, v: s.delete_many(v)),
    # Beside user_id="alice": a good call would delete alice's memory.
    "delete_all user_id": (bad_scope, lambda s, v: s.delete_all(user_id=v)),
    "delete_all agent_id": (bad_scope, lambda s, v: s.delete_all(user_id="alice", agent_id=v)),
    "delete_all session_id": (bad_scope, lambda s, v: s.delete_all(user_id="alice", session_id=v)),
    "delete_all space": (bad_space, lambda s, v: s.delete_all(user_id="alice", space=v)),
    "history id": (bad_id, lambda s, v: s.history(v)),
    "keys ids": (st.one_of(bad_id.map(lambda i: [i]), st.sampled_from([5, "1", None])), lambda s, v: s.keys(v)),
    "list cursor": (bad_cursor, lambda s, v: s.list(cursor=v)),
    "list limit": (bad_k, lambda s, v: s.list(limit=v)),
    "list space": (bad_space, lambda s, v: s.list(space=v)),
    "list filters": (bad_filter, lambda s, v: s.list(filters=v)),
    **_scoped("list", lambda s, kw: s.list(**kw)),
    "count space": (bad_space, lambda s, v: s.count(space=v)),
    **_scoped("count", lambda s, kw: s.count(**kw)),
    "scopes kind": (st.sampled_from(["user", "", 5, "id", None]), lambda s, v: s.scopes(v)),
    "scopes space": (bad_space, lambda s, v: s.scopes(space=v)),
    "scopes limit": (st.one_of(st.integers(-(2**70), 0), st.sampled_from(["5", 2.5, True])), lambda s, v: s.scopes(limit=v)),
    "least_used n": (st.one_of(st.integers(-(2**70), 0), st.integers(2**63, 2**70), st.sampled_from(["2", 2.5, None])), lambda s, v: s.least_used(v)),
    "least_used space": (bad_space, lambda s, v: s.least_used(1, space=v)),
    "index_info space": (bad_space, lambda s, v: s.index_info(v)),
    "key_index space": (bad_space, lambda s, v: s.key_index(v)),
    "lexical_index space": (bad_space, lambda s, v: s.lexical_index(v)),
    "index_info recall_sample": (st.one_of(st.integers(max_value=-1, min_value=-(2**70)), st.integers(MAX_K + 1, 2**70), st.sampled_from(["5", 2.5])),
                                 lambda s, v: s.index_info(recall_sample=v)),
    "usage_histogram space": (bad_space, lambda s, v: s.usage_histogram(v)),
    "wait_trained space": (bad_space, lambda s, v: s.wait_trained(v)),
    "wait_trained timeout": (bad_seconds, lambda s, v: s.wait_trained(timeout=v)),
    "create_space name": (bad_new_space, lambda s, v: s.create_space(v, dim=4, key_source="test")),
    "create_space dim": (bad_dim, lambda s, v: s.create_space("fresh", dim=v, key_source="test")),
    "create_space key_source": (st.one_of(bad_text, st.just("k" * 501)), lambda s, v: s.create_space("fresh", dim=4, key_source=v)),
    "reindex batch_size": (bad_batch, lambda s, v: s.reindex(batch_size=v)),
    "move_keys key_index": (st.sampled_from(["", "FAISS", "annoy", None, 5, b"faiss"]), lambda s, v: s.move_keys(v)),
    "export path": (bad_export_path, lambda s, v: s.export(v)),
    "import_ path": (bad_import_path, lambda s, v: s.import_(v)),
}
# Public methods no bad value can reach: they take no arguments.
EXEMPT = {
    "close": "takes no arguments (and may be called twice)",
    "reset": "takes no arguments; it empties the store on purpose",
    "spaces": "takes no arguments",
}
API_METHODS = sorted({name.split()[0] for name in CALLS})


def _fill(url: str, index_dir: Path) -> MindStore:
    s = MindStore(url, embedder=HashEmbedder(), config=Config(index_dir=index_dir))
    s.add("Alice is allergic to peanuts", user_id="alice", metadata={"year": 2024})
    s.add("Bob plays bass", user_id="bob")
    s.create_space("vec", dim=4, key_source="test")
    s.add_vectors(KEY, space="vec", labels=list("abcd"))
    return s


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[MindStore]]:
    """The same filled store on a SQLite file, or on PostgreSQL and, as its twin, on a SQLite file."""
    urls = [f"sqlite:///{tmp_path / 'memory.db'}"]
    if request.param == "postgres":
        urls.insert(0, request.getfixturevalue("pg_url"))
    opened = [_fill(url, tmp_path / f"index-{i}") for i, url in enumerate(urls)]
    yield opened
    for s in opened:
        s.close()


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


def _alike(answers: list[Any]) -> Any:
    """The one answer every backend gave (an error's type and message, a command's output)."""
    assert all(a == answers[0] for a in answers), f"SQLite and PostgreSQL answer differently: {answers}"
    return answers[0]


def _refused_alike(stores: list[MindStore], call: Callable[[MindStore], Any]) -> MindStoreError:
    errors = [_refused(s, lambda s=s: call(s)) for s in stores]
    _alike([(type(e).__name__, str(e)) for e in errors])
    return errors[0]


@pytest.mark.parametrize("method", API_METHODS)
@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_every_bad_argument_is_a_typed_error_that_changes_nothing(stores: list[MindStore], method: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([n for n in CALLS if n.split()[0] == method]), label="argument")
    values, call = CALLS[name]
    value = data.draw(values, label="value")
    _refused_alike(stores, lambda s: call(s, value))


def test_metadata_is_refused_past_its_size_and_taken_up_to_it(db_url: str, tmp_path: Path) -> None:
    with MindStore(db_url, embedder=HashEmbedder(), config=Config(index_dir=tmp_path / "index")) as s:
        room = MAX_METADATA_BYTES - len(json.dumps({"k": ""}))
        kept = s.add("fits exactly", metadata={"k": "é" * (room // 2)})  # two bytes a character in UTF-8
        assert s.get(kept.id).metadata == {"k": "é" * (room // 2)}
        with pytest.raises(MindStoreError, match=r"metadata has 65,5\d\d bytes as JSON, more than 65,536; keep large content elsewhere"):
            s.update(kept.id, metadata={"k": "é" * (room // 2 + 1)})
        assert s.get(kept.id).metadata == {"k": "é" * (room // 2)}


# -- import_: bad files -------------------------------------------------------------------------


def _b64(values: Any) -> str:
    return base64.b64encode(np.asarray(values, dtype=np.float32).tobytes()).decode("ascii")


NEW_ID = 10**6  # the id of the good slot line the bad lines follow
# "kind field" -> values JSON can carry that no export writes, for that field of a line of that kind.
BAD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "slot id": st.one_of(huge_int, st.integers(-(2**63), 0), st.sampled_from(["1", 1.5, None, [1], True]),
                         st.sampled_from([NEW_ID, 1, 6])),  # one the file already has, or the store has
    "slot space": st.one_of(bad_space, st.just("vec")),  # "vec": keys of another size
    "slot user_id": bad_scope,
    "slot agent_id": bad_scope,
    "slot session_id": bad_scope,
    "slot text": bad_text.filter(lambda t: t is not None),
    "slot label": st.one_of(bad_scope.filter(lambda v: not isinstance(v, str) or len(v) < 256), st.just("l" * 501)),
    "slot metadata": st.one_of(st.sampled_from(["x", 5, ["a"], None, math.nan]), st.builds(lambda k: {k: 1}, _tainted(st.one_of(nul, surrogate))),
                               st.builds(lambda v: {"k": v}, st.one_of(_tainted(st.one_of(nul, surrogate)), st.sampled_from([math.nan, math.inf]))),
                               st.integers(MAX_DEPTH + 1, 500).map(lambda d: {"x": _nested(d)}), st.just({"k": "m" * MAX_METADATA_BYTES})),
    # reads and writes are INTEGER columns: PostgreSQL refuses 2**31, SQLite would keep it.
    "slot reads": st.one_of(st.integers(-(2**70), -1), st.integers(2**31, 2**70), st.sampled_from(["5", 2.5, None, True, math.nan])),
    "slot writes": st.one_of(st.integers(-(2**70), -1), st.integers(2**31, 2**63), st.sampled_from(["1", math.inf])),
    "slot last_access": bad_when,
    "slot created_at": st.one_of(bad_when, st.none()),
    "slot updated_at": edge_of_time,
    "slot key": st.sampled_from([None, "", "not base64!", "AAAA", 5, "AAAAAAAAAAAAAAAAAAAAAA==", _b64([math.nan] * 32), _b64([math.inf] * 32), _b64([0] * 32)]),
    "slot value": st.sampled_from(["not base64!", 5, "AAA", _b64([math.nan, 1.0])]),
    "slot superseded_by": st.sampled_from([0, -1, 2**63, "5", 1.5, True]),
    "space name": st.one_of(bad_new_space, st.just("chat")),  # "chat" again, with the template's other dim
    "space dim": st.one_of(st.integers(-(2**70), 0), st.integers(MAX_DIM + 1, 2**70), st.sampled_from(["4", 4.0, True, None])),
    "space key_source": st.one_of(bad_text, st.just("k" * 501)),
    "space created_at": st.one_of(bad_when, st.none()),
    "event slot_id": st.one_of(huge_int, st.integers(-(2**63), 0), st.sampled_from(["1", 1.5, None, True])),
    "event slot_last": st.one_of(st.integers(-(2**63), NEW_ID - 1), st.integers(2**63, 2**70), st.sampled_from(["7", 1.5])),
    "event space": bad_space,
    "event kind": st.one_of(st.sampled_from(["", "k" * 17, 5, None]), _tainted(st.one_of(nul, surrogate))),
    "event old_text": bad_text.filter(lambda t: t is not None and not (isinstance(t, str) and not t.strip())),  # an event's text may be blank
    "event new_text": st.one_of(st.sampled_from([5, ["x"]]), _tainted(st.one_of(nul, surrogate))),
    "event old_metadata": st.sampled_from(["x", 5, {"k": math.nan}, {"k": "a\x00"}]),
    "event new_metadata": st.one_of(st.sampled_from([[1], {"k": math.inf}]), st.just({"k": "m" * MAX_METADATA_BYTES})),
    "event at": st.one_of(bad_when, st.none()),
}
# Whole lines that are no export line at all.
BAD_LINES = st.one_of(
    st.sampled_from(['{"type": "slot", "id": ', "[1, 2]", "5", '"slot"', "null", "{}", '{"type": "nope"}', '{"type": ["slot"]}', '{"type": "space"}',
                     '{"type": "slot", "id": NaN}', '{"type": "slot", "id": Infinity}', '{"type": "slot", "id": ' + "9" * 5000 + "}",
                     "[" * 100_000 + "]" * 100_000]).map(str.encode),
    st.sampled_from([b'{"type": "slot", "text": "caf\xe9"}', b"\xff\xfe{}", b"\xef\xbb\xbf{}"]),  # Latin-1, UTF-16, a BOM
)


def _import_file(store: MindStore, tmp: Path) -> tuple[list[str], dict[str, dict]]:
    """The store's space lines, then a good slot line (a copy of slot 1 with a new id) and its
    event: the file the bad lines are appended to. Returns its lines and a template of each kind."""
    store.export(tmp / "dump.jsonl")
    objs = [json.loads(line) for line in (tmp / "dump.jsonl").read_text().splitlines()]
    (tmp / "dump.jsonl").unlink()
    spaces = [o for o in objs if o["type"] == "space"]
    slot = {**next(o for o in objs if o["type"] == "slot" and o["id"] == 1), "id": NEW_ID}
    event = {k: v for k, v in next(o for o in objs if o["type"] == "event" and o["slot_id"] == 1).items() if k != "slot_last"}
    event["slot_id"] = NEW_ID
    templates = {"slot": {**slot, "id": NEW_ID + 1}, "space": {**spaces[0], "name": "fresh", "dim": 8, "key_source": "fresh keys"},
                 "event": {**event, "slot_last": NEW_ID + 5}}
    return [json.dumps(o) for o in (*spaces, slot, event)], templates


def test_the_file_the_bad_lines_spoil_imports_cleanly(stores: list[MindStore], tmp_path: Path) -> None:
    lines, templates = _import_file(stores[0], tmp_path)
    (tmp_path / "good.jsonl").write_text("\n".join([*lines, *map(json.dumps, templates.values())]) + "\n")
    for s in stores:
        assert s.import_(tmp_path / "good.jsonl") == 2
        assert s.get(NEW_ID).text == "Alice is allergic to peanuts" and "fresh" in {sp.name for sp in s.spaces()}


@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_a_bad_import_line_is_refused_by_its_number_and_imports_nothing(stores: list[MindStore], tmp_path_factory: pytest.TempPathFactory,
                                                                        data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("import")
    lines, templates = _import_file(stores[0], tmp)
    blank = data.draw(st.integers(0, 2), label="blank lines before it")  # blank lines count in the numbering
    name = data.draw(st.sampled_from([*sorted(BAD_FIELDS), "a whole line"]), label="bad")
    if name == "a whole line":
        bad, words = data.draw(BAD_LINES, label="line"), ("line", "UTF-8", "field", "JSON", "type")
    else:
        kind, field = name.split()
        value = data.draw(BAD_FIELDS[name], label="value")
        try:  # ASCII, so that a NUL or a lone surrogate reaches the importer as an escape (\u0000, \ud800)
            bad, words = json.dumps({**templates[kind], field: value}).encode("ascii"), {"space": ("space", "key"), "name": ("name", "declared")}.get(field, (field,))
        except (TypeError, ValueError, RecursionError):  # a value JSON cannot hold: the line is cut short
            bad, words = b'{"type": "slot", "id": ', ("not a mindstore export line",)
    (tmp / "bad.jsonl").write_bytes(b"\n".join([*(line.encode() for line in lines), *[b""] * blank, bad]) + b"\n")
    listing = sorted(p.name for p in tmp.rglob("*"))
    error = _refused_alike(stores, lambda s: s.import_(tmp / "bad.jsonl"))
    assert str(error).startswith(f"bad.jsonl:{len(lines) + blank + 1}: ") and str(error).endswith("nothing was imported"), str(error)
    assert any(w in str(error) for w in words), str(error)
    assert sorted(p.name for p in tmp.rglob("*")) == listing  # no .tmp file, no folder


# -- opening a store ----------------------------------------------------------------------------

BAD_OPENS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "space": bad_new_space.map(lambda v: {"space": v}),
    "embedder": st.one_of(st.sampled_from([5, "", "  ", object(), b"all-MiniLM-L6-v2"]), _tainted(st.one_of(nul, surrogate))).map(lambda v: {"embedder": v}),
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
    # Sizes the store would first meet in a search or a reindex: a 4 TiB array, an SQL LIMIT past 64 bits.
    st.builds(lambda f, v: {f: v}, st.sampled_from(["embed_batch_size", "fusion_depth", "rerank_depth"]), st.integers(MAX_BATCH + 1, 2**70)),
    st.builds(lambda v: {"ttl": v}, st.sampled_from([math.inf, 1e308, 2**70, math.nan, 0])),
    st.builds(lambda f, v: {f: v}, st.sampled_from(["search_mode", "fusion", "device"]), st.sampled_from(["", "x", 5, None])),
    st.sampled_from([{"index_dir": 5}, {"index_dir": "a\x00b"}, {"ttl": "60"}, {"ttl": -1}, {"index_context": "yes"}]),
)


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_bad_store_arguments_open_nothing_and_change_nothing(stores: list[MindStore], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("open")
    if data.draw(st.booleans(), label="a Config field"):
        fields = data.draw(BAD_CONFIGS, label="config")
        _refused_alike(stores, lambda s: Config(**fields))
        return
    kwargs = data.draw(st.sampled_from(sorted(BAD_OPENS)).flatmap(BAD_OPENS.__getitem__), label="kwargs")
    _refused_alike(stores, lambda s: MindStore(s.url, **{"config": Config(index_dir=tmp / "index"), **kwargs}))
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


BAD_URLS = ["", "  ", 5, b"sqlite://", "not a url at all", "nonsense://", "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "sqlite:///{tmp}/a\x00b.db", "sqlite:///{tmp}/bad\ud800.db", "sqlite:///{tmp}/file/under-a-file.db", "sqlite:///{tmp}",
            "sqlite:///{tmp}/other-app.db", "sqlite:///{tmp}/text.db", "sqlite:///file:{tmp}/uri/x.db?mode=ro&uri=true"]


def _in(tmp: Path, value: Any) -> Any:
    """``value`` with ``{tmp}`` naming the test's folder of files that no store may take (``_other_files``)."""
    return value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value


@settings(SETTINGS, max_examples=20)
@given(data=st.data())
def test_a_url_that_names_no_store_is_refused_and_touches_no_file(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    import hashlib
    import os

    tmp = _other_files(tmp_path_factory.mktemp("urls"))
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.iterdir()}
    url = _in(tmp, data.draw(st.sampled_from(BAD_URLS), label="url"))
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
cli_scope = st.one_of(st.sampled_from(["", "u" * 256]), _tainted(st.one_of(nul, surrogate)))
cli_meta = st.one_of(st.sampled_from(["noequals", "=1", "a=" + "[" * 5000 + "]" * 5000, f"k={'m' * MAX_METADATA_BYTES}"]),
                     _tainted(st.one_of(nul, surrogate)).map(lambda t: f"k={t}"))
cli_filter = st.sampled_from(["{bad", "[1]", "5", '{"year": {"$like": 1}}', '{"a":' * 3000 + "1" + "}" * 3000, '{"k": "a\\u0000"}', '{"k": "\\ud800"}'])
cli_when = st.one_of(st.sampled_from(["garbage words", "9999999-01-01", "2023-13-45", "", "9999-12-31T23:59:59-01:00"]), _tainted(st.one_of(nul, surrogate)))
cli_model = st.sampled_from(["", "   ", "no-such-model-xyz", "a\x00b"])
cli_k = st.one_of(ids_text, st.just("0"), st.integers(MAX_K + 1, 2**70).map(str))
# A --db that names no store; "{tmp}": the test's folder of files no store may take (_other_files).
cli_db = st.sampled_from([u for u in BAD_URLS if isinstance(u, str) and "\x00" not in u] + ["sqlite:///{tmp}/missing/x.db"])
# The arguments of each command that the values below are put among.
CLI_ARGS = {"add": ["add", "fine words"], "search": ["search", "peanuts"], "list": ["list"], "show": ["show", "1"], "edit": ["edit", "1", "--text", "new words"],
            "rm": ["rm", "1"], "history": ["history", "1"], "export": ["export", "{tmp}/out.jsonl"], "import": ["import", "{tmp}/missing.jsonl"],
            "stats": ["stats"], "reindex": ["reindex"], "mcp": ["mcp"], "demo": ["demo"]}
# "command parameter" -> (bad strings, the arguments; the test adds --db unless they hold one).
CLI: dict[str, tuple[st.SearchStrategy[str], Callable[[str], list[str]]]] = {
    "add text": (cli_text, lambda v: ["add", v]),
    "add user": (cli_scope, lambda v: ["add", "fine words", "--user", v]),
    "add agent": (cli_scope, lambda v: ["add", "fine words", "--agent", v]),
    "add session": (cli_scope, lambda v: ["add", "fine words", "--session", v]),
    "add meta": (cli_meta, lambda v: ["add", "fine words", "--meta", v]),
    "add model": (cli_model, lambda v: ["add", "fine words", "--model", v]),
    "search query": (cli_text, lambda v: ["search", v]),
    "search k": (cli_k, lambda v: ["search", "peanuts", "-k", v]),
    "search user": (cli_scope, lambda v: ["search", "peanuts", "--user", v]),
    "search agent": (cli_scope, lambda v: ["search", "peanuts", "--agent", v]),
    "search session": (cli_scope, lambda v: ["search", "peanuts", "--session", v]),
    "search filter": (cli_filter, lambda v: ["search", "peanuts", "--filter", v]),
    "search min_score": (st.sampled_from(["nan", "inf", "-inf", "1e400", "x", ""]), lambda v: ["search", "peanuts", "--min-score", v]),
    "search now": (st.one_of(cli_when, st.just("0001-01-01T00:00:00+01:00")), lambda v: ["search", "peanuts", "--now", v]),
    "search since": (cli_when, lambda v: ["search", "peanuts", "--since", v]),
    "search until": (cli_when, lambda v: ["search", "peanuts", "--until", v]),
    "search mode": (st.one_of(st.sampled_from(["", "fuzzy", "DENSE"]), _tainted(surrogate)), lambda v: ["search", "peanuts", "--mode", v]),
    "search model": (cli_model, lambda v: ["search", "peanuts", "--model", v]),
    "list user": (cli_scope, lambda v: ["list", "--user", v]),
    "list agent": (cli_scope, lambda v: ["list", "--agent", v]),
    "list session": (cli_scope, lambda v: ["list", "--session", v]),
    "list space": (st.one_of(st.just("nope"), _tainted(st.one_of(nul, surrogate))), lambda v: ["list", "--space", v]),
    "list filter": (cli_filter, lambda v: ["list", "--filter", v]),
    "list limit": (cli_k, lambda v: ["list", "--limit", v]),
    "list cursor": (st.one_of(ids_text, _tainted(st.one_of(nul, surrogate))), lambda v: ["list", "--cursor", v]),
    "show id": (ids_text, lambda v: ["show", v]),
    "edit id": (ids_text, lambda v: ["edit", v, "--text", "new words here"]),
    "edit text": (cli_text, lambda v: ["edit", "1", "--text", v]),
    "edit meta": (cli_meta, lambda v: ["edit", "1", "--meta", v]),
    "edit model": (cli_model, lambda v: ["edit", "1", "--text", "new words here", "--model", v]),
    "rm ids": (st.one_of(ids_text, ids_text.map(lambda i: f"1 {i}")), lambda v: ["rm", *v.split(" ")]),
    # --all with a bad scope: a good one would delete.
    "rm user": (cli_scope, lambda v: ["rm", "--all", "--yes", "--user", v]),
    "rm agent": (cli_scope, lambda v: ["rm", "--all", "--yes", "--agent", v]),
    "rm session": (cli_scope, lambda v: ["rm", "--all", "--yes", "--session", v]),
    "history id": (ids_text, lambda v: ["history", v]),
    "export path": (st.sampled_from(["{tmp}", "{tmp}/file/x.jsonl", "{tmp}/a\x00b", ""]), lambda v: ["export", v]),
    "import path": (st.sampled_from(["{tmp}", "{tmp}/file/x.jsonl", "{tmp}/a\x00b", "{tmp}/missing.jsonl", "", "{tmp}/text.db", "{tmp}/other-app.db"]),
                    lambda v: ["import", v]),
    "stats recall_sample": (st.one_of(st.integers(-(2**70), -1).map(str), st.integers(MAX_K + 1, 2**70).map(str), st.just("x")), lambda v: ["stats", "--recall-sample", v]),
    "reindex model": (cli_model, lambda v: ["reindex", "--model", v]),
    "reindex key_index": (st.sampled_from(["", "annoy", "FAISS", "pg vector"]), lambda v: ["reindex", "--key-index", v]),
    # stdio: should a bad value pass, the server meets the end of its input and exits 0, which fails.
    "mcp transport": (st.sampled_from(["", "carrier-pigeon", "HTTP", "sse"]), lambda v: ["mcp", "--transport", v]),
    "mcp port": (st.one_of(st.integers(-(2**70), 0).map(str), st.integers(65536, 2**70).map(str), st.just("x")), lambda v: ["mcp", "--transport", "http", "--port", v]),
    "mcp agent": (cli_scope, lambda v: ["mcp", "--agent", v]),
    **{f"{command} db": (cli_db, lambda v, args=args: [*args, "--db", v]) for command, args in CLI_ARGS.items()},
}
# Commands and options out of this table's reach, and why. Flags (--json, --yes, ...) take no value.
CLI_EXEMPT = {
    "tui db": "starts the Textual app; tests/tui drive a bad --db there (app.open_error)",
    **dict.fromkeys(["train", "evaluate", "bind", "recall"], "the neural commands (mindstore/neural/cli.py): their own tests in tests/neural"),
}


def _cli_parameters() -> dict[str, set[str]]:
    """Each command of the ``mindstore`` CLI with the parameters that take a value."""
    import typer.main

    from mindstore.cli import app

    return {name: {p.name for p in command.params if not getattr(p, "is_flag", False)} for name, command in typer.main.get_command(app).commands.items()}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def cli_stores(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """Store URLs as ``stores``, made by the CLI's own embedder (the default model): the CLI cannot be given another."""
    urls = [f"sqlite:///{tmp_path / 'memory.db'}"]
    if request.param == "postgres":
        urls.insert(0, request.getfixturevalue("pg_url"))
    for url in urls:
        with MindStore(url) as s:
            s.add("Alice is allergic to peanuts", user_id="alice", metadata={"year": 2024})
            s.add("Bob plays bass", user_id="bob")
    return urls


@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_the_cli_answers_bad_arguments_with_one_error_line(cli_stores: list[str], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    from typer.testing import CliRunner

    from mindstore.cli import app

    tmp = _other_files(tmp_path_factory.mktemp("cli"))
    name = data.draw(st.sampled_from(sorted(CLI)), label="option")
    values, make = CLI[name]
    args = [_in(tmp, a) for a in make(data.draw(values, label="value"))]
    before = [snapshot(url) for url in cli_stores]
    outputs = []
    for url in cli_stores if "--db" not in args else cli_stores[:1]:
        result = CliRunner().invoke(app, args if "--db" in args else [*args, "--db", url])
        assert result.exit_code not in (0, None), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output
        assert "error" in result.output.lower(), result.output  # ours ("error: ...") or click's usage error
        outputs.append((result.exit_code, result.output))
    _alike(outputs)
    assert [snapshot(url) for url in cli_stores] == before
    assert not (tmp / "missing").exists()


# -- the MCP tools ------------------------------------------------------------------------------

mcp_text = st.one_of(st.sampled_from(["", "   ", 5, None, ["x"]]), _tainted(st.one_of(nul, surrogate)), st.just("a" * (MAX_TEXT_CHARS + 1)))
mcp_id = st.one_of(huge_int, st.integers(-(2**63), 0), st.integers(10**6, 2**63 - 1), st.sampled_from(["x", 1.5, None, [1]]))
mcp_scope = st.one_of(st.sampled_from(["", "u" * 256, 5, ["alice"]]), _tainted(st.one_of(nul, surrogate)))
mcp_metadata = st.one_of(st.sampled_from(["x", [1]]), st.builds(lambda t: {"k": t}, _tainted(st.one_of(nul, surrogate))),
                         st.integers(MAX_DEPTH + 1, 60).map(lambda d: {"x": _nested(d)}),  # deeper fails in the client
                         st.just({"k": "m" * MAX_METADATA_BYTES}))
# "tool argument" -> (bad values, the arguments they are put among).
MCP: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], dict[str, Any]]]] = {
    "add_memory user_id": (mcp_scope, lambda v: {"user_id": v, "text": "fine words"}),
    "add_memory text": (mcp_text, lambda v: {"user_id": "alice", "text": v}),
    "add_memory metadata": (mcp_metadata, lambda v: {"user_id": "alice", "text": "fine words", "metadata": v}),
    "add_memory session_id": (mcp_scope, lambda v: {"user_id": "alice", "text": "fine words", "session_id": v}),
    "search_memories user_id": (mcp_scope, lambda v: {"user_id": v, "query": "peanuts"}),
    "search_memories query": (mcp_text, lambda v: {"user_id": "alice", "query": v}),
    "search_memories k": (st.one_of(st.integers(-(2**70), 0), st.integers(101, 2**70), st.sampled_from(["x", 2.5])), lambda v: {"user_id": "alice", "query": "peanuts", "k": v}),
    "search_memories filters": (st.one_of(bad_filter, st.integers(MAX_DEPTH + 1, 60).map(_nested_filter)), lambda v: {"user_id": "alice", "query": "peanuts", "filters": v}),
    "search_memories min_score": (st.sampled_from(["x", [0.5], {"a": 1}]), lambda v: {"user_id": "alice", "query": "peanuts", "min_score": v}),
    "list_memories user_id": (mcp_scope, lambda v: {"user_id": v}),
    "list_memories limit": (st.one_of(st.integers(-(2**70), 0), st.integers(1001, 2**70), st.sampled_from(["x", 2.5])), lambda v: {"user_id": "alice", "limit": v}),
    "list_memories cursor": (bad_cursor, lambda v: {"user_id": "alice", "cursor": v}),
    "list_memories session_id": (mcp_scope, lambda v: {"user_id": "alice", "session_id": v}),
    "update_memory user_id": (mcp_scope, lambda v: {"user_id": v, "memory_id": 1, "text": "new words here"}),
    "update_memory memory_id": (mcp_id, lambda v: {"user_id": "alice", "memory_id": v, "text": "new words here"}),
    "update_memory text": (mcp_text.filter(lambda t: t is not None), lambda v: {"user_id": "alice", "memory_id": 1, "text": v}),
    "update_memory metadata": (mcp_metadata, lambda v: {"user_id": "alice", "memory_id": 1, "metadata": v}),
    "delete_memory user_id": (mcp_scope, lambda v: {"user_id": v, "memory_id": 1}),
    "delete_memory memory_id": (mcp_id, lambda v: {"user_id": "alice", "memory_id": v}),
    "memory_history user_id": (mcp_scope, lambda v: {"user_id": v, "memory_id": 1}),
    "memory_history memory_id": (mcp_id, lambda v: {"user_id": "alice", "memory_id": v}),
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


def _mcp_arguments() -> dict[str, set[str]]:
    """Each tool of the MCP server with its arguments, as a client lists them."""
    import anyio
    from mcp import Client

    from mindstore.integrations.mcp import create_server

    async def listing() -> Any:
        async with Client(create_server(store)) as client:
            return await client.list_tools()

    with MindStore("sqlite://", embedder=HashEmbedder()) as store:
        tools = anyio.run(listing)
    return {t.name: set(t.input_schema["properties"]) for t in tools.tools}


@settings(SETTINGS, max_examples=40)
@given(data=st.data())
def test_mcp_tools_answer_bad_arguments_with_a_tool_error(stores: list[MindStore], data: st.DataObject) -> None:
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client

    from mindstore.integrations.mcp import create_server

    name = data.draw(st.sampled_from(sorted(MCP)), label="argument")
    values, make = MCP[name]
    arguments = make(data.draw(values.filter(_client_can_send), label="value"))

    async def call(store: MindStore) -> Any:
        async with Client(create_server(store)) as client:
            return await client.call_tool(name.split()[0], arguments)

    answers = []
    for store in stores:
        before = snapshot(store.url)
        result = anyio.run(call, store)
        assert result.is_error, result.structured_content
        assert result.content and len(result.content[0].text) > 30, result.content  # "Error executing tool x: " and a reason
        assert snapshot(store.url) == before
        answers.append(result.content[0].text)
    _alike(answers)


# -- every door is in a table -------------------------------------------------------------------


def test_every_door_is_in_a_table() -> None:
    """Each public method of MindStore and each of its parameters, each command option of the CLI
    and each MCP tool argument is driven above with bad values, or exempt with a reason."""
    public = {m for m in dir(MindStore) if not m.startswith("_") and callable(getattr(MindStore, m))}
    params = {m: list(inspect.signature(getattr(MindStore, m)).parameters)[1:] for m in public}
    assert {m for m in public if not params[m]} == set(EXEMPT), "a method without parameters belongs in EXEMPT, with a reason"
    api = {f"{m} {p}" for m in public for p in params[m]}
    assert api - set(CALLS) == set(), "parameters no bad value reaches: add them to CALLS"
    assert set(CALLS) - api == set(), "CALLS rows for parameters MindStore no longer has"

    cli = {f"{c} {p}" for c, ps in _cli_parameters().items() if c not in CLI_EXEMPT for p in ps}
    assert cli - set(CLI) - set(CLI_EXEMPT) == set(), "CLI options no bad value reaches: add them to CLI, or to CLI_EXEMPT with a reason"
    assert set(CLI) - cli == set(), "CLI rows for options the command no longer has"
    assert set(CLI_ARGS) == {c for c, ps in _cli_parameters().items() if "db" in ps and c not in CLI_EXEMPT and f"{c} db" not in CLI_EXEMPT}

    pytest.importorskip("mcp")
    tools = {f"{t} {a}" for t, args in _mcp_arguments().items() for a in args}
    assert tools == set(MCP), "MCP tool arguments and the MCP table differ"
