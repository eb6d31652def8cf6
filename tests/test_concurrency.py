"""Several processes on one store: every acknowledged write is searchable from the other process,
none is lost or duplicated, and a change that commits out of sequence order is still seen."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mindstore import Config, MindStore

DIM = 16

# Each worker writes its own scope in batches and, between batches, searches the other worker's
# scope. When the other has finished (its done file exists, written after its last add
# returned), one search must return every slot the other acknowledged.
WORKER = textwrap.dedent(
    f"""
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from mindstore import Config, MindStore
    url, index_dir, me, other, folder, n_batches, batch, approximate_from = sys.argv[1:9]
    n_batches, batch, approximate_from = int(n_batches), int(batch), int(approximate_from)
    folder = Path(folder)
    rng = np.random.default_rng(int(me[1:]))
    acked, seen_counts = [], []
    with MindStore(url, config=Config(index_dir=index_dir, approximate_from=approximate_from)) as store:
        for b in range(n_batches):
            keys = rng.normal(size=(batch, {DIM})).astype(np.float32)
            slots = store.add_vectors(keys, space="v", user_id=me, labels=[f"{{me}}-{{b}}-{{j}}" for j in range(batch)])
            acked += [s.id for s in slots]
            # my own write is searchable by me at once
            assert store.search_vector(keys[0], space="v", user_id=me, k=1)[0].slot.id == slots[0].id
            hits = store.search_vector(keys[0], space="v", user_id=other, k=10_000)
            assert all(h.slot.scope.user_id == other for h in hits)
            seen_counts.append(len(hits))
        (folder / f"{{me}}.acked").write_text(json.dumps(acked))
        while not (folder / f"{{other}}.acked").exists():
            time.sleep(0.05)
        hits = store.search_vector(np.ones({DIM}, np.float32), space="v", user_id=other, k=10_000)
        (folder / f"{{me}}.saw").write_text(json.dumps({{"final": [h.slot.id for h in hits], "counts": seen_counts}}))
    """
)


# small: 30 adds of 5 slots, exact index; bulk: 3 adds of 2,500 (their index work is prepared in
# a thread during the SQL insert), the index an IVF from 4,000 keys on
@pytest.mark.slow
@pytest.mark.parametrize(("n_batches", "batch", "approximate_from"), [(30, 5, 100_000), (3, 2_500, 4_000)], ids=["small", "bulk"])
def test_two_processes_write_and_search_one_store(db_url: str, tmp_path: Path, n_batches: int, batch: int, approximate_from: int) -> None:
    config = Config(index_dir=tmp_path / "parent", approximate_from=approximate_from)
    with MindStore(db_url, config=config) as s:
        s.create_space("v", dim=DIM, key_source="test")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = [str(n_batches), str(batch), str(approximate_from)]
    procs = [
        subprocess.Popen([sys.executable, str(script), db_url, str(tmp_path / f"idx_{me}"), me, other, str(tmp_path), *args], env=env, stderr=subprocess.PIPE, text=True)
        for me, other in (("w1", "w2"), ("w2", "w1"))
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    import json

    acked = {me: json.loads((tmp_path / f"{me}.acked").read_text()) for me in ("w1", "w2")}
    saw = {me: json.loads((tmp_path / f"{me}.saw").read_text()) for me in ("w1", "w2")}
    assert len(acked["w1"]) == len(acked["w2"]) == n_batches * batch
    assert not set(acked["w1"]) & set(acked["w2"])
    # every write of the other process, visible in one call once it was acknowledged
    assert sorted(saw["w1"]["final"]) == sorted(acked["w2"])
    assert sorted(saw["w2"]["final"]) == sorted(acked["w1"])
    for me in ("w1", "w2"):  # visibility only grows while the other writes
        assert saw[me]["counts"] == sorted(saw[me]["counts"])
    with MindStore(db_url, config=config) as s:
        ids = [h.slot.id for me in ("w1", "w2") for h in s.search_vector(np.ones(DIM, np.float32), space="v", user_id=me, k=10_000)]
        assert sorted(ids) == sorted(acked["w1"] + acked["w2"])  # no lost, no duplicated slot
        assert s.count(space="v") == 2 * n_batches * batch
        assert len(s.key_index("v")) == 2 * n_batches * batch


# Holds a transaction that has taken a change sequence number, until told to commit: on
# PostgreSQL, a later writer's change then commits first, with a larger number.
LATE_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    import numpy as np
    from sqlalchemy import create_engine, insert, select
    from sqlalchemy.orm import Session
    from mindstore.db import EventRow, SlotRow, SpaceRow
    url = sys.argv[1]
    engine = create_engine(url)
    now = datetime.now(timezone.utc)
    with Session(engine) as s, s.begin():
        space_id = s.scalar(select(SpaceRow.id).where(SpaceRow.name == "v"))
        key = np.full(16, -1.0, np.float32).tobytes()
        slot_id = s.scalar(insert(SlotRow).returning(SlotRow.id), [dict(space_id=space_id, user_id="u", key=key, metadata_={}, reads=0, writes=1, last_access=now, created_at=now, updated_at=now)][0])
        eid = s.scalar(insert(EventRow).returning(EventRow.id), [dict(space_id=space_id, slot_id=slot_id, kind="add", at=now)][0])
        print(slot_id, eid, flush=True)
        sys.stdin.readline()  # commit when told
    print("committed", flush=True)
    """
)


