"""Durability: SIGKILL mid-stream loses no acknowledged add; damaged or stale indexes are repaired."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mindstore import Config, MindStore

from conftest import kill_after_acks

WRITER = textwrap.dedent(
    """
    import sys
    from mindstore import Config, MindStore
    url, index_dir = sys.argv[1], sys.argv[2]
    with MindStore(url, config=Config(index_dir=index_dir)) as store:
        i = 0
        while True:
            slot = store.add(f"fact number {i} about topic {i % 7}", user_id=f"u{i % 3}", dedup=False)
            print(slot.id, flush=True)  # acknowledged: add() has returned
            i += 1
    """
)


def test_sigkill_mid_stream_loses_no_acknowledged_add(db_url: str, tmp_path: Path) -> None:
    config = Config(index_dir=tmp_path / "index", save_index_every=7)  # saves mid-stream too
    with MindStore(db_url, config=config) as s:  # create the space so the writer starts quickly
        s.add("seed memory", user_id="seed")
    acked = kill_after_acks(WRITER, tmp_path, [db_url, str(config.index_dir)], 40)
    with MindStore(db_url, config=config) as s:
        for i, slot_id in enumerate(acked):
            slot = s.get(slot_id)
            assert slot.text == f"fact number {i} about topic {i % 7}"
        # the index was repaired: every acknowledged slot is searchable
        assert len(s.key_index("chat")) == s.count()
        found = {h.slot.id for h in s.search("fact number 12 about topic 5", user_id="u0", k=50)}
        assert {a for j, a in enumerate(acked) if j % 3 == 0} <= found


BULK_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mindstore import Config, MindStore
    url, index_dir = sys.argv[1], sys.argv[2]
    with MindStore(url, config=Config(index_dir=index_dir)) as store:
        b = 0
        while True:
            keys = np.random.default_rng(b).normal(size=(2000, 32)).astype(np.float32)
            slots = store.add_vectors(keys, space="v", user_id=f"u{b % 3}")
            print("\\n".join(str(s.id) for s in slots), flush=True)  # acknowledged: the add has returned
            b += 1
    """
)


def test_sigkill_amid_bulk_adds_loses_no_acknowledged_slot(db_url: str, tmp_path: Path) -> None:
    # Bulk adds of 2,000 keys run with the garbage collector paused and, on SQLite, leave their WAL
    # checkpoint to a thread: killed during the next add (or a checkpoint), every slot of an add
    # that returned is in SQL with its key, and the reopened index holds exactly what SQL holds.
    config = Config(index_dir=tmp_path / "index")
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=32, key_source="test")
    acked = kill_after_acks(BULK_WRITER, tmp_path, [db_url, str(config.index_dir)], 6 * 2000)
    with MindStore(db_url, config=config) as s:
        for b in range(6):
            ids = acked[b * 2000 : (b + 1) * 2000]
            np.testing.assert_array_equal(s.keys(ids), np.random.default_rng(b).normal(size=(2000, 32)).astype(np.float32))
        assert s.count(space="v") >= len(acked)  # and any part of the add the kill cut short is whole or absent
        assert s.count(space="v") % 2000 == 0
        assert len(s.key_index("v")) == s.count(space="v")


def _index_file(config: Config) -> Path:
    return Path(config.index_dir) / "chat.faiss"


@pytest.mark.faiss_only
def test_damaged_index_file_is_rebuilt_from_sql(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config) as s:
        ids = [x.id for x in s.add_many(["red apples", "green pears", "yellow bananas"], user_id="u")]
    path = _index_file(config)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with MindStore(db_url, config=config) as s:
        assert s.index_info("chat").repaired == "rebuilt: damaged file"
        assert s.search("pears", user_id="u", k=1)[0].slot.id == ids[1]
    path.write_bytes(b"garbage")
    with MindStore(db_url, config=config) as s:
        assert s.search("bananas", user_id="u", k=1)[0].slot.id == ids[2]


