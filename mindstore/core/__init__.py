"""The collaborators behind :class:`mindstore.MindStore`, one job each.

The facade (mindstore/store.py) checks nothing itself and keeps no state of its own: each public
method hands its arguments to one of these and returns what it gives back.

- :mod:`.state`: what they all share (engine, sessions, the store's lock, the clock).
- :mod:`.keys`: the text embedder, loaded on first use, and the check that a reopened space
  was built by it.
- :mod:`.registry`: spaces, their FAISS key indexes and BM25 indexes, and index saves.
- :mod:`.usage`: read counts of search hits, buffered and written by a thread.
- :mod:`.wal`: SQLite WAL checkpoints after bulk adds, from a thread.
- :mod:`.writes`: adds (with versions), vector adds and updates.
- :mod:`.deletes`: deletes, retention's evictions and reset.
- :mod:`.search`: scoped dense, lexical and hybrid search.
- :mod:`.reads`: rows to values, get, list, count, scopes, history, keys.
"""
