"""FAISS in this process: its threads, the GPU, and the vector forms every index uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np

from .._lazy import lazy_module

faiss = lazy_module("faiss")  # imported on first use: reading rows never needs it

__all__ = ["flat_codes", "gpu_available", "normalize", "omp_threads", "one_thread"]

_SMALL_BATCH = 16  # queries; up to this many are searched on one thread


def one_thread() -> None:
    """Make FAISS run on one OpenMP thread in the calling thread only (the setting is per thread).

    For a worker thread that prepares a bulk add's keys while the writer thread inserts their
    rows: with FAISS's default two threads on a 2-core machine they competed for the cores, and
    one thread fills faster (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    faiss.omp_set_num_threads(1)


def _after_fork_in_child() -> None:
    """Run FAISS on one OpenMP thread in a forked child. GNU OpenMP is not fork-safe: a child forked
    after FAISS ran a parallel region in the parent (training an IVF, a batch search) waited forever
    at its next one, since the pool's threads are not copied. A region of one thread uses no pool."""
    if type(faiss) is ModuleType:  # FAISS was loaded (the lazy stand-in is another type; type() loads nothing)
        faiss.omp_set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (float32, contiguous) so that inner product is cosine similarity."""
    v = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, vectors.shape[-1])
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


@contextmanager
def omp_threads(n_queries: int) -> Iterator[None]:
    """Search a few queries on one OpenMP thread. FAISS parallelises over queries, so for one query
    a parallel region only adds a barrier, and when another process holds a core that barrier
    waits a whole time slice, many times the search itself (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them). The setting is
    the calling thread's own, so it is restored without affecting other threads."""
    if n_queries > _SMALL_BATCH:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def flat_codes(dim: int) -> faiss.Index:
    # float16 codes: a flat scan is memory-bound, and half the bytes is about half the time. Scores
    # differ from float32 by ~1e-5 for unit vectors; the store rescores its final candidates from
    # the float32 keys in SQL, so what users see is exact.
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)

