"""Several processes on one store: every acknowledged write is searchable from the other process,
none is lost or duplicated, and a change that commits out of sequence order is still seen."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, select

from mindstore import Config, MindStore
from mindstore.db import EventRow, SlotRow, SpaceRow

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
        assert len(s._space_index("v").index) == 2 * n_batches * batch


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
