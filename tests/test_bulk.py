"""The bulk write path allocates ids up front: they are never reused, and rows read back as written."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import FrozenInstanceError
from datetime import datetime, timezone

import numpy as np
import pytest

from mindstore import Config, DatabaseError, MindStore, NotFoundError
from mindstore._gc import PAUSE_FROM, gc_paused  # a private module, tested as a unit
from mindstore.db.models import SCHEMA_VERSION
from mindstore.index import KeyIndex, Prepared, normalize
from mindstore.slots import Scope, Slot, Usage, new_slots


def test_ids_of_deleted_slots_are_never_handed_out_again(db_url: str, tmp_path) -> None:
    keys = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    with MindStore(db_url, config=Config(index_dir=tmp_path / "i")) as s:
        s.create_space("v", dim=8, key_source="test")
        first = s.add_vectors(keys[:3], space="v", user_id="u", metadata=[{"n": 1}, None, {"tags": ["a"]}], labels=["x", None, "z"])
        assert s.get(first[2].id).metadata == {"tags": ["a"]}
        s.delete(first[-1].id)
        again = s.add_vectors(keys[3:], space="v", user_id="u")[0]
        assert again.id > first[-1].id
        got = s.get(first[0].id)
        assert (got.metadata, got.label, got.scope.user_id) == ({"n": 1}, "x", "u")
        assert s.get(first[1].id).metadata == {}
        assert got.created_at == first[0].created_at and got.created_at.tzinfo is not None
        assert [e.kind for e in s.history(first[0].id)] == ["add"]
        np.testing.assert_array_equal(s.keys([first[0].id, again.id]), keys[[0, 3]])


def test_a_big_batch_lands_whole_in_sql_and_in_an_ivf_index(db_url: str, tmp_path) -> None:
    # 6000 keys per call: the index's part (normalising, choosing IVF lists) runs in a thread
    # while the rows go to SQL; the IVF starts at 3000 keys, so the second call adds by list.
    keys = np.random.default_rng(1).normal(size=(12_000, 16)).astype(np.float32)
    meta = {"source": "import", "n": 1}
    config = Config(index_dir=tmp_path / "i", approximate_from=3000, train_in_background=False)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=16, key_source="test")
        slots = s.add_vectors(keys[:6000], space="v", user_id="u", metadata=meta)
        slots += s.add_vectors(keys[6000:], space="v", user_id="u", metadata=meta)
        index = s.key_index("v")
        assert index.approximate and len(index) == 12_000 == s.count(space="v")
        ids = [x.id for x in slots]
        np.testing.assert_array_equal(s.keys(ids[::997]), keys[::997])  # bytes round-trip exactly
        for i in range(0, 12_000, 1499):  # each key finds its own slot first
            assert s.search_vector(keys[i], k=1, space="v")[0].slot.id == ids[i]
        slots[0].metadata["source"] = "changed"  # each slot its own copy of the shared dict
        assert slots[1].metadata == meta and s.get(ids[0]).metadata == meta


def _lists(ix: KeyIndex) -> dict[int, int]:
    """id -> the IVF list that holds it."""
    import faiss

    inv = ix._index.invlists
    return {int(i): n for n in range(inv.nlist) for i in faiss.rev_swig_ptr(inv.get_ids(n), inv.list_size(n))}


def _nearest_lists(ix: KeyIndex, vectors: np.ndarray) -> list[int]:
    return ix._index.quantizer.search(normalize(vectors), 1)[1][:, 0].tolist()


def test_a_prepared_add_matches_a_plain_one_and_survives_a_retrain() -> None:
    data = np.random.default_rng(2).normal(size=(5000, 16)).astype(np.float32)
    plain, split = KeyIndex(16, device="cpu", approximate_from=2000), KeyIndex(16, device="cpu", approximate_from=2000)
    for ix in (plain, split):
        ix.add(np.arange(2000), data[:2000])  # now an IVF
    plain.add(np.arange(2000, 3000), data[2000:3000])
    split.add(np.arange(2000, 3000), prepared=split.prepare(data[2000:3000]))
    assert split.approximate and _lists(split) == _lists(plain)
    assert [_lists(split)[i] for i in range(2000, 3000)] == _nearest_lists(split, data[2000:3000])
    np.testing.assert_array_equal(plain.search(data[:100], 5)[1], split.search(data[:100], 5)[1])
    # prepared for lists that a retrain then replaced: assigned again, not put in a stale list
    stale = split.prepare(data[3000:])
    split.add(np.arange(3000, 4500), data[3000:4500])
    split._train_ivf()
    split.add(np.arange(4500, 5000), prepared=Prepared(stale.index, stale.unit[1500:], stale.lists[1500:]))
    assert [_lists(split)[i] for i in range(4500, 5000)] == _nearest_lists(split, data[4500:])


def test_a_new_sqlite_database_uses_16k_pages(sqlite_url: str, tmp_path) -> None:
    with MindStore(sqlite_url, config=Config(index_dir=tmp_path / "i")) as s:
        with s.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA page_size").scalar() == 16384
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_failed_bulk_insert_leaves_the_index_untouched(sqlite_url: str, tmp_path) -> None:
    # The batch's keys are being prepared in the worker thread when the SQL insert fails: nothing
    # reaches SQL or the index, and the next add goes through whole.
    keys = np.random.default_rng(3).normal(size=(9000, 16)).astype(np.float32)
    with MindStore(sqlite_url, config=Config(index_dir=tmp_path / "i", approximate_from=3000, train_in_background=False)) as s:
        s.create_space("v", dim=16, key_source="test")
        first = s.add_vectors(keys[:3000], space="v", user_id="u")
        with s.engine.begin() as c:
            c.exec_driver_sql("CREATE TRIGGER fail_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected'); END")
        with pytest.raises(DatabaseError, match="nothing was stored"):
            s.add_vectors(keys[3000:6000], space="v", user_id="u")
        index = s.key_index("v")
        assert s.count(space="v") == 3000 == len(index) and index.approximate
        with s.engine.begin() as c:
            c.exec_driver_sql("DROP TRIGGER fail_events")
        more = s.add_vectors(keys[6000:], space="v", user_id="u")
        assert s.count(space="v") == 6000 == len(index)
        assert set(index.ids().tolist()) == {x.id for x in first + more}
        assert s.search_vector(keys[7777], k=1, space="v")[0].slot.id == more[1777].id


def test_shared_values_with_quotes_and_placeholders_round_trip(db_url: str, tmp_path) -> None:
    # A batch's scope is written into the insert statement on SQLite: quotes, question marks,
    # percent signs and other scripts must come back exactly, and stay in their own scope.
    keys = np.random.default_rng(4).normal(size=(3, 8)).astype(np.float32)
    scope = {"user_id": "o'brien ? %s", "agent_id": "a''b;--", "session_id": "ü 東京 ?"}
    with MindStore(db_url, config=Config(index_dir=tmp_path / "i")) as s:
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(keys[:1], space="v", user_id="other")
        slots = s.add_vectors(keys, space="v", metadata={"q": "it's ?"}, **scope)
        got = s.get(slots[2].id)
        assert (got.scope.user_id, got.scope.agent_id, got.scope.session_id) == tuple(scope.values())
        assert got.metadata == {"q": "it's ?"} and got.usage.writes == 1 and got.usage.reads == 0
        hits = s.search_vector(keys[0], space="v", k=10, **scope)
        assert sorted(h.slot.id for h in hits) == sorted(x.id for x in slots)
        assert s.count(space="v", user_id="o'brien ? %s") == 3


def test_new_slots_equal_their_dataclass_and_own_their_metadata() -> None:
    now = datetime.now(timezone.utc)
    scope = Scope("u", "a", None)
    shared = {"source": "import"}
    made = new_slots([5, 6], "chat", scope, ["x", None], [shared, shared], [None, "L"], now)
    assert made == [
        Slot(id=5, space="chat", scope=scope, text="x", metadata={"source": "import"}, label=None, usage=Usage(0, 1, now), created_at=now, updated_at=now),
        Slot(id=6, space="chat", scope=scope, text=None, metadata={"source": "import"}, label="L", usage=Usage(0, 1, now), created_at=now, updated_at=now),
    ]
    made[0].metadata["x"] = 1
    assert made[1].metadata == shared == {"source": "import"}
    with pytest.raises(FrozenInstanceError):
        made[0].text = "y"  # type: ignore[misc]


def _event_rows(url: str) -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(text("SELECT slot_id, slot_last, kind FROM events ORDER BY id"))]
    engine.dispose()
    return rows


def test_a_bulk_add_is_one_range_event_and_every_slot_keeps_its_history(db_url: str, tmp_path) -> None:
    keys = np.random.default_rng(5).normal(size=(40, 8)).astype(np.float32)
    with MindStore(db_url, config=Config(index_dir=tmp_path / "a")) as a, MindStore(db_url, config=Config(index_dir=tmp_path / "b")) as b:
        a.create_space("v", dim=8, key_source="test")
        b.search_vector(keys[0], space="v", k=1)  # b's index is open (and empty) before the adds
        bulk = a.add_vectors(keys[:30], space="v", user_id="u", metadata={"source": "import"})
        ids = [x.id for x in bulk]
        # One event names the batch's 30 contiguous slots; texts or differing metadata log a row per slot.
        a.add_vectors(keys[30:33], space="v", user_id="u", texts=["x", None, "z"])
        a.add_vectors(keys[33:36], space="v", user_id="u", metadata=[{"n": 1}, {"n": 2}, {"n": 3}])
        a.add_vectors(keys[36:37], space="v", user_id="u")
        rows = _event_rows(db_url)
        assert rows[0] == (ids[0], ids[-1], "add")
        assert len(rows) == 1 + 3 + 3 + 1 and all(last is None for _, last, _ in rows[1:])
        # Each slot's history names the slot itself, and later changes follow the range event.
        a.update(ids[4], metadata={"source": "edited"})
        a.delete(ids[29])
        for i in (ids[0], ids[4], ids[17], ids[29]):
            events = a.history(i)
            assert events[0].slot_id == i and events[0].kind == "add" and events[0].new_metadata == {"source": "import"}
        assert [e.kind for e in a.history(ids[4])] == ["add", "update"]
        assert [e.kind for e in a.history(ids[17])] == ["add"]
        assert [e.kind for e in a.history(ids[29])] == ["add", "delete"]
        with pytest.raises(NotFoundError):
            a.history(ids[-1] + 1000)
        # Another process's catch-up expands the range: every slot of it is searchable there.
        for i in (0, 17, 28):
            assert b.search_vector(keys[i], space="v", k=1)[0].slot.id == ids[i]
        assert ids[29] not in {h.slot.id for h in b.search_vector(keys[29], space="v", k=40)}
        assert b.count(space="v") == 36
        # Export keeps the range; an import into another store gives every slot the same history.
        path = tmp_path / "m.jsonl"
        a.export(path)
        with MindStore(f"sqlite:///{tmp_path / 'other.db'}", config=Config(index_dir=tmp_path / "o")) as other:
            other.import_(path)
            assert _event_rows(f"sqlite:///{tmp_path / 'other.db'}") == _event_rows(db_url)
            for i in (ids[0], ids[4], ids[17], ids[29]):
                assert other.history(i) == [dataclasses.replace(e, id=e.id) for e in a.history(i)]
            assert other.search_vector(keys[17], space="v", k=1)[0].slot.id == ids[17]


def test_a_version_1_database_gains_the_range_column_on_open(db_url: str, tmp_path) -> None:
    from sqlalchemy import create_engine, inspect, text

    keys = np.random.default_rng(6).normal(size=(5, 8)).astype(np.float32)
    with MindStore(db_url, config=Config(index_dir=tmp_path / "i")) as s:
        s.create_space("v", dim=8, key_source="test")
        old = [x.id for x in s.add_vectors(keys[:1], space="v", user_id="u")]
    engine = create_engine(db_url)
    with engine.begin() as c:  # what mindstore made with schema version 1
        c.execute(text("DROP INDEX ix_events_range"))
        c.execute(text("ALTER TABLE events DROP COLUMN slot_last"))
        c.execute(text("UPDATE mindstore_meta SET value = '1' WHERE key = 'schema_version'"))
    with MindStore(db_url, config=Config(index_dir=tmp_path / "i")) as s:
        new = [x.id for x in s.add_vectors(keys[1:], space="v", user_id="u")]
        assert [e.kind for e in s.history(old[0])] == ["add"] and [e.kind for e in s.history(new[2])] == ["add"]
        assert s.search_vector(keys[3], space="v", k=1)[0].slot.id == new[2]
    with engine.connect() as c:
        assert c.execute(text("SELECT value FROM mindstore_meta WHERE key = 'schema_version'")).scalar() == str(SCHEMA_VERSION)
        assert [tuple(r) for r in c.execute(text("SELECT slot_id, slot_last FROM events ORDER BY id"))] == [(old[0], None), (new[0], new[-1])]
    assert "ix_events_range" in {ix["name"] for ix in inspect(engine).get_indexes("events")}
    engine.dispose()


def test_a_big_batch_runs_with_the_cycle_collector_paused_and_restores_it(sqlite_url: str, tmp_path, monkeypatch) -> None:
    # 1,000 keys or more are written with CPython's cyclic collector off (mindstore/_gc.py: full
    # collections over a large heap cost a 1e6 fill seconds); fewer leave it alone. After the
    # add, failed or not, the collector is as the application had it.
    import gc

    import mindstore.core.writes as writes_module

    during: list[bool] = []
    real = writes_module.insert_columns

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        during.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(writes_module, "insert_columns", spy)
    keys = np.random.default_rng(5).normal(size=(8000, 8)).astype(np.float32)
    assert gc.isenabled()
    with MindStore(sqlite_url, config=Config(index_dir=tmp_path / "i")) as s:
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(keys[:999], space="v", user_id="u")
        assert during == [True] and gc.isenabled()  # the slot rows (the batch's one event: insert_with_ids)
        s.add_vectors(keys[999:3000], space="v", user_id="u")
        assert during[1:] == [False] and gc.isenabled()
        gc.disable()
        try:
            s.add_vectors(keys[3000:5000], space="v", user_id="u")
            assert not gc.isenabled()  # the application's choice stands
        finally:
            gc.enable()
        with s.engine.begin() as c:
            c.exec_driver_sql("CREATE TRIGGER fail_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'injected'); END")
        with pytest.raises(DatabaseError, match="nothing was stored"):
            s.add_vectors(keys[5000:], space="v", user_id="u")
        assert gc.isenabled() and s.count(space="v") == 5000


@contextmanager
def _another_bulk_write() -> Iterator[Callable[[], None]]:
    """A thread inside ``gc_paused`` (another bulk write under way) until the function this
    yields, or the block's end, ends it."""
    import gc
    import threading

    entered, release = threading.Event(), threading.Event()

    def write() -> None:
        with gc_paused(PAUSE_FROM):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=write)
    t.start()

    def end() -> None:
        release.set()
        t.join(10)

    try:
        assert entered.wait(10) and not gc.isenabled()
        yield end
    finally:
        end()
        gc.enable()


