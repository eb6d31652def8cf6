"""Inverted-file (IVF) indexes: training, list counts, and adding keys near the lists they
sat in before a retraining."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .._lazy import lazy_module

faiss = lazy_module("faiss")  # imported on first use: reading rows never needs it

if TYPE_CHECKING:
    from tqdm.auto import tqdm

__all__ = ["IVF_SCAN", "ListHint", "add_near", "build_ivf", "ivf_lists", "near_lists", "trained_ivf"]

IVF_SCAN = 16_384  # keys an IVF search scans per query (nprobe = this / mean list length)


class ListHint(NamedTuple):
    """Where keys sat in the IVF a retraining replaces: its centroids, and each key's list."""

    centroids: np.ndarray
    lists: np.ndarray


def build_ivf(dim: int, ids: np.ndarray, vectors: np.ndarray, bar: tqdm | None = None, hint: ListHint | None = None) -> faiss.Index:
    """An IVF of :func:`ivf_lists` lists trained on a sample of ``vectors``, holding all of them
    (``hint``: their lists in the IVF it replaces, see :func:`add_near`)."""
    n = len(ids)
    ivf = trained_ivf(dim, vectors, ivf_lists(n))
    near = None if hint is None else near_lists(ivf, hint.centroids)
    for start in range(0, n, 100_000):
        part = slice(start, start + 100_000)
        add_near(ivf, ids[part], vectors[part], None if hint is None else ListHint(hint.centroids, hint.lists[part]), near=near)
        if bar is not None:
            bar.update(min(100_000, n - start))
    return ivf


def near_lists(ivf: faiss.Index, old_centroids: np.ndarray, near: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A new ``ivf``'s centroids, and for each old list the ``near`` new lists closest to its
    centroid (computed once per retraining, for every :func:`add_near` of it)."""
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    _, cand = faiss.knn(old_centroids, centroids, min(near, ivf.nlist), metric=faiss.METRIC_INNER_PRODUCT)
    return centroids, cand


def add_near(ivf: faiss.Index, ids: np.ndarray, vectors: np.ndarray, hint: ListHint | None, *, near: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Add ``vectors`` to a new ``ivf``, each to its nearest list, or with ``hint`` (the lists they
    sat in before a retraining) to the nearest of the 32 new lists closest to its old list's
    centroid (``near``: :func:`near_lists` of it, if already computed).

    Assigning every key of a retraining against all the new centroids is a search of the whole
    quantizer per key; a key's old list already says where it is, and scoring 32 candidates costs a
    fraction of that. Nearly every key lands in the same list as with the full search, the rest
    in one next to it, and recall is unchanged (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    if hint is None or len(ids) == 0:
        ivf.add_with_ids(vectors, ids)
        return
    centroids, cand = near if near is not None else near_lists(ivf, hint.centroids)
    order = np.argsort(hint.lists, kind="stable")
    old = hint.lists[order]
    cuts = np.flatnonzero(np.diff(old)) + 1
    lists = np.empty(len(ids), dtype=np.int64)
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(old)]):
        rows = order[a:b]
        c = cand[old[a]]
        lists[rows] = c[(vectors[rows] @ centroids[c].T).argmax(axis=1)]
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    xids = np.ascontiguousarray(ids, dtype=np.int64)
    ivf.add_core(len(xids), faiss.swig_ptr(x), faiss.swig_ptr(xids), faiss.swig_ptr(lists))


def ivf_lists(n: int) -> int:
    """How many lists an IVF of ``n`` keys gets: about 2 sqrt(n).

    A search scans a fixed ~16k keys (``IVF_SCAN``), so more lists buy a finer partition, not
    less scanning, while k-means costs lists x sample and the sample grows with the lists: more
    lists than 2 sqrt(n) cost k-means time and buy no recall (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    return max(1, min(int(2 * np.sqrt(n)), n // 40))  # k-means wants ~40 points a list


def trained_ivf(dim: int, vectors: np.ndarray, nlist: int) -> faiss.Index:
    """An empty IVF of ``nlist`` lists (float16 codes of the vectors themselves, a hash-table id
    map) whose centroids are k-means on up to 40 of ``vectors`` a list."""
    n = len(vectors)
    sample = vectors[np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)]
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    ivf.by_residual = False  # codes are the float16 vectors themselves, as in the flat index
    ivf.train(sample)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    return ivf