@pytest.mark.postgres
def test_change_committed_out_of_sequence_order_is_not_skipped(pg_url: str, tmp_path: Path) -> None:
    reader = MindStore(pg_url, config=Config(index_dir=tmp_path / "reader"))
    writer = MindStore(pg_url, config=Config(index_dir=tmp_path / "writer"))
    try:
        reader.create_space("v", dim=DIM, key_source="test")
        reader.add_vectors(np.ones((1, DIM), np.float32), space="v", user_id="u")
        script = tmp_path / "late.py"
        script.write_text(LATE_WRITER)
        late = subprocess.Popen([sys.executable, str(script), pg_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        late_slot, late_event = map(int, late.stdout.readline().split())
        # a second writer commits a larger sequence number first; the reader catches up past it
        early = writer.add_vectors(np.full((1, DIM), 0.5, np.float32), space="v", user_id="u")[0]
        eids = [h.slot.id for h in reader.search_vector(np.ones(DIM, np.float32), space="v", user_id="u", k=10)]
        assert early.id in eids and late_slot not in eids
        late.stdin.write("\n")
        late.stdin.flush()
        assert late.stdout.readline().strip() == "committed"
        late.wait(timeout=30)
        hits = reader.search_vector(np.full(DIM, -1.0, np.float32), space="v", user_id="u", k=1)
        assert hits[0].slot.id == late_slot
        # and so does the reader reopened from its saved index
        reader.close()
        with MindStore(pg_url, config=Config(index_dir=tmp_path / "reader")) as again:
            assert again.search_vector(np.full(DIM, -1.0, np.float32), space="v", user_id="u", k=1)[0].slot.id == late_slot
    finally:
        reader.close()
        writer.close()


# The parent runs FAISS's OpenMP regions (an IVF trained inside the add, a batch search), then
# forks; the child adds and searches. Before the fork hook the child hung in its first FAISS add.
FORKED = textwrap.dedent(
    f"""
    import os, sys, time
    import numpy as np
    from mindstore import Config, MindStore
    url, index_dir = sys.argv[1:3]
    keys = np.random.default_rng(0).normal(size=(6000, {DIM})).astype(np.float32)
    store = MindStore(url, config=Config(index_dir=index_dir, approximate_from=2000, train_in_background=False))
    store.create_space("v", dim={DIM}, key_source="test")
    store.add_vectors(keys[:3000], space="v", user_id="parent")
    store.search_vectors(keys[:64], space="v", k=3)
    pid = os.fork()
    if pid == 0:
        slots = store.add_vectors(keys[3000:], space="v", user_id="child")
        hits = store.search_vectors(keys[3000:3064], space="v", k=1, user_id="child")
        ok = [h[0].slot.id for h in hits] == [s.id for s in slots[:64]]
        store.close()
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            sys.exit(os.waitstatus_to_exitcode(status))
        time.sleep(0.1)
    os.kill(pid, 9)
    sys.exit("the forked child hung")
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_after_faiss_ran_in_the_parent_can_use_the_store(sqlite_url: str, tmp_path: Path) -> None:
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # the hang needs FAISS's own thread pool
    done = subprocess.run([sys.executable, str(script), sqlite_url, str(tmp_path / "idx")], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]


# Started with the others, it imports mindstore, says "ready", then for each line (a database
# URL and an index folder, in JSON) opens the store at once with them, says "open", and on the
# next line ("go") makes its first adds, again at once with them.
FIRST_WRITER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from conftest import HashEmbedder
    from mindstore import Config, MindStore
    me = sys.argv[1]
    print("ready", flush=True)
    for line in sys.stdin:
        url, index_dir = json.loads(line)
        acked = []
        try:
            with MindStore(url, embedder=HashEmbedder(), config=Config(index_dir=index_dir)) as store:
                print(json.dumps({"open": True}), flush=True)
                sys.stdin.readline()
                for i in range(8):
                    acked.append(store.add(f"{me} remembers fact {i}", user_id=me, dedup=False).id)
            print(json.dumps({"acked": acked}), flush=True)
        except Exception as exc:
            print(json.dumps({"acked": acked, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("n", [2, 4])
def test_processes_starting_at_once_on_a_new_store_all_open_and_write(backend: str, n: int, tmp_path: Path) -> None:
    # Each round is a store nobody has opened: every process creates the schema, then the text
    # space, at the same moment as the others. Every one must open, and every add it acknowledged
    # must be in the store.
    import json

    from conftest import HashEmbedder, _pg_database

    script = tmp_path / "first.py"
    script.write_text(FIRST_WRITER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    tests_dir = str(Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, str(script), f"p{i}", tests_dir], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for round_ in range(3):
            databases = None if backend == "sqlite" else _pg_database()
            url = f"sqlite:///{tmp_path / f'round{round_}.db'}" if databases is None else next(databases)
            index_dir = tmp_path / f"index{round_}"
            try:
                for line in (json.dumps([url, str(index_dir)]), "go"):  # open at once, then add at once
                    for p in procs:  # the lines go out before any process has read its own
                        p.stdin.write(line + "\n")
                        p.stdin.flush()
                    results = {f"p{i}": json.loads(p.stdout.readline()) for i, p in enumerate(procs)}
                    if line != "go":
                        assert [r.get("error") for r in results.values()] == [None] * n, results
                assert [r.get("error") for r in results.values()] == [None] * n, results
                with MindStore(url, embedder=HashEmbedder(), config=Config(index_dir=index_dir)) as s:
                    assert s.count() == 8 * n
                    assert [sp.name for sp in s.spaces()] == ["chat"]
                    for me, r in results.items():
                        assert [s.get(i).text for i in r["acked"]] == [f"{me} remembers fact {i}" for i in range(8)]
                        assert s.search(f"{me} remembers fact 3", user_id=me, k=1)[0].slot.id == r["acked"][3]
            finally:
                if databases is not None:
                    databases.close()  # drops the round's database
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)


# The late writer's slot for the lexical test: a text slot whose words no other slot has.
LATE_TEXT_WRITER = LATE_WRITER.replace('SpaceRow.name == "v"', 'SpaceRow.name == "chat"').replace(
    "key = np.full(16, -1.0, np.float32).tobytes()", "key = np.full(32, -1.0, np.float32).tobytes()"
).replace("user_id=\"u\", key=key,", "user_id=\"u\", text=\"the zebra Quentin paints murals\", key=key,")


@pytest.mark.postgres
def test_lexical_search_finds_a_change_committed_out_of_sequence_order(pg_url: str, tmp_path: Path) -> None:
    from conftest import HashEmbedder

    assert "zebra Quentin" in LATE_TEXT_WRITER  # the replacements above took
    reader = MindStore(pg_url, embedder=HashEmbedder(), config=Config(index_dir=tmp_path / "reader"))
    writer = MindStore(pg_url, embedder=HashEmbedder(), config=Config(index_dir=tmp_path / "writer"))
    try:
        reader.add("the first memory of all", user_id="u")
        assert reader.search("first memory", user_id="u", mode="lexical")  # the lexical index is open
        script = tmp_path / "late.py"
        script.write_text(LATE_TEXT_WRITER)
        late = subprocess.Popen([sys.executable, str(script), pg_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        late_slot, _ = map(int, late.stdout.readline().split())
        # a second writer commits a larger sequence number first; the reader's lexical index passes it
        early = writer.add("the giraffe Quentin sings opera", user_id="u", dedup=False)
        assert [h.slot.id for h in reader.search("Quentin", user_id="u", mode="lexical")] == [early.id]
        late.stdin.write("\n")
        late.stdin.flush()
        assert late.stdout.readline().strip() == "committed"
        late.wait(timeout=30)
        assert [h.slot.id for h in reader.search("zebra murals", user_id="u", mode="lexical")] == [late_slot]
        assert {h.slot.id for h in reader.search("Quentin", user_id="u", mode="lexical")} == {early.id, late_slot}
        # and so does the reader reopened from its saved lexical index
        reader.close()
        with MindStore(pg_url, embedder=HashEmbedder(), config=Config(index_dir=tmp_path / "reader")) as again:
            assert [h.slot.id for h in again.search("zebra murals", user_id="u", mode="lexical")] == [late_slot]
    finally:
        reader.close()
        writer.close()
