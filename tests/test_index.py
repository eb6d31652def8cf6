"""KeyIndex over real FAISS: ids, exact restricted search, persistence and damage detection."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from mindstore.index import IndexFileError, KeyIndex, normalize


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(5000, 32)).astype(np.float32)


def brute(data, ids, q, subset, k):
    mask = np.isin(ids, subset)
    sims = normalize(data[mask]) @ normalize(q[None])[0]
    order = np.lexsort((ids[mask], -sims))[:k]
    return ids[mask][order]


def test_add_replaces_and_remove_forgets(data) -> None:
    ix = KeyIndex(32)
    ix.add(np.arange(10), data[:10])
    ix.add(np.array([3]), data[500:501])  # replace, not duplicate
    assert len(ix) == 10
    assert ix.search(data[500:501], 1)[1][0, 0] == 3
    assert ix.remove(np.array([3, 999])) == 1
    assert 3 not in ix.ids() and len(ix) == 9


@pytest.mark.parametrize("subset_size", [5, 300, 2500])
def test_restricted_search_is_exact(data, subset_size) -> None:
    """Small subsets are scored directly, large ones by a filtered scan: both equal brute force."""
    ids = np.arange(5000, dtype=np.int64) * 7 + 11
    ix = KeyIndex(32)
    ix.add(ids, data)
    rng = np.random.default_rng(subset_size)
    subset = rng.choice(ids, size=subset_size, replace=False)
    q = rng.normal(size=32).astype(np.float32)
    scores, got = ix.search(q[None], 10, subset=subset)
    expected = brute(data, ids, q, subset, 10)
    assert list(got[0][: len(expected)]) == list(expected)
    assert np.all(np.diff(scores[0][np.isfinite(scores[0])]) <= 1e-6)
    # float16 codes: scores within 1e-3 of float32 cosine
    exact = {i: s for i, s in zip(ids, normalize(data) @ normalize(q[None])[0])}
    assert max(abs(exact[i] - s) for i, s in zip(got[0], scores[0]) if i >= 0) < 1e-3


@pytest.mark.parametrize("subset_size", [5, 300])
def test_restricted_search_on_an_ivf_is_exact(data, subset_size) -> None:
    """A scope small enough to score directly is exact on an approximate index too: its vectors
    come out of the IVF by id (a batch lookup in the hash-table direct map), not from the lists
    probed."""
    ids = np.arange(5000, dtype=np.int64) * 7 + 11
    ix = KeyIndex(32, approximate_from=1000)
    ix.add(ids, data)
    assert ix.approximate
    rng = np.random.default_rng(subset_size)
    subset = rng.choice(ids, size=subset_size, replace=False)
    q = rng.normal(size=32).astype(np.float32)
    got = ix.search(q[None], 10, subset=subset)[1][0]
    expected = brute(data, ids, q, subset, 10)
    assert list(got[: len(expected)]) == list(expected)
    np.testing.assert_allclose(ix.reconstruct(subset), normalize(data[np.searchsorted(ids, subset)]), atol=1e-3)


def test_short_results_are_padded(data) -> None:
    ix = KeyIndex(32)
    ix.add(np.array([1, 2]), data[:2])
    scores, ids = ix.search(data[:1], 5)
    assert list(ids[0]) == [1, 2, -1, -1, -1] and np.isinf(scores[0, 2:]).all()
    assert list(ix.search(data[:1], 3, subset=np.array([2, 77]))[1][0]) == [2, -1, -1]


def test_save_load_round_trip_and_damage(data, tmp_path: Path) -> None:
    ix = KeyIndex(32)
    ix.add(np.arange(100), data[:100])
    ix.seq = 42
    path = tmp_path / "x.faiss"
    ix.save(path)
    back = KeyIndex.load(path, dim=32)
    assert back.seq == 42 and len(back) == 100
    np.testing.assert_array_equal(back.search(data[:3], 4)[1], ix.search(data[:3], 4)[1])
    with pytest.raises(IndexFileError):
        KeyIndex.load(path, dim=16)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexFileError, match="damaged"):
        KeyIndex.load(path, dim=32)
    with pytest.raises(IndexFileError):
        KeyIndex.load(tmp_path / "missing.faiss", dim=32)


def test_background_save_writes_the_index_as_it_was(data, tmp_path: Path, monkeypatch) -> None:
    import mindstore.index.files as mod

    gate = threading.Event()
    write = mod.write_index
    monkeypatch.setattr(mod, "write_index", lambda *a: (gate.wait(10), write(*a)))
    ix = KeyIndex(32)
    ix.add(np.arange(100), data[:100])
    ix.seq = 7
    path = tmp_path / "x.faiss"
    ix.save(path, background=True)
    assert not ix.dirty and not path.exists()  # returned before writing
    ix.add(np.arange(100, 150), data[100:150])  # changes while the copy is written
    ix.remove(np.arange(10))
    ix.seq = 9
    gate.set()
    ix.join_save()
    back = KeyIndex.load(path, dim=32)
    assert back.seq == 7 and len(back) == 100 and sorted(back.ids().tolist()) == list(range(100))
    np.testing.assert_array_equal(back.reconstruct(np.arange(100)), normalize(data[:100]).astype(np.float16).astype(np.float32))
    assert len(ix) == 140 and ix.dirty


def test_failed_background_save_keeps_the_index_dirty(data, tmp_path: Path, caplog) -> None:
    ix = KeyIndex(32)
    ix.add(np.arange(10), data[:10])
    (tmp_path / "file").write_text("a file, not a folder")
    with caplog.at_level("WARNING", logger="mindstore"):
        ix.save(tmp_path / "file" / "x.faiss", background=True)
        ix.join_save()
    assert ix.dirty and "saving the key index" in caplog.text
    ix.save(tmp_path / "x.faiss")  # the next save goes through
    assert not ix.dirty and len(KeyIndex.load(tmp_path / "x.faiss", dim=32)) == 10


def test_two_saves_of_one_file_at_once_leave_it_whole(data, tmp_path: Path, monkeypatch) -> None:
    """Two processes keep their own index of one space and both save it: one save paused halfway
    while the other runs from start to end must not leave a damaged file."""
    import zlib

    import mindstore.index.files as mod

    a, b = KeyIndex(32), KeyIndex(32)
    a.add(np.arange(3000), data[:3000])
    b.add(np.arange(2000), data[:2000])
    path = tmp_path / "x.faiss"
    halfway, go_on = threading.Event(), threading.Event()
    slow = threading.current_thread().ident

    class PausingZlib:
        calls = 0

        @staticmethod
        def crc32(chunk, crc=0):  # noqa: ANN001, ANN205
            if threading.get_ident() == slow:
                PausingZlib.calls += 1
                if PausingZlib.calls == 2:  # some of the file written
                    halfway.set()
                    go_on.wait(10)
            return zlib.crc32(chunk, crc)

    monkeypatch.setattr(mod, "zlib", PausingZlib)
    other = threading.Thread(target=lambda: (halfway.wait(10), b.save(path), go_on.set()))
    other.start()
    a.save(path)  # pauses halfway until the other save has finished
    other.join()
    assert PausingZlib.calls > 2 and go_on.is_set()
    back = KeyIndex.load(path, dim=32)  # the last rename's: a's
    assert len(back) == 3000
    assert not list(tmp_path.glob("*.tmp"))


def test_a_dead_process_temp_file_is_removed_by_the_next_save(data, tmp_path: Path) -> None:
    import subprocess
    import sys

    import mindstore.index.files as mod

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    path = tmp_path / "x.faiss"
    stale = tmp_path / f"x.faiss.{mod.HOST}-{pid}-1.tmp"
    live = tmp_path / f"x.faiss.{mod.HOST}-{os.getppid()}-1.tmp"  # a live process's save in progress
    elsewhere = tmp_path / f"x.faiss.00000000-{pid}-1.tmp"  # another host's: its pids are not ours to check
    for f in (stale, live, elsewhere):
        f.write_bytes(b"partial")
    ix = KeyIndex(32)
    ix.add(np.arange(10), data[:10])
    ix.save(path)
    assert not stale.exists() and live.exists() and elsewhere.exists()
    assert len(KeyIndex.load(path, dim=32)) == 10


def test_device_is_cpu_without_gpu() -> None:
    import faiss

    ix = KeyIndex(4)
    expected = "cuda" if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0 else "cpu"
    assert ix.device == expected
    assert KeyIndex(4, device="cpu").device == "cpu"


def test_past_the_threshold_the_index_turns_ivf_and_stays_true(data, tmp_path: Path) -> None:
    """Approximate mode: O(1) add/remove by id, searches still find a key's own slot, and the IVF
    survives save/load."""
    ix = KeyIndex(32, approximate_from=2000)
    ix.add(np.arange(1000), data[:1000])
    assert not ix.approximate
    ix.add(np.arange(1000, 5000), data[1000:])
    assert ix.approximate and len(ix) == 5000
    _, ids = ix.search(data[:50], 1)
    assert (ids[:, 0] == np.arange(50)).all()
    ix.add(np.array([7]), data[9:10])  # replace: one copy, new vector
    assert len(ix) == 5000
    assert ix.remove(np.array([3, 3, 123456])) == 1 and 3 not in ix.ids()
    _, ids = ix.search(data[9:10], 2)
    assert set(ids[0]) == {7, 9}
    np.testing.assert_array_equal(ix.search(data[:5], 3, subset=np.arange(0, 5000, 7))[1],
                                  [brute(data, np.arange(5000), q, np.setdiff1d(np.arange(0, 5000, 7), [3, 7]), 3) for q in data[:5]])
    ix.save(tmp_path / "ivf.faiss")
    back = KeyIndex.load(tmp_path / "ivf.faiss", dim=32, approximate_from=2000)
    assert back.approximate and len(back) == 4999
    np.testing.assert_array_equal(back.search(data[:20], 4)[1], ix.search(data[:20], 4)[1])