@pytest.mark.faiss_only
def test_stale_index_catches_up_from_the_change_log(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config) as s:
        old = s.add_many(["red apples", "green pears"], user_id="u")
    path = _index_file(config)
    stale = path.read_bytes(), Path(str(path) + ".json").read_bytes()
    with MindStore(db_url, config=config) as s:
        new = s.add("purple plums", user_id="u")
        s.delete(old[0].id)
        s.update(old[1].id, text="green grapes")
    path.write_bytes(stale[0])
    Path(str(path) + ".json").write_bytes(stale[1])
    with MindStore(db_url, config=config) as s:
        assert s.index_info("chat").repaired == "caught up from change log"
        assert [h.slot.id for h in s.search("plums", user_id="u", k=5)][0] == new.id
        assert old[0].id not in {h.slot.id for h in s.search("apples", user_id="u", k=5)}
        assert s.search("grapes", user_id="u", k=1)[0].slot.id == old[1].id


@pytest.mark.faiss_only
def test_missing_index_file_is_rebuilt(db_url: str, config: Config) -> None:
    with MindStore(db_url, config=config) as s:
        a = s.add("the spare key is under the mat", user_id="u")
    _index_file(config).unlink()
    with MindStore(db_url, config=config) as s:
        assert s.search("where is the key", user_id="u", k=1)[0].slot.id == a.id


def test_index_from_another_database_is_not_trusted(tmp_path: Path) -> None:
    shared = Config(index_dir=tmp_path / "index")
    with MindStore(f"sqlite:///{tmp_path / 'a.db'}", config=shared) as s:
        s.add_many([f"memory {i} in store a" for i in range(5)], user_id="u", dedup=False)
    with MindStore(f"sqlite:///{tmp_path / 'b.db'}", config=shared) as s:
        b = s.add("the only memory in store b", user_id="u")
        assert s.index_info("chat").repaired.startswith("rebuilt")
        assert [h.slot.id for h in s.search("memory", user_id="u", k=5)] == [b.id]


def test_second_process_write_is_visible_to_the_first(db_url: str, tmp_path: Path) -> None:
    a = MindStore(db_url, config=Config(index_dir=tmp_path / "a"))
    b = MindStore(db_url, config=Config(index_dir=tmp_path / "b"))
    try:
        slot = b.add("written by the other process", user_id="u")
        assert a.search("the other process", user_id="u", k=1)[0].slot.id == slot.id
        b.delete(slot.id)
        assert a.search("the other process", user_id="u", k=1) == []
    finally:
        a.close()
        b.close()


def test_vector_space_survives_reopen(db_url: str, config: Config) -> None:
    rng = np.random.default_rng(3)
    keys = rng.normal(size=(50, 12)).astype(np.float32)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=12, key_source="test")
        ids = [x.id for x in s.add_vectors(keys, space="v", labels=[str(i) for i in range(50)])]
    with MindStore(db_url, config=config) as s:
        assert s.search_vector(keys[17], space="v", k=1)[0].slot.id == ids[17]
        assert len(s.key_index("v")) == 50


def test_a_write_only_session_saves_an_index_that_opens_without_replay(db_url: str, config: Config) -> None:
    # The index's seq used to advance only when a search caught up: a store that only wrote (a
    # bulk import) saved seq 0, and the next open re-read every slot it had written.
    keys = np.random.default_rng(4).normal(size=(30, 8)).astype(np.float32)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(keys[:20], space="v", user_id="u")
        s.delete(s.add_vectors(keys[20:], space="v", user_id="u")[0].id)
    saved = json.loads((Path(config.index_dir) / "v.faiss.json").read_text())
    with MindStore(db_url, config=config) as s:
        info = s.index_info("v")
        assert info.repaired is None and info.keys == 29
        assert saved["seq"] == info.seq == s.key_index("v").seq == last_seq_of(s, "v") > 0


def test_catch_up_reads_no_change_log_when_every_change_is_its_own(db_url: str, config: Config) -> None:
    from sqlalchemy import event

    keys = np.random.default_rng(5).normal(size=(40, 8)).astype(np.float32)
    with MindStore(db_url, config=config) as a, MindStore(db_url, config=Config()) as b:
        a.create_space("v", dim=8, key_source="test")
        sp = a._spaces.index("v")
        statements: list[str] = []
        event.listen(a.engine, "before_cursor_execute", lambda c, cur, sql, *rest: statements.append(sql))
        a.add_vectors(keys[:10], space="v", user_id="u")
        a.delete(a.add_vectors(keys[10:12], space="v", user_id="u")[0].id)
        statements.clear()
        assert sp.catch_up() == 0
        assert sp.index.seq == last_seq_of(a, "v") and not sp.local_events
        assert not [q for q in statements if "FROM events" in q and "max(" not in q]  # only the newest number was read
        # Another store's write between two of this one's: the log is read and that write applied.
        a.add_vectors(keys[12:20], space="v", user_id="u")
        theirs = b.add_vectors(keys[20:21], space="v", user_id="u")[0].id
        a.add_vectors(keys[21:30], space="v", user_id="u")
        statements.clear()
        assert sp.catch_up() == 1
        assert any("FROM events" in q and "max(" not in q for q in statements)
        assert a.search_vector(keys[20], space="v", k=1)[0].slot.id == theirs
        assert len(sp.index) == a.count(space="v") == 29


