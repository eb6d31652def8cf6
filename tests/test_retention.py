"""Retention: capacities evict the least-used slots, never more than the excess, never in another
scope; TTL expires slots not accessed in time; every eviction is in history."""

from __future__ import annotations

import time

import pytest

from mindstore import Config, MindStore
from mindstore.errors import InvalidInputError, NotFoundError
from tests.conftest import random_keys, vector_store


def test_scope_capacity_evicts_least_used_only_in_that_scope(db_url: str, tmp_path) -> None:
    with vector_store(db_url, tmp_path, capacity_per_scope=5) as s:
        other = [x.id for x in s.add_vectors(random_keys(5, 1), space="v", user_id="bob")]
        first = [x.id for x in s.add_vectors(random_keys(5, 2), space="v", user_id="alice")]
        # reading a slot makes it recently used: it survives, the least used goes first
        kept = s.search_vector(random_keys(5, 2)[0], space="v", user_id="alice", k=1)[0].slot.id
        assert kept == first[0]
        new = [x.id for x in s.add_vectors(random_keys(2, 3), space="v", user_id="alice")]
        alice = sorted(h.slot.id for h in s.search_vector(random_keys(1, 9)[0], space="v", user_id="alice", k=100))
        assert len(alice) == 5  # exactly the capacity: 2 evicted, not more
        assert set(new) <= set(alice) and kept in alice
        assert sorted(set(first) - set(alice)) == first[1:3]  # oldest unread ones, in id order
        bob = sorted(h.slot.id for h in s.search_vector(random_keys(1, 9)[0], space="v", user_id="bob", k=100))
        assert bob == other  # another scope is never touched
        gone = first[1]
        with pytest.raises(NotFoundError):
            s.get(gone)
        assert [e.kind for e in s.history(gone)] == ["add", "evict"]


def test_space_capacity_never_exceeded_nor_undershot(db_url: str, tmp_path) -> None:
    with vector_store(db_url, tmp_path, capacity=20) as s:
        for i in range(7):
            s.add_vectors(random_keys(6, i), space="v", user_id=f"u{i % 3}")
            assert s.count(space="v") == min(20, 6 * (i + 1))
        assert len(s.key_index("v")) == 20


def test_ttl_expires_unused_slots_and_search_never_returns_them(db_url: str, tmp_path) -> None:
    with vector_store(db_url, tmp_path, ttl=0.5) as s:
        old = s.add_vectors(random_keys(3), space="v", user_id="u")
        time.sleep(0.8)
        assert s.search_vector(random_keys(3)[0], space="v", user_id="u", k=5) == []
        fresh = s.add_vectors(random_keys(1, 5), space="v", user_id="u")[0]
        assert [h.slot.id for h in s.search_vector(random_keys(1, 5)[0], space="v", user_id="u", k=5)] == [fresh.id]
        assert all(s.history(x.id)[-1].kind == "evict" for x in old)


def test_eviction_in_one_process_is_seen_by_another(sqlite_url: str, tmp_path) -> None:
    with vector_store(sqlite_url, tmp_path) as reader, MindStore(sqlite_url, config=Config(index_dir=tmp_path / "w", capacity_per_scope=2)) as writer:
        writer.add_vectors(random_keys(4), space="v", user_id="u")
        hits = reader.search_vector(random_keys(1, 7)[0], space="v", user_id="u", k=10)
        assert len(hits) == 2


@pytest.mark.parametrize("bad", [{"capacity": 0}, {"capacity_per_scope": -3}, {"capacity": 2.5}, {"ttl": 0}, {"ttl": float("nan")}, {"capacity": True}])
def test_bad_retention_settings_are_refused(bad: dict) -> None:
    with pytest.raises(InvalidInputError):
        Config(**bad)


EVICTING_WRITER = """
import sys
import numpy as np
from mindstore import Config, MindStore
url, index_dir, seed = sys.argv[1:4]
rng = np.random.default_rng(int(seed))
with MindStore(url, config=Config(index_dir=index_dir, capacity_per_scope=10)) as s:
    for _ in range(30):
        s.add_vectors(rng.normal(size=(1, 8)).astype(np.float32), space="v", user_id="shared")
"""


@pytest.mark.slow
def test_two_processes_evicting_one_scope_keep_exactly_its_capacity(db_url: str, tmp_path) -> None:
    import subprocess
    import sys

    from sqlalchemy import create_engine, func, select

    from mindstore.db import EventRow

    with vector_store(db_url, tmp_path) as s:
        s.add_vectors(random_keys(3), space="v", user_id="other")
    script = tmp_path / "w.py"
    script.write_text(EVICTING_WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), db_url, str(tmp_path / f"i{k}"), str(k)], stderr=subprocess.PIPE, text=True) for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with vector_store(db_url, tmp_path) as s:
        assert s.count(space="v", user_id="shared") == 10  # never fewer: no process evicted beyond the excess
        assert s.count(space="v", user_id="other") == 3
    engine = create_engine(db_url)
    with engine.connect() as c:
        assert c.scalar(select(func.count()).select_from(EventRow).where(EventRow.kind == "evict")) == 50
    engine.dispose()


def test_least_used_lists_slots_in_the_order_eviction_removes_them(db_url: str, tmp_path) -> None:
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import create_engine, update

    from mindstore.db import SlotRow

    with vector_store(db_url, tmp_path) as s:
        ids = [x.id for x in s.add_vectors(random_keys(8, 1), space="v", user_id="u")]
    # two access times, and within each, uses that disagree with id order: only the full order
    # (last access, then reads + writes, then id) ranks them the same way in both places
    then = datetime(2020, 1, 1, tzinfo=timezone.utc)
    usage = {ids[0]: (1, 3), ids[1]: (1, 0), ids[2]: (0, 2), ids[3]: (0, 0), ids[4]: (0, 5), ids[5]: (0, 1), ids[6]: (1, 1), ids[7]: (0, 0)}
    engine = create_engine(db_url)
    with engine.begin() as c:
        for i, (later, reads) in usage.items():
            c.execute(update(SlotRow).where(SlotRow.id == i).values(reads=reads, last_access=then + timedelta(days=later)))
    engine.dispose()
    with vector_store(db_url, tmp_path, capacity=8) as s:
        order = s.least_used(8, space="v")
        assert order == [ids[3], ids[7], ids[5], ids[2], ids[4], ids[1], ids[6], ids[0]]
        evicted = []
        for n in range(8):  # each new slot is the most recent: eviction removes one old slot per add
            before = {x.id for x in s.list(space="v").slots}
            s.add_vectors(random_keys(1, 10 + n), space="v", user_id="u")
            evicted += sorted(before - {x.id for x in s.list(space="v").slots})
        assert evicted == order