def test_concurrent_pauses_restore_the_collector_only_when_the_last_ends() -> None:
    import gc

    assert gc.isenabled()
    with _another_bulk_write() as end:
        with gc_paused(PAUSE_FROM):
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other thread's write is still under way
        end()
        assert gc.isenabled()
        with gc_paused(PAUSE_FROM - 1):
            assert gc.isenabled()


def test_a_big_sqlite_add_leaves_its_checkpoint_to_a_thread_and_the_wal_stays_bounded(sqlite_url: str, tmp_path, monkeypatch) -> None:
    # A bulk add commits with its connection's automatic checkpoint off, and the store's
    # checkpoint thread copies the WAL into the database file while the add goes on; the next
    # user of the connection gets the automatic checkpoint back. With the thread slower than the
    # adds, each add waits for it and the WAL still restarts; every slot is there.
    import sqlite3
    import threading
    import time

    import mindstore.core.writes as writes_module
    from mindstore.core.wal import Checkpoints

    auto: list[int] = []
    threads: list[str] = []
    slow = threading.Event()
    real_insert, real_checkpoint = writes_module.insert_columns, Checkpoints.checkpoint

    def spy_insert(s, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        auto.append(s.connection().exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        return real_insert(s, *args, **kwargs)

    def spy_checkpoint(self) -> bool:  # noqa: ANN001
        threads.append(threading.current_thread().name)
        if slow.is_set():
            time.sleep(0.1)  # a slow disk: adds go on while it copies
        return real_checkpoint(self)

    monkeypatch.setattr(writes_module, "insert_columns", spy_insert)
    monkeypatch.setattr(Checkpoints, "checkpoint", spy_checkpoint)
    keys = np.random.default_rng(6).normal(size=(999 + 60 * 2000, 128)).astype(np.float32)
    path = tmp_path / "memory.db"
    wal = tmp_path / "memory.db-wal"
    with MindStore(sqlite_url, config=Config(index_dir=tmp_path / "i")) as s:
        s.create_space("v", dim=128, key_source="test")
        s.add_vectors(keys[:999], space="v", user_id="u")
        assert auto == [1000] and threads == []  # small: the usual checkpoint
        s.add_vectors(keys[999:2999], space="v", user_id="u")
        assert auto[1] == 0  # the first bulk add: nothing to wait for
        s._checkpoints.last.result()
        assert threads and all(t.startswith("mindstore-checkpoint") for t in threads)
        with s.engine.connect() as c:  # the pool's connection, given back: its setting restored
            assert c.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        slow.set()
        peak = 0
        for start in range(2999, len(keys), 2000):
            s.add_vectors(keys[start : start + 2000], space="v", user_id="u")
            peak = max(peak, wal.stat().st_size)
        assert auto[2:] == [0] * 59  # nothing else reads this file: every checkpoint copies all it finds
        # 59 adds of ~118 pages (16 KiB) each: a WAL that never restarted would grow to ~6,900
        # pages; this one restarts at every add, well inside SQLite's own 1,000-page limit.
        assert peak < 1000 * 16_408
        assert s.count(space="v") == len(keys)
    again = sqlite3.connect(path)
    assert again.execute("SELECT count(*), min(id), max(id) FROM slots").fetchone() == (len(keys), 1, len(keys))
    again.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_during_a_pause_gets_its_collector_back() -> None:
    import gc

    with _another_bulk_write():
        pid = os.fork()
        if pid == 0:  # the child: no writer thread will ever end its pause
            on = gc.isenabled()
            with gc_paused(PAUSE_FROM):
                off = not gc.isenabled()
            os._exit(0 if on and off and gc.isenabled() else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