def last_seq_of(store: MindStore, space: str) -> int:
    from sqlalchemy import select

    from mindstore.db import SpaceRow, last_seq

    with store.engine.connect() as c:
        return last_seq(c, c.scalar(select(SpaceRow.id).where(SpaceRow.name == space)))


def test_close_waits_for_a_save_running_in_the_background(db_url: str, tmp_path: Path, monkeypatch) -> None:
    import mindstore.index.files as mod

    write = mod.write_index
    monkeypatch.setattr(mod, "write_index", lambda *a: (time.sleep(0.5), write(*a)))
    config = Config(index_dir=tmp_path / "index", save_index_every=20)
    keys = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(keys, space="v", user_id="u")  # the 20th change: a save starts in a thread
        index = s.key_index("v")
        assert index.saving
    assert not index.saving  # close waited for the write
    assert json.loads((Path(config.index_dir) / "v.faiss.json").read_text())["count"] == 20
    with MindStore(db_url, config=config) as s:
        info = s.index_info("v")  # the file is whole: loaded, not rebuilt
        assert not (info.repaired or "").startswith("rebuilt") and info.keys == 20


def test_no_second_save_starts_while_one_is_writing(db_url: str, tmp_path: Path, monkeypatch) -> None:
    import mindstore.index.files as mod

    gate, write = threading.Event(), mod.write_index
    monkeypatch.setattr(mod, "write_index", lambda *a: (gate.wait(10), write(*a)))
    config = Config(index_dir=tmp_path / "index", save_index_every=10)
    keys = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=8, key_source="test")
        index = s.key_index("v")
        s.add_vectors(keys[:10], space="v", user_id="u")
        assert index.saving and not index.dirty  # a copy taken, its write held at the gate
        s.add_vectors(keys[10:30], space="v", user_id="u")  # past the threshold again, but the first still writes
        assert index.saving and index.dirty  # no second copy was taken: the 20 changes wait
        gate.set()
        index.join_save()
        s.add_vectors(keys[30:], space="v", user_id="u")  # now the next save starts
        assert not index.dirty
    assert json.loads((Path(config.index_dir) / "v.faiss.json").read_text())["count"] == 40


def test_a_write_between_catch_up_and_count_on_open_is_no_reason_to_rebuild(db_url: str, tmp_path: Path, monkeypatch) -> None:
    import mindstore.spaces as spaces

    config = Config(index_dir=tmp_path / "index")
    keys = np.random.default_rng(5).normal(size=(12, 8)).astype(np.float32)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=8, key_source="test")
        s.add_vectors(keys[:10], space="v", user_id="u")
    other = MindStore(db_url, config=Config(index_dir=tmp_path / "other"))
    other.key_index("v")  # opened before the patch below
    count, writes = spaces.slot_count, iter([keys[10:11], keys[11:12]])

    def count_after_another_write(session, space_id):  # noqa: ANN001, ANN202
        key = next(writes, None)
        if key is not None:  # another process commits between this one's catch-up and its count
            other.add_vectors(key, space="v", user_id="u")
        return count(session, space_id)

    monkeypatch.setattr(spaces, "slot_count", count_after_another_write)
    try:
        with MindStore(db_url, config=config) as s:
            info = s.index_info("v")
            assert info.repaired is None and info.keys == 12  # caught up twice, counted a third time
    finally:
        other.close()
    monkeypatch.setattr(spaces, "slot_count", lambda session, space_id: count(session, space_id) + 1)
    with MindStore(db_url, config=config) as s:  # a count that differs with nothing moving: rebuilt
        assert s.index_info("v").repaired == "rebuilt: count differs"
