"""Property: no search, list, count, get-by-scope or delete_all ever touches another scope."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mindstore import MindStore, Scope

USERS = st.sampled_from([None, "u1", "u2", "u3"])
AGENTS = st.sampled_from([None, "a1", "a2"])
SESSIONS = st.sampled_from([None, "s1", "s2"])
SCOPES = st.builds(Scope, USERS, AGENTS, SESSIONS)
WORDS = ["peanut allergy", "jazz bass", "Berlin marathon", "cat called Pixel", "nurse in Lisbon", "trains not planes", "orchids for grandma", "new tyres"]

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), SCOPES, st.integers(0, len(WORDS) - 1)),
        st.tuples(st.just("delete_all"), SCOPES.filter(lambda s: s != Scope()), st.just(0)),
        st.tuples(st.just("delete_one"), SCOPES, st.integers(0, 10_000)),
    ),
    min_size=1,
    max_size=30,
)


def _matches(slot_scope: Scope, query: Scope) -> bool:
    return all(q is None or q == v for q, v in zip(query.as_dict().values(), slot_scope.as_dict().values()))


def _check_every_scope(store: MindStore, model: dict[int, Scope], query_vec, *, space: str | None, text: str | None) -> None:
    # Text mode embeds the query for every scope checked, so it checks every user with a few
    # agent/session combinations; vector mode checks all 36 scopes.
    agents, sessions = ((None, "a1"), (None, "s2")) if text is not None else ((None, "a1", "a2"), (None, "s1", "s2"))
    for user in (None, "u1", "u2", "u3"):
        for agent in agents:
            for session in sessions:
                q = Scope(user, agent, session)
                expected = {i for i, sc in model.items() if _matches(sc, q)}
                kw = q.as_dict()
                if text is not None:
                    hits = store.search(text, k=5, **kw)
                else:
                    hits = store.search_vector(query_vec, space=space, k=5, **kw)
                got = {h.slot.id for h in hits}
                assert got <= expected, f"search in {q} returned another scope's slots {got - expected}"
                assert len(hits) == min(5, len(expected)), "search must return exactly k when the scope has k"
                assert all(_matches(h.slot.scope, q) for h in hits)
                listed = store.list(space=space, limit=1000, **kw).slots
                assert {s.id for s in listed} == expected
                assert store.count(space=space, **kw) == len(expected)


def _run(store: MindStore, ops, *, text_mode: bool) -> None:
    store.reset()
    space = None
    rng = np.random.default_rng(0)
    vocab = rng.normal(size=(len(WORDS), 8)).astype(np.float32)
    if not text_mode:
        space = "v"
        store.create_space("v", dim=8, key_source="test")
    model: dict[int, Scope] = {}
    for op, scope, arg in ops:
        if op == "add":
            if text_mode:
                slot = store.add(WORDS[arg], dedup=False, **scope.as_dict())
            else:
                slot = store.add_vectors(vocab[arg : arg + 1], space="v", **scope.as_dict())[0]
            assert slot.scope == scope
            model[slot.id] = scope
        elif op == "delete_all":
            n = store.delete_all(space=space, **scope.as_dict())
            doomed = {i for i, sc in model.items() if _matches(sc, scope)}
            assert n == len(doomed)
            for i in doomed:
                del model[i]
        elif op == "delete_one" and model:
            victim = sorted(model)[arg % len(model)]
            assert store.get(victim).scope == model[victim]
            store.delete(victim)
            del model[victim]
    _check_every_scope(store, model, vocab[0], space=space, text=WORDS[0] if text_mode else None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_vector_scopes_never_leak(store: MindStore, ops) -> None:
    _run(store, ops, text_mode=False)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_text_scopes_never_leak(store: MindStore, ops) -> None:
    _run(store, ops, text_mode=True)


def test_scope_sql_predicate_and_python_check_agree(sqlite_url: str, tmp_path) -> None:
    from itertools import product

    from sqlalchemy import create_engine, select

    from mindstore.db import SlotRow, SpaceRow, scope_where
    from tests.conftest import random_keys, vector_store

    scopes = [Scope(*t) for t in product((None, "u1", "u2"), (None, "a1"), (None, "s1"))]
    with vector_store(sqlite_url, tmp_path) as store:
        slots = [store.add_vectors(random_keys(1, n), space="v", **sc.as_dict())[0] for n, sc in enumerate(scopes)]
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as c:
            space_id = c.scalar(select(SpaceRow.id).where(SpaceRow.name == "v"))
            for q in scopes:
                expected = {s.id for s in slots if _matches(s.scope, q)}
                assert {s.id for s in slots if q.contains(s)} == expected
                assert set(c.scalars(select(SlotRow.id).where(*scope_where(space_id, q)))) == expected
                exact = set(c.scalars(select(SlotRow.id).where(*scope_where(space_id, q, exact=True))))
                assert exact == {s.id for s in slots if s.scope == q}  # retention's count: that scope only
    finally:
        engine.dispose()
