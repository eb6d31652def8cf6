"""The key index: FAISS over one space's keys, addressed by slot id.

It is a derived cache of the keys the SQL store holds. It remembers the change sequence it has
applied (``seq``) so the store can bring it up to date, and it saves itself with a checksum so a
damaged file is detected and rebuilt rather than trusted.

Small spaces are a flat scan (exact). Past ``approximate_from`` keys (off unless configured) the
index becomes an inverted file (IVF, Jegou et al. 2011) with a hash-table id map, so that a search
scans a few lists and adding or removing one key costs O(1) instead of O(N): what a memory that
reads and writes a few slots per step needs at millions of slots (Rae et al. 2016).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .._lazy import lazy_module

if TYPE_CHECKING:
    from tqdm.auto import tqdm

faiss = lazy_module("faiss")  # imported on first use: reading rows never needs it

__all__ = ["KeyIndex", "IndexFileError", "gpu_available", "normalize", "one_thread"]

_FORMAT = 1
_SMALL_BATCH = 16  # queries; up to this many are searched on one thread
_IVF_REGROW = 8  # retrain the IVF lists when the index has grown this many times since training
_IVF_SCAN = 16_384  # keys an IVF search scans per query (nprobe = this / mean list length)
_READ_CHUNK = 16 << 20  # bytes read at a time while checking an index file
_META_INTS = ("format", "dim", "seq", "count", "bytes", "crc32")  # what a saved index's metadata must hold
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"  # in temp file names: an index folder may be shared

log = logging.getLogger("mindstore")


class IndexFileError(Exception):
    """An index file is missing, damaged, or does not match its metadata (internal: rebuild)."""


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
def _omp_threads(n_queries: int) -> Iterator[None]:
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


def _flat_codes(dim: int) -> faiss.Index:
    # float16 codes: a flat scan is memory-bound, and half the bytes is about half the time. Scores
    # differ from float32 by ~1e-5 for unit vectors; the store rescores its final candidates from
    # the float32 keys in SQL, so what users see is exact.
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


class Prepared:
    """Vectors made ready for :meth:`KeyIndex.add` by :meth:`KeyIndex.prepare`."""

    __slots__ = ("index", "unit", "lists")

    def __init__(self, index: object, unit: np.ndarray, lists: np.ndarray | None) -> None:
        self.index = index  # the FAISS index ``lists`` refer to (an add into another reassigns)
        self.unit = unit  # normalised, float32, contiguous
        self.lists = lists  # the IVF list of each vector, or None


class KeyIndex:
    """Cosine search over ``(id, vector)`` pairs: add, remove, search, save, load.

    Vectors are normalised on the way in and kept as float16. Searches may be restricted to a
    subset of ids; small subsets are scored directly (O(subset)), large ones by a filtered scan;
    neither skips a vector. With a GPU build of FAISS and a GPU present, unrestricted searches run
    on a GPU copy (rebuilt after changes); restricted ones stay on the CPU.

    Brute force (exact) unless ``approximate_from`` is set: the add that brings the index to that
    many keys moves them into an IVF (seconds at 1e5 to 1e6 keys: k-means on a sample), and the
    lists are retrained each time the index has grown 8x since. IVF searches run on the CPU.
    """

    def __init__(self, dim: int, *, device: str = "auto", approximate_from: int | None = None, background: bool = False) -> None:
        self.dim = int(dim)
        self.seq = 0  # last change sequence applied from the SQL store
        self._index = faiss.IndexIDMap2(_flat_codes(self.dim))
        self._use_gpu = device in ("auto", "cuda", "gpu") and gpu_available()
        self._gpu_index = None  # lazily made copy, dropped on every change
        self._ids: np.ndarray | None = None
        self._max_id: int | None = -1  # largest id ever added (None: unknown, e.g. after load)
        self.approximate_from = approximate_from
        self._trained_at = 0  # keys held when the IVF lists were trained (0: flat)
        self._nprobe_at = -1  # the size nprobe was last set for
        self.dirty = False  # changed since loaded or saved
        # Background training: the lists are trained on a snapshot in a thread while the current
        # index keeps serving; changes made meanwhile are logged and replayed before the swap.
        self.background = background
        self._training: threading.Thread | None = None
        self._trained: faiss.Index | None = None
        # (ids, vectors or None: removed, their lists in the index trained from or None)
        self._replay: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        self.training_progress: tqdm | None = None  # the bar of a background training, while it runs
        self._saving: threading.Thread | None = None  # a save writing a copy of the index
        self.header: dict[str, object] = {}  # the saved file's other metadata fields, after load

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def device(self) -> str:
        return "cuda" if self._use_gpu and not self.approximate else "cpu"

    @property
    def approximate(self) -> bool:
        """True once the index is an IVF (approximate search, O(1) add and remove)."""
        return isinstance(self._index, faiss.IndexIVF)

    @property
    def nlist(self) -> int:
        """How many IVF lists the keys are spread over (0 while the index is flat)."""
        return int(self._index.nlist) if self.approximate else 0

    @property
    def nprobe(self) -> int:
        """How many IVF lists a search scans (0 while the index is flat): enough for about
        16k keys, set again by the first search after the index's size changed."""
        return int(self._index.nprobe) if self.approximate else 0

    def ids(self) -> np.ndarray:
        """Every id in the index, sorted (cached until the next change)."""
        if self._ids is None:
            self._ids = np.sort(self._all_ids())
        return self._ids

    def _all_ids(self) -> np.ndarray:
        """The ids in storage order (IVF: list by list)."""
        return self._ids_by_list(with_lists=False)[0]

    def _ids_by_list(self, *, with_lists: bool = True) -> tuple[np.ndarray, _ListHint | None]:
        """The ids in storage order and, on an IVF (``with_lists``), its centroids and each id's list."""
        if not self.approximate:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64), None
        inv = self._index.invlists
        sizes = np.array([inv.list_size(i) for i in range(inv.nlist)], dtype=np.int64)
        parts = [faiss.rev_swig_ptr(inv.get_ids(int(i)), int(sizes[i])).copy() for i in np.flatnonzero(sizes)]
        ids = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        if not with_lists:
            return ids, None
        return ids, _ListHint(self._index.quantizer.reconstruct_n(0, inv.nlist), np.repeat(np.arange(inv.nlist, dtype=np.int64), sizes))

    def _snapshot(self) -> tuple[np.ndarray, Callable[[], np.ndarray], _ListHint | None]:
        """What a retraining starts from: every id in storage order, a function that gives their
        stored vectors, and on an IVF where each sits.

        An IVF's float16 codes are its vectors: they are copied here as bytes, list by list (the
        index may change as soon as this returns), and decoded by the function, which a background
        training calls from its own thread: copying bytes holds the writer's thread for less time
        than reconstructing the vectors would (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
        ids, hint = self._ids_by_list()
        ivf = self._index
        sq = getattr(faiss.downcast_index(ivf), "sq", None) if hint is not None else None
        if sq is None or ivf.by_residual or sq.qtype != faiss.ScalarQuantizer.QT_fp16:  # codes are not the vectors
            vectors = self.reconstruct(ids)
            return ids, lambda: vectors, hint
        inv, dim = ivf.invlists, self.dim
        sizes = [inv.list_size(i) for i in range(inv.nlist)]
        codes = np.empty(sum(sizes) * inv.code_size, dtype=np.uint8)
        at = 0
        for i, size in enumerate(sizes):
            if size:
                n = size * inv.code_size
                codes[at : at + n] = faiss.rev_swig_ptr(inv.get_codes(i), n)
                at += n
        return ids, lambda: codes.view(np.float16).reshape(-1, dim).astype(np.float32), hint

    def _changed(self) -> None:
        self._gpu_index = None
        self._ids = None
        self.dirty = True
        self._nprobe_at = -1  # recomputed by the next search

    def prepare(self, vectors: np.ndarray) -> Prepared:
        """The part of an add that changes nothing: the unit vectors and, on an IVF, the list each
        goes to (a search of the list centroids, most of an add's time at a million keys). It
        reads the index without changing it, so a bulk add runs it in a thread while it commits
        the rows to SQL, then hands it to :meth:`add`."""
        index = self._index
        unit = normalize(vectors)
        lists = None
        if isinstance(index, faiss.IndexIVF) and len(unit):
            _, lists = index.quantizer.search(unit, 1)
            lists = np.ascontiguousarray(lists.reshape(-1), dtype=np.int64)
        return Prepared(index, unit, lists)

    def add(self, ids: np.ndarray, vectors: np.ndarray | None = None, *, prepared: Prepared | None = None) -> None:
        """Insert or replace the vectors of ``ids`` (given as ``vectors``, or as what
        :meth:`prepare` made of them)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return
        if prepared is None:
            prepared = Prepared(None, normalize(vectors), None)
        unit = prepared.unit
        if len(unit) != len(ids):
            raise ValueError(f"{len(unit)} vectors for {len(ids)} ids")
        self._swap_if_trained()
        if self._max_id is None:
            self._max_id = int(self._all_ids().max(initial=-1))
        # Ids above every id ever added (the store's new slots) cannot be present: skip the
        # removal, which on a flat index is a scan of all N ids.
        if int(ids.min()) <= self._max_id:
            self.remove(ids)
        if self._training is not None:  # after the removal, which logs itself
            self._replay.append((ids, unit, prepared.lists if prepared.index is self._index else None))
        if prepared.lists is not None and prepared.index is self._index:  # assigned to these lists
            self._index.add_core(len(ids), faiss.swig_ptr(unit), faiss.swig_ptr(ids), faiss.swig_ptr(prepared.lists))
        else:
            self._index.add_with_ids(unit, ids)
        self._max_id = max(self._max_id, int(ids.max()))
        self._changed()
        if self.approximate_from is not None and len(self) >= self.approximate_from and self._training is None and (
            not self.approximate or len(self) >= _IVF_REGROW * self._trained_at
        ):
            if self.background:
                self._train_in_background()
            else:
                self._train_ivf()

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        self._swap_if_trained()
        if self._training is not None and len(ids):
            self._replay.append((ids, None, None))
        if len(ids) == 0 or len(self) == 0:
            return 0
        if self.approximate:  # the hash-table id map removes listed ids in O(len(ids))
            ids = np.unique(ids)
            n = int(self._index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))))
        else:
            n = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        if n:
            self._changed()
        return n

    def _train_ivf(self) -> None:
        """Move every key into an IVF with about 2 sqrt(N) lists trained on a sample of the keys."""
        ids, vectors, hint = self._snapshot()
        self._install(_build_ivf(self.dim, ids, vectors(), hint=hint), len(ids))

    def _install(self, ivf: faiss.Index, trained_at: int) -> None:
        self._index = ivf
        self._trained_at = trained_at
        self._set_nprobe()
        self._changed()

    def _train_in_background(self) -> None:
        """Start training on a snapshot of the keys; the current index serves until the swap."""
        ids, vectors, hint = self._snapshot()
        self._replay = []
        from tqdm.auto import tqdm  # off the path of opening a store

        self.training_progress = tqdm(total=len(ids), desc="training approximate key index", unit="key", disable=len(ids) < 50_000 or None)

        def work() -> None:
            self._trained = _build_ivf(self.dim, ids, vectors(), self.training_progress, hint)

        self._training = threading.Thread(target=work, name="mindstore-ivf-training", daemon=True)
        self._training.start()

    def _swap_if_trained(self) -> None:
        """If a background training has finished, replay the changes made since its snapshot onto
        the new index and start using it."""
        if self._training is None or self._training.is_alive():
            return
        self._training.join()
        ivf, self._trained, self._training = self._trained, None, None
        self.training_progress.close()
        self.training_progress = None
        if ivf is None:  # the thread failed: keep the current index, train again on the next add
            return
        trained_at = int(ivf.ntotal)
        # Lists in the replay are the serving index's, which the training started from.
        old = self._index.quantizer.reconstruct_n(0, self._index.nlist) if self.approximate else None
        near = _near_lists(ivf, old) if old is not None and any(lists is not None for _, _, lists in self._replay) else None
        for ids, vectors, lists in self._replay:
            uniq = np.unique(ids)
            ivf.remove_ids(faiss.IDSelectorArray(len(uniq), faiss.swig_ptr(uniq)))
            if vectors is not None:
                _add_near(ivf, ids, vectors, None if lists is None or old is None else _ListHint(old, lists), near=near)
        self._replay = []
        self._install(ivf, trained_at)
        self._max_id = None

    def wait_trained(self, timeout: float | None = None) -> bool:
        """Wait for a background training to finish and swap it in; True if none is running."""
        self.join_training(timeout)
        self._swap_if_trained()
        return self._training is None

    def join_training(self, timeout: float | None = None) -> None:
        """Only wait for a background training (changes nothing: callers that serialise access to
        the index can wait without holding their lock, then swap with ``wait_trained(0)``)."""
        thread = self._training
        if thread is not None:
            thread.join(timeout)

    def _set_nprobe(self) -> None:
        """Probe enough lists to scan about ``_IVF_SCAN`` keys at the index's current size."""
        ivf = self._index
        ivf.nprobe = int(min(ivf.nlist, max(8, _IVF_SCAN * ivf.nlist // max(len(self), 1))))

    def reset(self) -> None:
        if self._training is not None:  # let it finish, then drop what it built
            self._training.join()
            self._training, self._trained, self._replay = None, None, []
            self.training_progress.close()
        self._index.reset()
        self._changed()

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored (normalised, float16-rounded) vectors of ``ids``, which must all be present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # One call for both kinds (the IVF looks ids up in its hash-table direct map), not a Python
        # loop of single reconstructs (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
        return self._index.reconstruct_batch(ids)

    def search(
        self, queries: np.ndarray, k: int, *, subset: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by cosine for each query row: (scores, ids), padded with (-inf, -1).

        ``subset`` restricts the search to those ids (ids absent from the index are ignored).
        Ties are broken by the smaller id so results are reproducible. Exact on a flat index and
        for small subsets; once the index is approximate, the best keys outside the lists probed
        can be missed.
        """
        self._swap_if_trained()
        q = normalize(queries)
        n = len(q)
        total = len(self)
        if subset is not None:
            subset = np.ascontiguousarray(subset, dtype=np.int64).reshape(-1)
            if len(subset) <= max(2048, total // 16):
                return self._search_direct(q, k, subset)
        if total == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        kk = min(k, total)
        if self.approximate and self._nprobe_at != total:
            self._set_nprobe()
            self._nprobe_at = total
        with _omp_threads(n):
            if subset is None:
                scores, ids = self._search_index().search(q, kk)
            else:
                sel = faiss.IDSelectorBatch(subset)
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self._index.nprobe) if self.approximate else faiss.SearchParameters(sel=sel)
                scores, ids = self._index.search(q, kk, params=params)
        return _pad(_tiebreak(scores, ids), n, k)

    def recall(self, k: int = 10, *, sample: int = 100, seed: int = 0) -> float:
        """Recall@k of this index's search against an exhaustive scan of the same codes, for
        ``sample`` of its own keys as queries (1.0 for a flat index: it is the exhaustive scan)."""
        if not self.approximate or len(self) == 0:
            return 1.0
        ids = self._all_ids()
        queries = self.reconstruct(np.random.default_rng(seed).choice(ids, size=min(sample, len(ids)), replace=False))
        kk = min(k, len(self))
        if self._nprobe_at != len(self):
            self._set_nprobe()
            self._nprobe_at = len(self)
        _, got = self._index.search(queries, kk)
        _, exact = self._index.search(queries, kk, params=faiss.SearchParametersIVF(nprobe=self._index.nlist))
        return float(np.mean([len(set(g) & set(e)) / kk for g, e in zip(got, exact)]))

    def _search_direct(self, q: np.ndarray, k: int, subset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(q)
        subset = np.unique(subset)
        if len(subset) and len(self):
            subset = subset[np.isin(subset, self.ids(), assume_unique=True)]
        else:
            subset = subset[:0]
        if len(subset) == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
        sims = q @ self.reconstruct(subset).T  # (n, |subset|)
        kk = min(k, len(subset))
        # sort by (-score, id): subset is sorted ascending, and a stable sort keeps that order.
        order = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
        scores = np.take_along_axis(sims, order, axis=1).astype(np.float32)
        return _pad((scores, subset[order]), n, k)

    def _search_index(self):  # noqa: ANN202 - a faiss index
        if not self._use_gpu or self.approximate:  # an IVF search is cheap enough on the CPU
            return self._index
        if self._gpu_index is None:
            # The GPU cloner knows flat float indexes, not float16 codes: decode into one.
            flat = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            if len(self):
                order = faiss.vector_to_array(self._index.id_map).astype(np.int64)
                flat.add_with_ids(self._index.index.reconstruct_n(0, len(self)), order)
            self._gpu_res = getattr(self, "_gpu_res", None) or faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, flat)
        return self._gpu_index

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: Path, *, seq: int | None = None, background: bool = False, header: dict[str, str] | None = None) -> None:
        """Write the index and its metadata atomically (temp file, then rename). ``seq`` (default:
        ``self.seq``) is the change sequence recorded as applied, for a reopen to catch up from;
        ``header``: more fields for the metadata (what binds the file to its database).

        A save that cannot write (the folder is a file, the file a folder, the disk full) logs a
        warning and leaves the index dirty: the file is a cache, and the next open rebuilds it.

        ``background``: write a copy of the index from a thread and return at once. Copying is a
        memory copy (the index's size again in memory, for a moment), the write and
        its fsync are what takes long, and the index stays free for adds and searches meanwhile.
        Saves run one at a time: each first waits for the one before (:meth:`join_save`)."""
        self.join_save()
        path = Path(path)
        meta = {**(header or {}), "format": _FORMAT, "dim": self.dim, "seq": int(self.seq if seq is None else seq), "count": len(self), "trained_at": self._trained_at}
        if not background:
            try:
                _write_index(self._index, path, meta)
            except OSError as exc:
                log.warning("cannot save the key index to %s (%s); it is rebuilt on the next open", path, exc)
                self.dirty = True
                return
            self.dirty = False
            return
        copy = faiss.clone_index(self._index)
        self.dirty = False

        def work() -> None:
            try:
                _write_index(copy, path, meta)
            except Exception as exc:  # the file on disk is still the last whole save
                log.warning("saving the key index to %s failed (%s); it is saved again later", path, exc)
                self.dirty = True

        # Not a daemon: a program that exits without closing its store still finishes the write.
        self._saving = threading.Thread(target=work, name="mindstore-index-save")
        self._saving.start()

    @property
    def saving(self) -> bool:
        """A save started with ``background=True`` is still writing."""
        return self._saving is not None and self._saving.is_alive()

    def join_save(self) -> None:
        """Wait for a save running in the background, if any."""
        thread, self._saving = self._saving, None
        if thread is not None:
            thread.join()

    @classmethod
    def load(cls, path: Path, *, dim: int, device: str = "auto", approximate_from: int | None = None, background: bool = False) -> KeyIndex:
        """Read an index saved by :meth:`save`; raise :class:`IndexFileError` if it is not sound."""
        path = Path(path)
        try:
            with _renames_locked(path, exclusive=False):  # the pair from one save, not one from each of two
                meta = json.loads(_meta_path(path).read_text())
                f = open(path, "rb")
        except (OSError, ValueError) as exc:
            raise IndexFileError(f"cannot read {path}: {exc}") from exc
        with f:
            if not isinstance(meta, dict) or any(not isinstance(meta.get(k), int) or isinstance(meta.get(k), bool) for k in _META_INTS):
                raise IndexFileError(f"{path}'s metadata is not a mindstore index's ({str(meta)[:80]})")
            if meta.get("format") != _FORMAT or meta.get("dim") != dim:
                raise IndexFileError(f"{path} has format {meta.get('format')} / dim {meta.get('dim')}")
            # Streamed twice through one open file (a save renames a new file over this one, and
            # this handle keeps reading the old): the checksum first, then FAISS reads the index
            # from the same handle. Never more than one chunk of the file is held in memory
            # besides the index itself; reading it whole first doubled a cold open's peak memory.
            # (FAISS can memory-map an IVF only as read-only lists, and every write adds to them.)
            size, crc = 0, 0
            while chunk := f.read(_READ_CHUNK):
                size += len(chunk)
                crc = zlib.crc32(chunk, crc)
            if size != meta.get("bytes") or crc != meta.get("crc32"):
                raise IndexFileError(f"{path} is damaged (size or checksum differs from its metadata)")
            f.seek(0)
            try:
                index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
            except RuntimeError as exc:
                raise IndexFileError(f"{path} is not a FAISS index: {exc}") from exc
        if index.d != dim or index.ntotal != meta["count"]:
            raise IndexFileError(f"{path} holds {index.ntotal} vectors of dim {index.d}")
        self = cls(dim, device=device, approximate_from=approximate_from, background=background)
        # read_index already hands back the concrete class; a downcast copy would not own it.
        self._index = index
        if isinstance(self._index, faiss.IndexIVF):
            trained_at = meta.get("trained_at")
            self._trained_at = trained_at if isinstance(trained_at, int) and trained_at > 0 else len(self)
            self._set_nprobe()
        elif not isinstance(self._index, faiss.IndexIDMap2):
            raise IndexFileError(f"{path} is not an id-mapped index")
        self._max_id = None
        self.seq = int(meta["seq"])
        self.header = {k: v for k, v in meta.items() if k not in (*_META_INTS, "trained_at")}
        return self


class _ListHint(NamedTuple):
    """Where keys sat in the IVF a retraining replaces: its centroids, and each key's list."""

    centroids: np.ndarray
    lists: np.ndarray


def _build_ivf(dim: int, ids: np.ndarray, vectors: np.ndarray, bar: tqdm | None = None, hint: _ListHint | None = None) -> faiss.Index:
    """An IVF of :func:`_ivf_lists` lists trained on a sample of ``vectors``, holding all of them
    (``hint``: their lists in the IVF it replaces, see :func:`_add_near`)."""
    n = len(ids)
    ivf = _trained_ivf(dim, vectors, _ivf_lists(n))
    near = None if hint is None else _near_lists(ivf, hint.centroids)
    for start in range(0, n, 100_000):
        part = slice(start, start + 100_000)
        _add_near(ivf, ids[part], vectors[part], None if hint is None else _ListHint(hint.centroids, hint.lists[part]), near=near)
        if bar is not None:
            bar.update(min(100_000, n - start))
    return ivf


def _near_lists(ivf: faiss.Index, old_centroids: np.ndarray, near: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A new ``ivf``'s centroids, and for each old list the ``near`` new lists closest to its
    centroid (computed once per retraining, for every :func:`_add_near` of it)."""
    centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist)
    _, cand = faiss.knn(old_centroids, centroids, min(near, ivf.nlist), metric=faiss.METRIC_INNER_PRODUCT)
    return centroids, cand


def _add_near(ivf: faiss.Index, ids: np.ndarray, vectors: np.ndarray, hint: _ListHint | None, *, near: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Add ``vectors`` to a new ``ivf``, each to its nearest list, or with ``hint`` (the lists they
    sat in before a retraining) to the nearest of the 32 new lists closest to its old list's
    centroid (``near``: :func:`_near_lists` of it, if already computed).

    Assigning every key of a retraining against all the new centroids is a search of the whole
    quantizer per key; a key's old list already says where it is, and scoring 32 candidates costs a
    fraction of that. Nearly every key lands in the same list as with the full search, the rest
    in one next to it, and recall is unchanged (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    if hint is None or len(ids) == 0:
        ivf.add_with_ids(vectors, ids)
        return
    centroids, cand = near if near is not None else _near_lists(ivf, hint.centroids)
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


def _ivf_lists(n: int) -> int:
    """How many lists an IVF of ``n`` keys gets: about 2 sqrt(n).

    A search scans a fixed ~16k keys (``_IVF_SCAN``), so more lists buy a finer partition, not
    less scanning, while k-means costs lists x sample and the sample grows with the lists: more
    lists than 2 sqrt(n) cost k-means time and buy no recall (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them)."""
    return max(1, min(int(2 * np.sqrt(n)), n // 40))  # k-means wants ~40 points a list


def _trained_ivf(dim: int, vectors: np.ndarray, nlist: int) -> faiss.Index:
    """An empty IVF of ``nlist`` lists (float16 codes of the vectors themselves, a hash-table id
    map) whose centroids are k-means on up to 40 of ``vectors`` a list."""
    n = len(vectors)
    sample = vectors[np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)]
    ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    ivf.by_residual = False  # codes are the float16 vectors themselves, as in the flat index
    ivf.train(sample)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    return ivf


def _write_index(index: faiss.Index, path: Path, meta: dict[str, int]) -> None:
    """``index`` to ``path`` and ``meta`` (plus its size and CRC-32) beside it, each through a temp
    file and a rename, so a reader finds the old file or the new one, never half of one.

    Several processes can save one space's index (each keeps its own). Each writes temp files of
    its own: with one shared temp name a second save truncated the file the first was writing,
    and the first went on writing into it after the second had renamed it into place, so the
    next open found it damaged and rebuilt from SQL. The two renames happen under an exclusive
    lock and :meth:`KeyIndex.load` opens the pair under a shared one, so the index and its
    metadata always come from the same save."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    # Streamed to the file, the checksum taken on the way: serialising to memory first
    # (faiss.serialize_index) grows a buffer and copies it twice, most of a save's time
    # (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
    size, crc = 0, 0
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:

            def write(chunk: bytes) -> None:
                nonlocal size, crc
                size += len(chunk)
                crc = zlib.crc32(chunk, crc)
                f.write(chunk)

            faiss.write_index(index, faiss.PyCallbackIOWriter(write))
            f.flush()
            os.fsync(f.fileno())
        meta_path = _meta_path(path)
        tmp_meta = _temp_path(meta_path)
        tmp_meta.write_text(json.dumps({**meta, "bytes": size, "crc32": crc}))
        with _renames_locked(path, exclusive=True):
            os.replace(tmp, path)
            os.replace(tmp_meta, meta_path)
    finally:
        for t in (tmp, _temp_path(_meta_path(path))):
            t.unlink(missing_ok=True)


def _temp_path(path: Path) -> Path:
    """A temp file beside ``path`` that no other save writes: ``<name>.<host>-<pid>-<thread>.tmp``."""
    return path.with_name(f"{path.name}.{_HOST}-{os.getpid()}-{threading.get_ident()}.tmp")


def _remove_stale_temps(path: Path) -> None:
    """Delete this host's temp files of saves whose process has died (a save cut short by a kill
    leaves one, as large as the index). Also matches the metadata's, ``<name>.json.<...>.tmp``."""
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        owner = tmp.name[: -len(".tmp")].rsplit(".", 1)[-1].split("-")
        if len(owner) != 3 or owner[0] != _HOST or not owner[1].isdigit() or int(owner[1]) == os.getpid():
            continue
        try:
            os.kill(int(owner[1]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive, only not ours to signal
            pass


@contextmanager
def _renames_locked(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold ``<path>.lock`` (flock: shared to read the pair, exclusive for a save's renames) where
    the platform, the folder and the file system allow it; otherwise nothing is locked (no flock
    on Windows, a read-only folder that no save writes to, some network mounts)."""
    try:
        import fcntl

        lock = open(path.with_name(path.name + ".lock"), "a")
    except (ImportError, OSError):
        lock = None
    with lock if lock is not None else nullcontext():
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:
            lock = None
        try:
            yield
        finally:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _tiebreak(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order each row by (-score, id) so equal scores come back in a fixed order."""
    order = np.lexsort((ids, -scores), axis=1) if scores.size else np.zeros_like(ids)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def _pad(result: tuple[np.ndarray, np.ndarray], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = result
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.hstack([scores, np.full((n, pad), -np.inf, np.float32)])
        ids = np.hstack([ids, np.full((n, pad), -1, np.int64)])
    return scores, ids.astype(np.int64)
