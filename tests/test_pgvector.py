"""The pgvector key index against the real PostgreSQL server (pgvector built by .ci/run).

One database for the module, dropped at its end; each test keys a space of its own (its own
table). Skipped only where the server cannot create the extension, with the reason shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from mindstore.db.engine import open_database
from mindstore.db.models import SlotRow, SpaceRow, scope_where
from mindstore.errors import DatabaseError, InvalidVectorError
from mindstore.index.pgvector import EF_SEARCH, PgVectorKeys, PgVectorMissingError, ensure_pgvector, missing_message
from mindstore.slots import Scope

from conftest import PG_ADMIN_URL

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """A fresh mindstore database with pgvector created in it."""
    name = f"mindstore_test_pgv_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = None
    try:
        engine, _ = open_database(make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False))
        try:
            with engine.begin() as c:
                ensure_pgvector(c)
        except PgVectorMissingError as exc:
            pytest.skip(f"pgvector cannot be created on this server ({exc}); .ci/run builds it from ../shared/vendor")
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def new_space(engine: Engine, dim: int, scopes: list[Scope]) -> tuple[int, np.ndarray]:
    """A space with one slot per scope given; returns its id and the slots' ids."""
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        space = c.execute(insert(SpaceRow).values(name=uuid.uuid4().hex, dim=dim, key_source="test", created_at=now).returning(SpaceRow.id)).scalar_one()
        rows = [dict(space_id=space, key=b"", created_at=now, updated_at=now, **sc.as_dict()) for sc in scopes]
        ids = c.execute(insert(SlotRow).returning(SlotRow.id, sort_by_parameter_order=True), rows).scalars().all()
    return space, np.array(ids, dtype=np.int64)


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_stored_key_is_its_own_top_hit(engine: Engine) -> None:
    rng = np.random.default_rng(1)
    space, ids = new_space(engine, 32, [Scope(user_id="u")] * 300)
    index = PgVectorKeys(engine, space, 32)
    keys = unit(rng, 300, 32)
    index.add(ids, keys * 3.0)  # normalised on the way in: scores are cosines
    scores, got = index.search(keys[:20], 5)
    assert got.shape == (20, 5) and got.dtype == np.int64 and scores.dtype == np.float32
    assert (got[:, 0] == ids[:20]).all()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()  # best first


def test_scan_settings_stay_with_an_autocommit_session_and_end_with_a_transaction(engine: Engine) -> None:
    """On an autocommit connection (the store's reads) the HNSW settings are set once for the
    session, and set again when a search asks for others; in a transaction they are SET LOCAL."""
    rng = np.random.default_rng(11)
    space, ids = new_space(engine, 16, [Scope(user_id="u")] * 50)
    index = PgVectorKeys(engine, space, 16)
    keys = unit(rng, 50, 16)
    index.add(ids, keys)
    _, alone = index.search(keys[:3], 5)
    with engine.connect() as raw:
        c = raw.execution_options(isolation_level="AUTOCOMMIT")
        _, got = index.search(keys[:3], 5, conn=c)
        np.testing.assert_array_equal(got, alone)
        assert (c.scalar(text("SHOW hnsw.ef_search")), c.scalar(text("SHOW hnsw.iterative_scan"))) == (str(EF_SEARCH), "relaxed_order")
        index.search(keys[:3], 5, conn=c, ef_search=37)
        assert c.scalar(text("SHOW hnsw.ef_search")) == "37"
        index.search(keys[:3], 5, conn=c)
        assert c.scalar(text("SHOW hnsw.ef_search")) == str(EF_SEARCH)
    with engine.connect() as c:
        with c.begin():
            index.search(keys[:3], 5, conn=c, ef_search=41)
            assert c.scalar(text("SHOW hnsw.ef_search")) == "41"
        assert c.scalar(text("SHOW hnsw.ef_search")) != "41"  # SET LOCAL: gone with the transaction


def test_a_whole_space_search_for_more_than_ef_search_rows_gets_them_all_best_first(engine: Engine) -> None:
    """Without the iterative scan an HNSW scan stops at ef_search rows; a search for more gets them."""
    rng = np.random.default_rng(12)
    space, ids = new_space(engine, 16, [Scope(user_id="u")] * 300)
    index = PgVectorKeys(engine, space, 16, ef_search=10)
    keys = unit(rng, 300, 16)
    index.add(ids, keys)
    scores, got = index.search(keys[:2], 50)
    assert (got >= 0).all() and all(len(set(row)) == 50 for row in got)
    assert (np.diff(scores, axis=1) <= 1e-7).all() and (got[:, 0] == ids[:2]).all()


def test_recall_at_10_against_exact_search(engine: Engine) -> None:
    rng = np.random.default_rng(2)
    n, dim = 5000, 64
    space, ids = new_space(engine, dim, [Scope(user_id="u")] * n)
    index = PgVectorKeys(engine, space, dim)
    index.drop_index()  # bulk load, then build: the path a migration takes
    keys = unit(rng, n, dim)
    index.add(ids, keys)
    index.build_index(maintenance_work_mem="256MB")
    queries = unit(rng, 100, dim)
    _, got = index.search(queries, 10)
    exact = ids[np.argsort(-(queries @ keys.T), axis=1)[:, :10]]
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)])
    assert recall >= 0.95, recall


SCOPES = [Scope(user_id=u, agent_id=a, session_id=s) for u in ("ann", "bob", "cy", None) for a in ("x", "y", None) for s in ("s1", "s2")]


