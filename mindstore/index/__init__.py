"""The key index: FAISS over one space's keys, addressed by slot id.

It is a derived cache of the keys the SQL store holds. It remembers the change sequence it has
applied (``seq``) so the store can bring it up to date, and it saves itself with a checksum so a
damaged file is detected and rebuilt rather than trusted.

Small spaces are a flat scan (exact). Past ``approximate_from`` keys (off unless configured) the
index becomes an inverted file (IVF, Jegou et al. 2011) with a hash-table id map, so that a search
scans a few lists and adding or removing one key costs O(1) instead of O(N): what a memory that
reads and writes a few slots per step needs at millions of slots (Rae et al. 2016).
"""

from .files import IndexFileError
from .key_index import KeyIndex, Prepared
from .runtime import gpu_available, normalize, one_thread

__all__ = ["IndexFileError", "KeyIndex", "Prepared", "gpu_available", "normalize", "one_thread"]
