"""Usage statistics: searches count their hits as reads, written to SQL in batches (one write per
``usage_flush_s``, before any other call of the store, and on close), never lost by the store that
counted them and never the cause of an expiry."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from mindstore import Config
from mindstore.errors import InvalidInputError
from tests.conftest import random_keys, vector_store


def _sql_usage(url: str, slot_id: int) -> tuple[int, object]:
    """What another process sees: the row as SQL holds it."""
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return tuple(c.execute(text("SELECT reads, last_access FROM slots WHERE id = :i"), {"i": slot_id}).one())
    finally:
        engine.dispose()


def test_reads_are_written_in_batches_and_before_any_other_call(db_url: str, tmp_path) -> None:
    keys = random_keys(3)
    with vector_store(db_url, tmp_path, usage_flush_s=3600) as s:
        slot = s.add_vectors(keys, space="v", user_id="u")[0]
        for expected in (1, 2, 3):
            hit = s.search_vector(keys[0], space="v", user_id="u", k=1)[0]
            assert hit.slot.id == slot.id
            assert hit.slot.usage.reads == expected  # a hit shows its reads, written or not
        assert _sql_usage(db_url, slot.id)[0] == 0  # within the interval: no write per search
        got = s.get(slot.id)  # any other call writes the counted reads first
        assert got.usage.reads == 3 and got.usage.last_access >= slot.usage.last_access
        assert _sql_usage(db_url, slot.id)[0] == 3
        s.search_vector(keys[0], space="v", user_id="u", k=1)
        assert s.least_used(3, space="v")[-1] == slot.id  # the LRU order sees the newest read
    assert _sql_usage(db_url, slot.id)[0] == 4  # close writes what is left


def test_a_search_that_does_not_count_reads_leaves_usage_as_it_was(sqlite_url: str, tmp_path) -> None:
    """A person looking (the TUI) passes count_reads=False: the hits show their usage, reads
    counted but not yet written included, and nothing changes what eviction sees."""
    keys = random_keys(3)
    with vector_store(sqlite_url, tmp_path, usage_flush_s=3600) as s:
        slot = s.add_vectors(keys, space="v", user_id="u")[0]
        s.search_vector(keys[0], space="v", user_id="u", k=1)  # the application reads it once
        hit = s.search_vector(keys[0], space="v", user_id="u", k=1, count_reads=False)[0]
        assert hit.slot.id == slot.id and hit.slot.usage.reads == 1
        assert [h.slot.usage.reads for h in s.search_vectors(keys, space="v", k=3, count_reads=False)[0]] == [1, 0, 0]
        assert s.get(slot.id).usage.reads == 1
        with pytest.raises(InvalidInputError, match="count_reads"):
            s.search("anything", count_reads="no")


def test_zero_interval_writes_every_search(sqlite_url: str, tmp_path) -> None:
    keys = random_keys(2)
    with vector_store(sqlite_url, tmp_path, usage_flush_s=0) as s:
        slot = s.add_vectors(keys, space="v")[0]
        s.search_vector(keys[0], space="v", k=1)
        assert _sql_usage(sqlite_url, slot.id)[0] == 1
        s.search_vector(keys[0], space="v", k=1)
        assert _sql_usage(sqlite_url, slot.id)[0] == 2


def test_a_search_leaves_the_write_of_reads_to_the_usage_thread(db_url: str, tmp_path, monkeypatch) -> None:
    keys = random_keys(3)
    with vector_store(db_url, tmp_path, usage_flush_s=0.05) as s:
        slot = s.add_vectors(keys, space="v", user_id="u")[0]
        writers: list[str] = []
        write = s._reads.write
        monkeypatch.setattr(s._reads, "write", lambda pending: (writers.append(threading.current_thread().name), write(pending))[1])
        s.search_vector(keys[0], space="v", user_id="u", k=1)
        time.sleep(0.1)
        s.search_vector(keys[0], space="v", user_id="u", k=1)  # past the interval: hands the write over
        assert writers and all(name.startswith("mindstore-usage") for name in writers)
        assert s.get(slot.id).usage.reads == 2  # any other call waits for the write under way
        assert _sql_usage(db_url, slot.id)[0] == 2
        s.search_vector(keys[0], space="v", user_id="u", k=1)
    assert _sql_usage(db_url, slot.id)[0] == 3  # close writes what is left


def test_an_unwritten_read_keeps_a_slot_from_expiring(db_url: str, tmp_path) -> None:
    keys = random_keys(2)
    with vector_store(db_url, tmp_path, ttl=4.0, usage_flush_s=3600) as s:
        read, unread = s.add_vectors(keys, space="v", user_id="u")
        time.sleep(2.4)
        assert [h.slot.id for h in s.search_vector(keys[0], space="v", user_id="u", k=1)] == [read.id]
        time.sleep(2.4)  # 4.8 s since the add, 2.4 s since the read: only the unread slot expired
        hits = s.search_vector(keys[0], space="v", user_id="u", k=2)
        assert [h.slot.id for h in hits] == [read.id]
        assert s.history(unread.id)[-1].kind == "evict"


def test_a_failed_write_keeps_the_counts_for_the_next(sqlite_url: str, tmp_path, monkeypatch) -> None:
    keys = random_keys(2)
    with vector_store(sqlite_url, tmp_path, usage_flush_s=3600) as s:
        slot = s.add_vectors(keys, space="v")[0]
        s.search_vector(keys[0], space="v", k=1)
        real_begin = s.engine.begin

        def busy():  # noqa: ANN202 - what a database locked past its busy timeout raises
            raise OperationalError("UPDATE slots", {}, Exception("database is locked"))

        monkeypatch.setattr(s.engine, "begin", busy)
        s._reads.flush()  # usage is advisory: the failure is swallowed, the counts kept
        s.search_vector(keys[0], space="v", k=1)
        monkeypatch.setattr(s.engine, "begin", real_begin)
        assert s.get(slot.id).usage.reads == 2
        assert _sql_usage(sqlite_url, slot.id)[0] == 2


@pytest.mark.parametrize("bad", [-1, "1", True, float("nan")])
def test_bad_flush_interval_is_refused(bad) -> None:  # noqa: ANN001
    with pytest.raises(InvalidInputError, match="usage_flush_s"):
        Config(usage_flush_s=bad)
