"""The key index's file: written atomically beside a JSON of its metadata (size, CRC-32), read
back only when sound. An index folder may be shared by processes and hosts."""

from __future__ import annotations

import json
import os
import socket
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from .._lazy import lazy_module

faiss = lazy_module("faiss")  # imported on first use: reading rows never needs it

__all__ = ["FORMAT", "HOST", "META_INTS", "IndexFileError", "read_index", "write_index"]

FORMAT = 1
META_INTS = ("format", "dim", "seq", "count", "bytes", "crc32")  # what a saved index's metadata must hold
HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"  # in temp file names: an index folder may be shared
_READ_CHUNK = 16 << 20  # bytes read at a time while checking an index file


class IndexFileError(Exception):
    """An index file is missing, damaged, or does not match its metadata (internal: rebuild)."""


def read_index(path: Path, dim: int) -> tuple[Any, dict[str, Any]]:
    """The FAISS index saved at ``path`` and its metadata; :class:`IndexFileError` if the pair is
    not sound (unreadable, another format or dim, damaged, or not what the metadata says)."""
    path = Path(path)
    try:
        with renames_locked(path, exclusive=False):  # the pair from one save, not one from each of two
            meta = json.loads(meta_path(path).read_text())
            f = open(path, "rb")
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"cannot read {path}: {exc}") from exc
    with f:
        if not isinstance(meta, dict) or any(not isinstance(meta.get(k), int) or isinstance(meta.get(k), bool) for k in META_INTS):
            raise IndexFileError(f"{path}'s metadata is not a mindstore index's ({str(meta)[:80]})")
        if meta.get("format") != FORMAT or meta.get("dim") != dim:
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
    return index, meta


def write_index(index: faiss.Index, path: Path, meta: dict[str, int]) -> None:
    """``index`` to ``path`` and ``meta`` (plus its size and CRC-32) beside it, each through a temp
    file and a rename, so a reader finds the old file or the new one, never half of one.

    Several processes can save one space's index (each keeps its own). Each writes temp files of
    its own: with one shared temp name a second save truncated the file the first was writing,
    and the first went on writing into it after the second had renamed it into place, so the
    next open found it damaged and rebuilt from SQL. The two renames happen under an exclusive
    lock and :func:`read_index` opens the pair under a shared one, so the index and its
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
        meta_file = meta_path(path)
        tmp_meta = _temp_path(meta_file)
        tmp_meta.write_text(json.dumps({**meta, "bytes": size, "crc32": crc}))
        with renames_locked(path, exclusive=True):
            os.replace(tmp, path)
            os.replace(tmp_meta, meta_file)
    finally:
        for t in (tmp, _temp_path(meta_path(path))):
            t.unlink(missing_ok=True)


def _temp_path(path: Path) -> Path:
    """A temp file beside ``path`` that no other save writes: ``<name>.<host>-<pid>-<thread>.tmp``."""
    return path.with_name(f"{path.name}.{HOST}-{os.getpid()}-{threading.get_ident()}.tmp")


def _remove_stale_temps(path: Path) -> None:
    """Delete this host's temp files of saves whose process has died (a save cut short by a kill
    leaves one, as large as the index). Also matches the metadata's, ``<name>.json.<...>.tmp``."""
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        owner = tmp.name[: -len(".tmp")].rsplit(".", 1)[-1].split("-")
        if len(owner) != 3 or owner[0] != HOST or not owner[1].isdigit() or int(owner[1]) == os.getpid():
            continue
        try:
            os.kill(int(owner[1]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive, only not ours to signal
            pass


@contextmanager
def renames_locked(path: Path, *, exclusive: bool) -> Iterator[None]:
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


def meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")

