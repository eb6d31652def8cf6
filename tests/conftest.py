"""Fixtures: real stores on SQLite files and on the PostgreSQL server at 127.0.0.1:5432.

Each PostgreSQL test gets a fresh database, dropped afterwards. The server is part of every
machine of this project (CI included); if it is down, start it with
``pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start``.

Tests and bench/ use the public seams (``MindStore.key_index``, ``lexical_index``, ``engine``,
``index_info``; ``KeyIndex.nlist``, ``nprobe``, ``saving``). Private reaches that remain, and
why (``grep -rn "\\._[a-z]" tests bench | grep -v "__"``):

- Fault injection and spies that slow, fail or watch one internal step: test_usage.py:76 and :77
  (``_reads.write``: which thread writes usage) and :111 (``_reads.flush``: a flush that fails while
  the store is open). Spies on internal modules' functions (not caught by the grep):
  ``mindstore.index.files.write_index`` (a slow disk: test_index.py, test_durability.py),
  ``mindstore.index.ivf.add_near`` (which retrain path ran: test_index_training.py),
  ``mindstore.core.writes.insert_columns`` and ``mindstore.core.wal.Checkpoints.checkpoint`` (test_bulk.py).
- White-box tests of an IVF's list placement, which no public API shows: test_bulk.py:63, :68
  and :84 (``_train_ivf``: a retrain between prepare and add), test_index_training.py:82, :84, :88.
- Laziness and background work: test_store.py:136 (``_spaces.loaded``: a read that loads no key index),
  test_bulk.py:341 (``_checkpoints.last``: wait for the checkpoint thread), test_durability.py:185
  (``_spaces.index``: ``SpaceIndex.catch_up`` and its own-events shortcut).
- test_bulk.py:16: mindstore/_gc.py, a private module tested as a unit.
- tests/tui/conftest.py:25: Textual keeps an app's notifications in its ``_notifications`` and has
  no public reader; every TUI test goes through ``notifications(app)`` there.
- Not reaches: forked children leaving through ``_exit`` of ``os`` (test_bulk.py:370, test_concurrency.py:163).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PG_ADMIN_URL = os.environ.get("MINDSTORE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

# Memories on which hybrid search and the cosine disagree about the order: of the first two, only
# the invoice holds the question's word "Biscuit", and fusion ranks it above the puppy, the closer
# by meaning (measured with the bundled MiniLM: cosine 0.32 and 0.40, fused 0.91 and 0.50).
FUSION_QUERY = "what breed is Biscuit?"
FUSION_TEXTS = ("We adopted a corgi puppy last spring.", "Invoice 88 from Biscuit Holdings is overdue.", "The quarterly report is due on Friday.",
                "My sister plays the violin.", "The train to Porto leaves at nine.", "Our kitchen tap is leaking again.")


def _pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mindstore_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("pgvector", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database. ``pgvector``
    is PostgreSQL with ``Config(key_index="pgvector")`` from the ``config`` fixture: the text
    space's keys searched in the database (run for the tests of ``PGVECTOR_SUITES``)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'memory.db'}"
    else:
        yield from _pg_database()


# The behaviour every key index must share (scopes, versions, hybrid search, the store's calls,
# bad input): these run against the pgvector key index too; the rest of db_url's tests, about
# FAISS files, threads and training, run on FAISS alone.
PGVECTOR_SUITES = ("test_store.py", "test_search.py", "test_writes.py", "test_messages.py", "test_scoping.py", "test_versions.py", "test_hybrid.py", "test_bad_input.py", "test_durability.py",
                   "test_concurrency.py", "test_filters.py", "test_retention.py", "test_reindex.py", "test_stats.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        pgvector = params.get("db_url") == "pgvector"
        (drop if pgvector and (item.path.name not in PGVECTOR_SUITES or item.get_closest_marker("faiss_only")) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'memory.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_database()


@pytest.fixture
def config(tmp_path: Path, request: pytest.FixtureRequest):
    """Index files in the test's own folder, also for PostgreSQL; the pgvector key index when
    the test runs on db_url's ``pgvector``."""
    from mindstore import Config

    params = getattr(getattr(request.node, "callspec", None), "params", {})
    return Config(index_dir=tmp_path / "index", key_index="pgvector" if params.get("db_url") == "pgvector" else "faiss")


@pytest.fixture
def store(db_url: str, config):
    from mindstore import MindStore

    with MindStore(db_url, config=config) as s:
        yield s


def packaged_image_size() -> int:
    """The image side the packaged neural checkpoint was trained on (read from its config)."""
    import torch

    from mindstore.neural import DEFAULT_CHECKPOINT

    return int(torch.load(DEFAULT_CHECKPOINT, weights_only=True)["model_config"]["image_size"])


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every mindstore table, for byte-for-byte comparisons."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    out = {}
    with engine.connect() as c:
        for table in ("spaces", "slots", "events", "mindstore_meta"):
            try:
                out[table] = [tuple(r) for r in c.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
            except Exception:  # table not created yet
                out[table] = []
    engine.dispose()
    return out


def kill_after_acks(script: str, tmp_path: Path, args: list[str], n: int) -> list[int]:
    """Run a writer script (it prints one acknowledged slot id per line) until it has acknowledged
    ``n`` writes, then SIGKILL it; returns the acknowledged ids."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "writer.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path), *args], stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    acked: list[int] = []
    deadline = time.monotonic() + 240
    try:
        while len(acked) < n and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) == n, "the writer did not get going"
    return acked


def vector_store(url: str, tmp_path: Path, *, dim: int = 8, **config):  # noqa: ANN201 - a MindStore
    """A store with a vector space "v" of ``dim`` dimensions (created on first open), its key index
    under ``tmp_path``, and the given ``Config`` fields."""
    from mindstore import Config, MindStore

    s = MindStore(url, config=Config(index_dir=tmp_path / "index", **config))
    if "v" not in {sp.name for sp in s.spaces()}:
        s.create_space("v", dim=dim, key_source="test")
    return s


def random_keys(n: int, seed: int = 0, dim: int = 8):  # noqa: ANN201 - a float32 array
    import numpy as np

    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


class HashEmbedder:
    """A deterministic stand-in for the text embedder, for tests about storage rather than meaning:
    each text's key is a unit vector seeded by its CRC32, the same in every process. ``fail_at``:
    the call (1-based) that raises instead; ``calls`` and ``texts`` count what it embedded."""

    def __init__(self, name: str = "test/hash", dim: int = 32, *, fail_at: int | None = None) -> None:
        self.name, self.dim, self.fail_at = name, dim, fail_at
        self.calls = self.texts = 0

    def embed(self, texts, *, batch_size: int = 64):  # noqa: ANN001, ANN201 - the Embedder protocol
        import zlib

        import numpy as np

        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError(f"embedder failed at call {self.calls}")
        self.texts += len(texts)
        v = np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=self.dim) for t in texts]).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
