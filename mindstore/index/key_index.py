"""The key index: FAISS over one space's keys, addressed by slot id (see :mod:`mindstore.index`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._lazy import lazy_module
from . import files
from . import ivf as ivf_ops
from .files import IndexFileError
from .ivf import IVF_SCAN, ListHint
from .runtime import flat_codes, gpu_available, normalize, omp_threads

if TYPE_CHECKING:
    from tqdm.auto import tqdm

__all__ = ["KeyIndex", "Prepared"]

_IVF_REGROW = 8  # retrain the IVF lists when the index has grown this many times since training

faiss = lazy_module("faiss")  # imported on first use: reading rows never needs it
log = logging.getLogger("mindstore")


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
        self._index = faiss.IndexIDMap2(flat_codes(self.dim))
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

    def _ids_by_list(self, *, with_lists: bool = True) -> tuple[np.ndarray, ListHint | None]:
        """The ids in storage order and, on an IVF (``with_lists``), its centroids and each id's list."""
        if not self.approximate:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64), None
        inv = self._index.invlists
        sizes = np.array([inv.list_size(i) for i in range(inv.nlist)], dtype=np.int64)
        parts = [faiss.rev_swig_ptr(inv.get_ids(int(i)), int(sizes[i])).copy() for i in np.flatnonzero(sizes)]
        ids = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        if not with_lists:
            return ids, None
        return ids, ListHint(self._index.quantizer.reconstruct_n(0, inv.nlist), np.repeat(np.arange(inv.nlist, dtype=np.int64), sizes))

    def _snapshot(self) -> tuple[np.ndarray, Callable[[], np.ndarray], ListHint | None]:
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
        self._install(ivf_ops.build_ivf(self.dim, ids, vectors(), hint=hint), len(ids))

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
            self._trained = ivf_ops.build_ivf(self.dim, ids, vectors(), self.training_progress, hint)

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
        near = ivf_ops.near_lists(ivf, old) if old is not None and any(lists is not None for _, _, lists in self._replay) else None
        for ids, vectors, lists in self._replay:
            uniq = np.unique(ids)
            ivf.remove_ids(faiss.IDSelectorArray(len(uniq), faiss.swig_ptr(uniq)))
            if vectors is not None:
                ivf_ops.add_near(ivf, ids, vectors, None if lists is None or old is None else ListHint(old, lists), near=near)
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
        """Probe enough lists to scan about ``IVF_SCAN`` keys at the index's current size."""
        ivf = self._index
        ivf.nprobe = int(min(ivf.nlist, max(8, IVF_SCAN * ivf.nlist // max(len(self), 1))))

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
        with omp_threads(n):
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
        meta = {**(header or {}), "format": files.FORMAT, "dim": self.dim, "seq": int(self.seq if seq is None else seq), "count": len(self), "trained_at": self._trained_at}
        if not background:
            try:
                files.write_index(self._index, path, meta)
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
                files.write_index(copy, path, meta)
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
        index, meta = files.read_index(Path(path), dim)
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
        self.header = {k: v for k, v in meta.items() if k not in (*files.META_INTS, "trained_at")}
        return self


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
