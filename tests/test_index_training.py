"""Background training of the approximate index: the exact index serves meanwhile, and changes
made while the lists train are all in the index that is swapped in."""

from __future__ import annotations

import numpy as np

from mindstore import Config, MindStore
from mindstore.index import KeyIndex


def test_changes_during_background_training_survive_the_swap() -> None:
    data = np.random.default_rng(0).normal(size=(6000, 32)).astype(np.float32)
    ix = KeyIndex(32, device="cpu", approximate_from=4000, background=True)
    ix.add(np.arange(4000), data[:4000])  # starts training on a snapshot of 4000 keys
    assert not ix.approximate
    ix.add(np.arange(4000, 5000), data[4000:5000])  # added while training (or just after)
    ix.remove(np.array([1, 2, 4500]))
    ix.add(np.array([10]), data[5000:5001])  # replaced
    _, ids = ix.search(data[5000:5001], 1)
    assert ids[0, 0] == 10  # served meanwhile, exactly
    assert ix.wait_trained(timeout=120) and ix.approximate
    assert len(ix) == 4997
    have = set(ix.ids().tolist())
    assert {1, 2, 4500}.isdisjoint(have) and {0, 3, 4999, 4001, 10} <= have
    _, ids = ix.search(data[5000:5001], 1)
    assert ids[0, 0] == 10
    _, ids = ix.search(data[4000:4050], 1)
    assert (ids[:, 0] == np.arange(4000, 4050)).mean() >= 0.95


def test_store_with_background_training_stays_true_to_sql(sqlite_url: str, tmp_path) -> None:
    keys = np.random.default_rng(1).normal(size=(3000, 16)).astype(np.float32)
    config = Config(index_dir=tmp_path / "i", approximate_from=2000, train_in_background=True)
    with MindStore(sqlite_url, config=config) as s:
        s.create_space("v", dim=16, key_source="test")
        ids = [x.id for x in s.add_vectors(keys[:2500], space="v", user_id="u")]
        more = [x.id for x in s.add_vectors(keys[2500:], space="v", user_id="u")]
        s.delete(ids[0])
        index = s.key_index("v")
        assert index.wait_trained(timeout=120) and index.approximate
        assert sorted(index.ids().tolist()) == sorted(ids[1:] + more)
    with MindStore(sqlite_url, config=config) as s:
        info = s.index_info("v")
        assert info.keys == 2999 and info.kind == "ivf" and not (info.repaired or "").startswith("rebuilt")


def test_close_waits_for_a_training_and_saves_its_lists(sqlite_url: str, tmp_path) -> None:
    # The default trains in the background; a process that adds and closes at once (a bulk
    # import) must leave the trained IVF on disk, not the index that served meanwhile.
    keys = np.random.default_rng(2).normal(size=(5000, 16)).astype(np.float32)
    config = Config(index_dir=tmp_path / "i", approximate_from=4000)
    assert config.train_in_background
    with MindStore(sqlite_url, config=config) as s:
        s.create_space("v", dim=16, key_source="test")
        ids = [x.id for x in s.add_vectors(keys, space="v", user_id="u")]
        assert s.search_vector(keys[77], space="v", k=1)[0].slot.id == ids[77]  # served meanwhile
    with MindStore(sqlite_url, config=config) as s:
        info = s.index_info("v")
        assert (info.kind, info.keys, info.training, info.repaired) == ("ivf", 5000, False, None)
        assert s.wait_trained("v") and s.search_vector(keys[4321], space="v", k=1)[0].slot.id == ids[4321]


def test_a_retrain_puts_keys_near_their_old_lists_and_loses_none(monkeypatch) -> None:
    import mindstore.index.ivf as index_module

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(300, 32))
    data = (centres[rng.integers(0, 300, 17_000)] + 0.3 * rng.normal(size=(17_000, 32))).astype(np.float32)
    hinted = []
    add_near = index_module.add_near
    monkeypatch.setattr(index_module, "add_near", lambda ivf, ids, v, hint, **kw: (hinted.append(hint is not None), add_near(ivf, ids, v, hint, **kw)))
    ix = KeyIndex(32, device="cpu", approximate_from=2000, background=True)
    ix.add(np.arange(2000), data[:2000])
    assert ix.wait_trained(timeout=120) and ix.approximate and not any(hinted)  # flat -> IVF: no old lists
    first_lists = ix.nlist
    ix.add(np.arange(2000, 16_000), data[2000:16_000])  # 8x the keys trained on: retrains from these lists
    ix.add(np.arange(16_000, 17_000), data[16_000:17_000])  # while it trains: replayed from their lists
    ix.remove(np.arange(100))
    assert ix.wait_trained(timeout=120) and ix.nlist > first_lists
    assert any(hinted)
    ids, where = ix._ids_by_list()
    assert sorted(ids.tolist()) == list(range(100, 17_000))
    snap_ids, vectors, _ = ix._snapshot()  # what the next retraining starts from
    np.testing.assert_array_equal(snap_ids, ids)
    np.testing.assert_array_equal(vectors(), ix.reconstruct(ids))
    # Most keys sit in the list a full search of the new centroids picks; all are found again.
    _, best = ix._index.quantizer.search(data[ids], 1)
    assert (best[:, 0] == where.lists).mean() >= 0.95
    _, found = ix.search(data[100:17_000:17], 1)
    assert (found[:, 0] == np.arange(100, 17_000, 17)).mean() >= 0.98
