"""The store on its two key indexes: FAISS (a copy per process) and pgvector (in PostgreSQL).

The behaviour both must share runs on both through conftest's ``db_url`` (its ``pgvector``
backend); these are the pgvector store's own promises: no per-process copy, writes visible to
every process at once, the key table as the space's record, moving keys both ways.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from mindstore import Config, MindStore
from mindstore.cli import app
from mindstore.errors import InvalidInputError

pytestmark = pytest.mark.postgres

TEXTS = {"alice": ["Alice is allergic to peanuts", "Alice plays the cello on Sundays"],
         "bob": ["Bob is allergic to cats", "Bob keeps bees in his garden"]}


def fill(store: MindStore) -> None:
    for user, texts in TEXTS.items():
        store.add_many(texts, user_id=user)


def key_tables(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as c:
        names = c.scalars(text("SELECT tablename FROM pg_tables WHERE tablename LIKE 'mindstore_keys_%' ORDER BY 1")).all()
    engine.dispose()
    return list(names)


def test_pgvector_store_keeps_no_copy_and_every_process_sees_a_write_at_once(pg_url: str, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    config = Config(key_index="pgvector", index_dir=index_dir)
    with MindStore(pg_url, config=config) as a, MindStore(pg_url, config=config) as b:
        fill(a)
        assert [h.slot.text for h in b.search("which allergy does bob have", user_id="bob", k=1, mode="dense")] == ["Bob is allergic to cats"]
        # Another process, its own interpreter: writes, and this one finds it with its next search.
        code = ("from mindstore import MindStore, Config; import sys\n"
                f"s = MindStore(sys.argv[1], config=Config(key_index='pgvector', index_dir={str(index_dir)!r}))\n"
                "print(s.add('Carol grows tomatoes', user_id='carol').id); s.close()")
        out = subprocess.run([sys.executable, "-c", code, pg_url], capture_output=True, text=True, check=True)
        carol = int(out.stdout.split()[-1])
        assert [h.slot.id for h in a.search("tomatoes", user_id="carol", k=1, mode="dense")] == [carol]
        assert a.index_info().kind == "hnsw (pgvector)" and a.index_info().keys == 5
        a.delete(carol)
        assert b.search("tomatoes", user_id="carol", k=1, mode="dense") == []
    assert not index_dir.exists() or not list(index_dir.glob("*.faiss"))  # nobody saved a FAISS copy


def test_a_space_with_a_key_table_is_searched_there_by_every_store(pg_url: str, config: Config) -> None:
    with MindStore(pg_url, config=Config(key_index="pgvector", index_dir=config.index_dir)) as s:
        fill(s)
    assert len(key_tables(pg_url)) == 1
    with MindStore(pg_url, config=config) as s:  # the fixture's config says faiss: the table wins
        assert s.index_info().kind == "hnsw (pgvector)"
        s.add("Bob moved to Lisbon", user_id="bob")
        assert s.search("where does bob live", user_id="bob", k=1, mode="dense")[0].slot.text == "Bob moved to Lisbon"


def test_keys_move_to_pgvector_and_back_with_the_same_answers(pg_url: str, config: Config) -> None:
    queries = ["which allergy", "music on Sundays", "insects in the garden"]
    with MindStore(pg_url, config=config) as s:
        fill(s)
        assert s.index_info().kind == "flat"

        def answers() -> list[list[int]]:
            return [[h.slot.id for h in s.search(q, user_id=u, k=2, mode="dense")] for q in queries for u in TEXTS]

        before = answers()
        assert s.move_keys("pgvector") == 4
        assert s.index_info().kind == "hnsw (pgvector)" and answers() == before
        assert s.move_keys("faiss") == 4
        assert s.index_info().kind == "flat" and answers() == before and key_tables(pg_url) == []


def test_reindex_cli_moves_keys_and_says_so(pg_url: str, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    with MindStore(pg_url, config=config) as s:
        fill(s)
    runner = CliRunner()
    result = runner.invoke(app, ["reindex", "--db", pg_url, "--key-index", "pgvector"])
    assert result.exit_code == 0, result.output
    assert "4 keys now in the pgvector key index" in result.output
    stats = runner.invoke(app, ["stats", "--db", pg_url, "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output)["spaces"][0]["index"]["kind"] == "hnsw (pgvector)"


def test_pgvector_on_sqlite_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with pytest.raises(InvalidInputError, match="needs a PostgreSQL store"):
        MindStore(f"sqlite:///{path}", config=Config(key_index="pgvector"))
    assert not path.exists()
    with MindStore(f"sqlite:///{path}") as s:
        s.add("a memory")
        with pytest.raises(InvalidInputError, match="needs a PostgreSQL store"):
            s.move_keys("pgvector")
        assert s.index_info().kind == "flat" and s.count() == 1


def test_stats_says_when_the_key_table_and_the_slots_disagree_and_reindex_mends_it(pg_url: str, config: Config) -> None:
    with MindStore(pg_url, config=Config(key_index="pgvector", index_dir=config.index_dir)) as s:
        fill(s)
        assert s.index_info().repaired is None
        table = key_tables(pg_url)[0]
        with s.engine.begin() as c:  # what a process still on a FAISS copy leaves: a slot without its key
            c.execute(text(f"DELETE FROM {table} WHERE slot_id = (SELECT min(slot_id) FROM {table})"))
        info = s.index_info()
        assert info.keys == 3 and "mindstore reindex --key-index pgvector" in info.repaired
        assert s.move_keys("pgvector") == 4
        assert s.index_info().keys == 4 and s.index_info().repaired is None


def test_stats_advises_shared_buffers_when_the_hnsw_graph_outgrows_them(pg_url: str, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import mindstore.spaces_pg as spaces_pg

    with MindStore(pg_url, config=Config(key_index="pgvector", index_dir=config.index_dir)) as s:
        fill(s)
        assert s.index_info().advice is None  # a few keys: the graph fits in any shared_buffers
        # The server's own figures, read as if its shared_buffers held one byte.
        real = spaces_pg.buffers_advice
        monkeypatch.setattr(spaces_pg, "buffers_advice", lambda graph, buffers: real(graph, 1))
        assert "set shared_buffers to 128MB or more" in s.index_info().advice
    out = CliRunner().invoke(app, ["stats", "--db", pg_url], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "shared_buffers" in out.output, out.output


def test_buffers_advice_asks_for_the_graph_and_a_quarter_rounded_up() -> None:
    from mindstore.spaces_pg import buffers_advice

    assert buffers_advice(None, 2**27) is None and buffers_advice(2**27, 2**27) is None
    assert "set shared_buffers to 4GB or more" in buffers_advice(1953 * 2**20, 128 * 2**20)
    assert "set shared_buffers to 512MB or more" in buffers_advice(300 * 2**20, 128 * 2**20)


def test_reset_drops_every_key_table_and_the_store_starts_afresh(pg_url: str, config: Config) -> None:
    pg = Config(key_index="pgvector", index_dir=config.index_dir)
    with MindStore(pg_url, config=pg) as s:
        fill(s)
    with MindStore(pg_url, config=pg) as s:  # a fresh process: the table was never loaded here
        s.reset()
        assert key_tables(pg_url) == [] and s.count() == 0
        s.add("Dana sails on weekends", user_id="dana")
        assert [h.slot.text for h in s.search("sailing", user_id="dana", k=1, mode="dense")] == ["Dana sails on weekends"]
        assert len(key_tables(pg_url)) == 1


def test_a_process_still_on_its_faiss_copy_writes_its_keys_where_another_moved_them(pg_url: str, config: Config) -> None:
    with MindStore(pg_url, config=config) as a, MindStore(pg_url, config=config) as b:
        fill(a)
        assert a.index_info().kind == "flat"  # a holds its FAISS copy from here on
        assert b.move_keys("pgvector") == 4
        lisbon = a.add("Bob moved to Lisbon", user_id="bob")
        cats = a.search("which allergy does bob have", user_id="bob", k=1, mode="dense")[0].slot
        a.update(cats.id, text="Bob is allergic to horses")
        assert a.index_info().kind == "flat"  # a still searches its own copy, which has both writes
        assert [h.slot.id for h in a.search("where does bob live", user_id="bob", k=1, mode="dense")] == [lisbon.id]
        assert [h.slot.id for h in b.search("where does bob live", user_id="bob", k=1, mode="dense")] == [lisbon.id]
        assert [h.slot.id for h in b.search("horse allergy", user_id="bob", k=1, mode="dense")] == [cats.id]
        info = b.index_info()
        assert info.kind == "hnsw (pgvector)" and info.keys == 5 and info.repaired is None


def test_auto_moves_a_grown_text_space_when_opened_and_leaves_a_large_one_to_reindex(
        pg_url: str, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import mindstore.core.registry as registry

    monkeypatch.setattr(registry, "PGVECTOR_FROM", 4)
    monkeypatch.setattr(registry, "AUTO_MOVE_MAX", 5)
    auto = Config(key_index="auto", index_dir=config.index_dir)
    with MindStore(pg_url, config=auto) as s:
        s.add("Dave rides a red bicycle to work", user_id="dave")
        assert s.index_info().kind == "flat" and s.index_info().advice is None  # 1 slot: FAISS
        fill(s)
    with MindStore(pg_url, config=auto) as s:  # 5 slots when opened: moved
        assert s.index_info().kind == "hnsw (pgvector)" and s.index_info().keys == 5
        assert s.move_keys("faiss") == 5
        s.add("Carol grows tomatoes", user_id="carol")
        assert s.index_info().kind == "flat" and key_tables(pg_url) == []  # this store keeps what it was told
    with MindStore(pg_url, config=auto) as s:  # 6 slots: past AUTO_MOVE_MAX, kept on FAISS with advice
        info = s.index_info()
        assert info.kind == "flat" and "mindstore reindex --key-index pgvector" in info.advice
        assert key_tables(pg_url) == []
        monkeypatch.setenv("XDG_CACHE_HOME", str(config.index_dir / "cache"))  # the CLI's FAISS files
        res = CliRunner().invoke(app, ["stats", "--db", pg_url])
        assert res.exit_code == 0 and "mindstore reindex --key-index pgvector" in res.output, res.output