@pytest.fixture(scope="module")
def scoped(engine: Engine) -> tuple[PgVectorKeys, int, np.ndarray, list[Scope], np.ndarray]:
    """A space of 1,200 slots over 24 scopes, a few of them superseded."""
    rng = np.random.default_rng(3)
    scopes = [SCOPES[i] for i in rng.integers(0, len(SCOPES), size=1200)]
    space, ids = new_space(engine, 16, scopes)
    keys = unit(rng, len(ids), 16)
    index = PgVectorKeys(engine, space, 16)
    index.add(ids, keys)
    with engine.begin() as c:
        c.execute(SlotRow.__table__.update().where(SlotRow.id.in_(ids[::50].tolist())).values(superseded_by=int(ids[-1])))
    return index, space, ids, scopes, keys


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.sampled_from(["ann", "bob", "cy", "nobody", None]), agent=st.sampled_from(["x", "y", None]),
       session=st.sampled_from(["s1", "s2", None]), k=st.integers(1, 60), exact_below=st.sampled_from([0, 2048]),
       current_only=st.booleans(), seed=st.integers(0, 2**31))
def test_search_never_crosses_scopes(scoped, user, agent, session, k, exact_below, current_only, seed) -> None:
    index, space, ids, scopes, keys = scoped
    want = Scope(user_id=user, agent_id=agent, session_id=session)
    where = scope_where(space, want)
    if current_only:
        where.append(SlotRow.superseded_by.is_(None))
    with index.engine.connect() as c:
        allowed = set(c.scalars(select(SlotRow.id).where(*where)).all())
    query = unit(np.random.default_rng(seed), 1, 16)
    scores, got = index.search(query, k, where=where, exact_below=exact_below)
    found = [int(i) for i in got[0] if i >= 0]
    assert set(found) <= allowed
    # Iterative scans keep going until k rows pass the filter: a small scope is not cut short.
    assert len(found) == min(k, len(allowed))
    if exact_below:  # a scope this small is scored exactly
        in_scope = np.array(sorted(allowed), dtype=np.int64)
        sims = keys[np.searchsorted(ids, in_scope)] @ query[0]
        np.testing.assert_allclose(scores[0, : len(found)], np.sort(sims)[::-1][: len(found)], atol=1e-5)


def test_subset_restricts_results(scoped) -> None:
    index, _, ids, _, keys = scoped
    subset = ids[100:130]
    _, got = index.search(keys[:5], 50, subset=subset)
    assert set(got[got >= 0].tolist()) <= set(subset.tolist())
    assert ((got >= 0).sum(axis=1) == 30).all()


def test_removed_keys_are_never_found(engine: Engine) -> None:
    rng = np.random.default_rng(4)
    space, ids = new_space(engine, 16, [Scope(user_id="u")] * 200)
    index = PgVectorKeys(engine, space, 16)
    keys = unit(rng, 200, 16)
    index.add(ids, keys)
    gone = ids[:50]
    assert index.remove(np.concatenate([gone, [10**12]])) == 50  # an absent id is ignored
    assert index.count() == 150
    _, got = index.search(keys[:50], 10)
    assert not set(got.ravel().tolist()) & set(gone.tolist())
    with engine.begin() as c:  # a deleted slot takes its key with it (foreign key)
        c.execute(SlotRow.__table__.delete().where(SlotRow.id == int(ids[60])))
    assert index.count() == 149


@pytest.mark.parametrize("n", [10, 600])  # executemany and binary COPY
def test_add_replaces_the_key_of_an_id(engine: Engine, n: int) -> None:
    rng = np.random.default_rng(5)
    space, ids = new_space(engine, 24, [Scope(user_id="u")] * n)
    index = PgVectorKeys(engine, space, 24, half=n > 100)
    first, second = unit(rng, n, 24), unit(rng, n, 24)
    index.add(ids, first)
    index.add(ids, second)
    assert index.count() == n
    scores, got = index.search(second[:5], 1)
    assert (got[:, 0] == ids[:5]).all()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=2e-3)  # halfvec rounds keys to float16


def test_bad_keys_are_refused_before_writing(engine: Engine) -> None:
    space, ids = new_space(engine, 8, [Scope()] * 2)
    index = PgVectorKeys(engine, space, 8)
    with pytest.raises(InvalidVectorError):
        index.add(ids, np.ones((2, 7), np.float32))
    with pytest.raises(InvalidVectorError):
        index.add(ids, np.full((2, 8), np.nan, np.float32))
    assert index.count() == 0


def test_missing_extension_is_a_typed_error_saying_how_to_install(engine: Engine) -> None:
    """A user who may not create the extension in a database without it gets the typed error."""
    role, name = f"mindstore_plain_{uuid.uuid4().hex[:8]}", f"mindstore_test_pgv_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
        c.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    plain = create_engine(make_url(PG_ADMIN_URL).set(database=name, username=role))
    try:
        with pytest.raises(PgVectorMissingError, match="CREATE EXTENSION vector") as info:
            PgVectorKeys(plain, 1, 8)
        assert isinstance(info.value, DatabaseError)
    finally:
        plain.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_missing_message_names_how_to_install() -> None:
    assert "apt install postgresql-<version>-pgvector" in missing_message("db", available=None)
    assert "ALTER EXTENSION vector UPDATE" in missing_message("db", available=None, installed="0.7.4")


def test_sqlite_store_is_refused(tmp_path) -> None:
    engine, _ = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with pytest.raises(DatabaseError, match="needs a PostgreSQL store"):
            PgVectorKeys(engine, 1, 8)
    finally:
        engine.dispose()
