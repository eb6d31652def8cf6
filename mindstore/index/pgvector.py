"""The key index on PostgreSQL + pgvector: a space's keys in a table of the store's own database.

Where the FAISS :class:`~mindstore.index.KeyIndex` is a per-process copy of every key, this one
keeps them beside the slots, so many stateless processes share one index and open it cold in a
connection's time. Rules it keeps, the FAISS index's rules too:

- Keys are L2-normalised on the way in and scored by inner product, i.e. cosine similarity; the
  HNSW index uses ``vector_ip_ops`` (``halfvec_ip_ops`` with ``half=True``, float16 like FAISS's
  codes). ``search`` returns ``(scores, ids)`` of shape ``(n, k)``, best first, ties by the smaller
  id, padded with ``(-inf, -1)``.
- A scoped search filters in the same SQL statement (a join with ``slots``), so nothing outside
  ``where`` ever leaves the database. pgvector 0.8's iterative index scan keeps an HNSW scan going
  until ``k`` rows pass the filter; a ``where`` that matches at most ``exact_below`` slots is
  scored exactly over those slots instead (as FAISS scores small subsets directly).
- Each space has its own table, ``<prefix><space id>`` (slot id primary key, ``vector(dim)``
  key), by default with a foreign key to ``slots`` that deletes a slot's key with the slot.

Vectors travel without a new dependency, in pgvector's binary form built with numpy: a query as a
binary parameter (psycopg; other drivers send its text form), bulk writes through binary ``COPY``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Column, Float, MetaData, Table, any_, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import UserDefinedType

from ..db.models import SlotRow
from ..errors import DatabaseError, InvalidInputError, PgVectorMissingError
from ..validate import check_vectors
from .runtime import normalize

__all__ = ["EF_SEARCH", "PgVectorKeys", "PgVectorMissingError", "ensure_pgvector"]

MIN_VERSION = (0, 8, 0)  # iterative index scans (hnsw.iterative_scan)
MAX_HNSW_DIM = {"vector": 2000, "halfvec": 4000}  # pgvector's HNSW limits
# Candidates an HNSW search keeps: recall@10 must stay >= 0.95 at 1e6 keys on any build of the
# graph (m 16, ef_construction 64); 100 fell short on some (docs/architecture.md, "Which key index").
EF_SEARCH = 200
_WIRE = {"vector": ">f4", "halfvec": ">f2"}  # a key's numbers in pgvector's binary form (vector_recv, halfvec_recv)
COPY_FROM = 512  # rows: a write of at least this many goes through binary COPY
_LOCK = 0x70677663  # advisory lock serialising CREATE EXTENSION / TABLE across processes
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_SLOTS = SlotRow.__table__
_GUCS = ("hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples")  # the scan's settings, in _prepare_scan's order
_SETTINGS = "mindstore.hnsw_settings"  # Connection.info: the settings a session holds
_DUMPER = "mindstore.vector_dumper"  # Connection.info: psycopg sends _PgVectorBytes in binary here
Where = ColumnElement[bool] | Sequence[ColumnElement[bool]] | None


def missing_message(database: str, *, available: str | None, installed: str | None = None) -> str:
    """What to tell a user whose database lacks a usable pgvector (pure: tested on its own).
    ``available``: the version the server could create (None: not installed on the server);
    ``installed``: the version created in the database, when it is too old."""
    need = ".".join(map(str, MIN_VERSION))
    if installed is not None:
        return (f"database {database} has pgvector {installed}; the pgvector key index needs {need} or newer. "
                f"Install a newer pgvector on the server, then run ALTER EXTENSION vector UPDATE in that database")
    if available is not None:
        return (f"pgvector {available} is installed on the server but not created in database {database}, and this user "
                f"may not create it: ask a superuser to run CREATE EXTENSION vector in that database")
    return (f"the PostgreSQL server of database {database} lacks the pgvector extension ({need} or newer). Install it on the "
            "server (Debian/Ubuntu: apt install postgresql-<version>-pgvector; from source: "
            "https://github.com/pgvector/pgvector#installation), then run CREATE EXTENSION vector in that database, "
            "or use the FAISS key index (Config(key_index='faiss'))")


def build_memory(n: int, dim: int, *, half: bool = False) -> str:
    """``maintenance_work_mem`` for building the HNSW graph of ``n`` keys once: about twice the
    keys' size, so that the graph and its keys stay in memory (past it the build goes on inserting
    into the on-disk graph, several times slower), between 1 and 8 GB."""
    gb = math.ceil(2 * n * dim * (2 if half else 4) / 2**30)
    return f"{min(8, max(1, gb))}GB"


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:3])


def ensure_pgvector(conn: Connection) -> str:
    """The version of the ``vector`` extension in ``conn``'s database, created first if the
    server has it and this user may (``CREATE EXTENSION IF NOT EXISTS``). Raises
    :class:`PgVectorMissingError` with how to install it otherwise, or when it is older than 0.8."""
    if conn.dialect.name != "postgresql":
        raise DatabaseError(f"the pgvector key index needs a PostgreSQL store, not {conn.dialect.name}; use the FAISS key index")
    database = conn.engine.url.database or "?"
    installed = conn.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    if installed is None:
        available = conn.scalar(text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"))
        if available is None:
            raise PgVectorMissingError(missing_message(database, available=None))
        try:
            with conn.begin_nested():
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:  # insufficient privilege: vector is not a trusted extension
            raise PgVectorMissingError(missing_message(database, available=available)) from exc
        installed = conn.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    if _version(installed) < MIN_VERSION:
        raise PgVectorMissingError(missing_message(database, available=None, installed=installed))
    return str(installed)


class _VectorType(UserDefinedType):
    """pgvector's ``vector(dim)`` / ``halfvec(dim)`` as an SQLAlchemy type (DDL and casts only)."""

    cache_ok = True

    def __init__(self, kind: str, dim: int) -> None:
        self.kind, self.dim = kind, dim

    def get_col_spec(self, **_: object) -> str:
        return f"{self.kind}({self.dim})"


class PgVectorKeys:
    """One space's keys in PostgreSQL with an HNSW index: add, remove, count, search.

    ``engine``: the store's (PostgreSQL, psycopg 3 for binary ``COPY``). Every method takes an
    optional ``conn`` to run inside the caller's transaction (a slot and its key committed
    together); without one it runs in a transaction of its own. ``ef_search`` trades search time
    for recall (default :data:`EF_SEARCH`); ``m`` and ``ef_construction`` are the HNSW build parameters.
    ``create``: make the extension, table and index if missing (else they must exist)."""

    def __init__(self, engine: Engine, space_id: int, dim: int, *, half: bool = False, schema: str | None = None,
                 prefix: str = "mindstore_keys_", foreign_key: bool = True, m: int = 16, ef_construction: int = 64,
                 ef_search: int = EF_SEARCH, exact_below: int = 2048, create: bool = True) -> None:
        self.kind = "halfvec" if half else "vector"
        if not 0 < int(dim) <= MAX_HNSW_DIM[self.kind]:
            raise InvalidInputError(f"pgvector's HNSW index holds {self.kind} keys of 1 to {MAX_HNSW_DIM[self.kind]} dimensions, not {dim}"
                                    + ("; use half=True (halfvec) for up to 4000" if not half else ""))
        for name in (schema, prefix):
            if name is not None and not _NAME.match(name):
                raise InvalidInputError(f"{name!r} is not a plain lower-case SQL name (letters, digits, _)")
        self.engine, self.space_id, self.dim = engine, int(space_id), int(dim)
        self.ef_search, self.exact_below = int(ef_search), int(exact_below)
        self._plain: dict[tuple[int, bool], Any] = {}  # (k, exact) -> the search statement without predicates
        self.m, self.ef_construction, self.foreign_key = int(m), int(ef_construction), foreign_key
        self.table = Table(f"{prefix}{self.space_id}", MetaData(schema=schema), Column("slot_id", BigInteger, primary_key=True),
                           Column("key", _VectorType(self.kind, self.dim), nullable=False))
        self._qualified = f"{schema}.{self.table.name}" if schema else self.table.name
        self._ops = f"{self.kind}_ip_ops"
        with self._begin(None) as c:
            self.version = ensure_pgvector(c)
            if create:
                self._create(c)

    # -- schema -----------------------------------------------------------------------------

    def _create(self, c: Connection) -> None:
        """The table and its HNSW index, if missing (under an advisory lock: processes opening a
        new space at once create it once)."""
        c.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        fk = f" REFERENCES {_SLOTS.name}(id) ON DELETE CASCADE" if self.foreign_key else ""
        c.execute(text(f"CREATE TABLE IF NOT EXISTS {self._qualified} (slot_id BIGINT PRIMARY KEY{fk}, "
                       f"key {self.kind}({self.dim}) NOT NULL)"))
        self._create_index(c)

    def _create_index(self, c: Connection) -> None:
        c.execute(text(f"CREATE INDEX IF NOT EXISTS {self.table.name}_hnsw ON {self._qualified} USING hnsw (key {self._ops}) "
                       f"WITH (m = {self.m}, ef_construction = {self.ef_construction})"))

    def drop_index(self, *, conn: Connection | None = None) -> None:
        """Drop the HNSW index (before a bulk load: building it once after is several times
        faster than growing it row by row). Searches are exact scans until :meth:`build_index`."""
        with self._begin(conn) as c:
            schema = f"{self.table.schema}." if self.table.schema else ""
            c.execute(text(f"DROP INDEX IF EXISTS {schema}{self.table.name}_hnsw"))

    def build_index(self, *, maintenance_work_mem: str = "1GB", workers: int | None = None, conn: Connection | None = None) -> None:
        """Build the HNSW index if missing, then ``ANALYZE`` the table. The build is fast while the
        graph fits in ``maintenance_work_mem`` (about 1.5x the keys' size); ``workers``: parallel
        build workers. After a bulk load, ``ANALYZE slots`` too (the store's part): scoped plans
        depend on both tables' statistics."""
        if not re.fullmatch(r"\d+\s*[kMG]B", maintenance_work_mem):
            raise InvalidInputError(f"maintenance_work_mem must look like '512MB' or '2GB', not {maintenance_work_mem!r}")
        with self._begin(conn) as c:
            c.execute(text("SELECT set_config('maintenance_work_mem', :v, true)"), {"v": maintenance_work_mem})
            if workers is not None:
                c.execute(text("SELECT set_config('max_parallel_maintenance_workers', :v, true)"), {"v": str(int(workers))})
            self._create_index(c)
            # Fresh statistics: with none after a bulk load, the planner takes a scope of
            # thousands of keys for a few and sorts them all instead of walking the graph.
            c.execute(text(f"ANALYZE {self._qualified}"))

    def drop(self, *, conn: Connection | None = None) -> None:
        """Drop the space's key table (its keys stay in ``slots.key``, from which it is rebuilt)."""
        with self._begin(conn) as c:
            c.execute(text(f"DROP TABLE IF EXISTS {self._qualified}"))

    # -- writes -----------------------------------------------------------------------------

    def add(self, ids: np.ndarray | Sequence[int], vectors: np.ndarray, *, conn: Connection | None = None, batch: int = 50_000) -> None:
        """Insert or replace (upsert) the keys of ``ids``, normalised, ``batch`` rows a statement.
        Raises :class:`~mindstore.errors.InvalidVectorError` on a wrong shape, NaN or a zero row,
        before anything is written."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        unit = normalize(check_vectors(vectors, self.dim, "key")) if len(ids) else np.zeros((0, self.dim), np.float32)
        if len(unit) != len(ids):
            raise InvalidInputError(f"{len(unit)} keys for {len(ids)} ids")
        if len(np.unique(ids)) != len(ids):  # ON CONFLICT cannot touch one row twice in a statement
            ids, first = np.unique(ids[::-1], return_index=True)  # the last key given for an id wins
            unit = unit[::-1][first]
        with self._begin(conn) as c:
            for at in range(0, len(ids), batch):
                part_ids, part = ids[at : at + batch], unit[at : at + batch]
                if len(part_ids) >= COPY_FROM and c.dialect.driver == "psycopg":
                    self._copy_upsert(c, part_ids, part)
                else:
                    self._insert_upsert(c, part_ids, part)

    def _insert_upsert(self, c: Connection, ids: np.ndarray, unit: np.ndarray) -> None:
        """A few rows: one ``INSERT ... ON CONFLICT`` per row, sent as a batch (executemany)."""
        stmt = text(f"INSERT INTO {self._qualified} (slot_id, key) VALUES (:id, CAST(:key AS {self.kind}({self.dim}))) "
                    "ON CONFLICT (slot_id) DO UPDATE SET key = EXCLUDED.key")
        c.execute(stmt, [{"id": int(i), "key": v} for i, v in zip(ids.tolist(), unit.tolist())])

    def _copy_upsert(self, c: Connection, ids: np.ndarray, unit: np.ndarray) -> None:
        """Many rows: binary ``COPY`` into a temporary table, then one upsert from it."""
        tmp = f"mindstore_keys_in_{self.kind}_{self.dim}"
        c.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (slot_id BIGINT, key {self.kind}({self.dim})) ON COMMIT DELETE ROWS"))
        c.execute(text(f"TRUNCATE {tmp}"))  # a caller's transaction may hold an earlier batch
        raw = c.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {tmp} (slot_id, key) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_copy_binary(ids, unit, self.kind))
        c.execute(text(f"INSERT INTO {self._qualified} (slot_id, key) SELECT slot_id, key FROM {tmp} "
                       "ON CONFLICT (slot_id) DO UPDATE SET key = EXCLUDED.key"))

    def remove(self, ids: np.ndarray | Sequence[int], *, conn: Connection | None = None) -> int:
        """Delete the keys of ``ids`` (absent ones are ignored); returns how many were there."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return 0
        with self._begin(conn) as c:
            stmt = self.table.delete().where(self.table.c.slot_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
            return int(c.execute(stmt, {"ids": ids.tolist()}).rowcount)

    def count(self, *, conn: Connection | None = None) -> int:
        """How many keys the table holds (what :meth:`__len__` answers too)."""
        with self._begin(conn) as c:
            return int(c.scalar(select(func.count()).select_from(self.table)) or 0)

    def __len__(self) -> int:
        return self.count()

    # -- search -----------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, where: Where = None, subset: np.ndarray | Sequence[int] | None = None,
               ef_search: int | None = None, max_scan_tuples: int = 20_000, exact_below: int | None = None,
               conn: Connection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by cosine for each query row: (scores, ids) as float32 and int64 of shape
        ``(n, k)``, padded with (-inf, -1), ties by the smaller id (the FAISS index's contract).

        ``where``: a predicate (or list of them, all must hold) over the ``slots`` table, e.g.
        :func:`mindstore.db.scope_where`; ``subset``: ids the result must come from. Both filter
        in the same statement. Filtered searches matching at most ``exact_below`` slots (default:
        the instance's) are exact; others walk the HNSW graph iteratively (``relaxed_order``,
        re-sorted here) until ``k`` rows pass or ``max_scan_tuples`` were visited."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, not {k!r:.40}")
        q = normalize(check_vectors(queries, self.dim, "query"))
        preds = [] if where is None else [where] if isinstance(where, ColumnElement) else list(where)
        if subset is not None:
            preds.append(self.table.c.slot_id == any_(literal(np.asarray(subset, dtype=np.int64).reshape(-1).tolist(), ARRAY(BigInteger))))
        limit = self.exact_below if exact_below is None else int(exact_below)
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        with self._begin(conn) as c:
            exact = self._prepare_scan(c, preds, limit, ef_search or self.ef_search, max_scan_tuples)
            stmt = self._search_stmt(preds, k, exact=exact)
            binary = c.dialect.driver == "psycopg"
            if binary and _DUMPER not in c.info:  # a connection's adapters are copied when it is made
                c.connection.dbapi_connection.adapters.register_dumper(_PgVectorBytes, _dumper())
                c.info[_DUMPER] = True
            for row, vec in enumerate(q):
                got = c.execute(stmt, {"q": _binary(vec, self.kind) if binary else _literal(vec.tolist())}).all()
                if got:
                    found = np.array([g[0] for g in got], np.int64)
                    sims = -np.array([g[1] for g in got], np.float32)  # <#> is the negative inner product
                    order = np.lexsort((found, -sims))[:k]
                    scores[row, : len(order)], ids[row, : len(order)] = sims[order], found[order]
        return scores, ids

    def _search_stmt(self, preds: list[ColumnElement[bool]], k: int, *, exact: bool):  # noqa: ANN202 - a Select
        """``SELECT slot_id, key <#> q ... ORDER BY distance LIMIT k``, joined with ``slots``
        when a predicate is given. ``exact``: order by an expression the HNSW index cannot serve
        (``distance + 0``), so the planner scans the few matching slots and sorts them. The query
        is a bare parameter whose type the server takes from ``key`` (see :func:`_binary`); the
        statement of a search without predicates is built once for each ``k``."""
        if not preds and (k, exact) in self._plain:
            return self._plain[k, exact]
        distance = self.table.c.key.op("<#>", return_type=Float)(bindparam("q", type_=_QueryType()))
        stmt = select(self.table.c.slot_id, distance)
        if any(_touches_slots(p) for p in preds):
            stmt = stmt.join_from(self.table, _SLOTS, _SLOTS.c.id == self.table.c.slot_id)
        stmt = stmt.where(*preds).order_by(distance + 0 if exact else distance).limit(k)
        if not preds and len(self._plain) < 64:
            self._plain[k, exact] = stmt
        return stmt

    def _prepare_scan(self, c: Connection, preds: list[ColumnElement[bool]], exact_below: int, ef_search: int,
                      max_scan_tuples: int) -> bool:
        """Set the HNSW scan's settings on ``c`` and, in the same round trip, count the keyed slots
        the predicates match, up to ``exact_below + 1`` (an index range scan for a scope). Returns
        whether the search should be exact. The planner often picks the exact plan for a small
        scope by itself; the count makes it sure, so a tiny scope is never left to a graph walk
        that may stop short of ``k``.

        In a transaction the settings are ``SET LOCAL`` (``set_config(..., true)``), sent with
        every search. On an autocommit connection (the store's reads) a ``SET LOCAL`` would end
        with its statement, so they are set for the session instead, once per connection (noted in
        ``Connection.info``, which the pool clears with the connection): a search there is one
        statement, or two with the count. The iterative scan is always on (``relaxed_order``): a
        search without a filter that asks for at most ``ef_search`` rows stops within the first
        ``ef_search`` candidates, sorted, as with it off, and one that asks for more gets them
        (re-sorted by :meth:`search`) where with it off it would stop at ``ef_search``; so one
        setting serves every search."""
        settings = (str(ef_search), "relaxed_order", str(max_scan_tuples))
        autocommit = bool(getattr(c.connection.dbapi_connection, "autocommit", False))
        cols = []
        if not autocommit or c.info.get(_SETTINGS) != settings:
            local = not autocommit
            cols = [func.set_config(name, value, local) for name, value in zip(_GUCS, settings)]
        probe = bool(preds) and exact_below > 0
        if probe:
            # Over slots alone when the predicates allow (an upper bound: a slot may lack a key),
            # an index-only range scan of a scope; with the key table when they name it.
            if all(_touches_slots(p) and not _touches(p, self.table) for p in preds):
                inner = select(literal(1)).select_from(_SLOTS)
            else:
                inner = select(literal(1)).select_from(self.table).join(_SLOTS, _SLOTS.c.id == self.table.c.slot_id)
            capped = inner.where(*preds).limit(exact_below + 1).subquery()
            cols.append(select(func.count()).select_from(capped).scalar_subquery())
        if not cols:
            return False
        row = c.execute(select(*cols)).one()
        if autocommit:
            c.info[_SETTINGS] = settings
        return probe and int(row[-1]) <= exact_below

    @contextmanager
    def _begin(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's connection as is, or a new one in a transaction committed on success."""
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as c:
            yield c


class _QueryType(UserDefinedType):
    """A query vector's parameter: sent as is, no cast, so the server reads it as the type of the
    ``key`` it is compared with (``vector`` or ``halfvec``), from pgvector's binary form
    (:func:`_binary`, psycopg) or its text form (:func:`_literal`, other drivers)."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "vector"


class _PgVectorBytes(bytes):
    """A query vector in pgvector's binary form; psycopg sends it as a binary parameter."""


def _binary(vec: np.ndarray, kind: str) -> _PgVectorBytes:
    """``vec`` in pgvector's binary form (``vector_recv``/``halfvec_recv``): int16 dim, int16 0,
    big-endian float32 (or float16): 1.5 kB for 384 dims, built in a microsecond, where the text
    form is 8 kB and a quarter of a millisecond of ``repr``."""
    head = len(vec).to_bytes(2, "big") + b"\x00\x00"
    return _PgVectorBytes(head + np.asarray(vec, dtype=_WIRE[kind]).tobytes())


@functools.cache
def _dumper() -> type:
    """psycopg's dumper for :class:`_PgVectorBytes`: binary, with no type named (oid 0), so the
    server infers the parameter's type from the expression it stands in."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class _Dumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: bytes) -> bytes:
            return bytes(obj)

    return _Dumper


def _literal(vec: list[float]) -> str:
    """A query vector in pgvector's text form, ``[x1,x2,...]``: a float32 value's shortest
    repr reads back as that float32, and the text costs a fraction of a float8[] parameter."""
    return "[" + ",".join(map(repr, vec)) + "]"


def _touches(pred: ColumnElement[bool], table: Table) -> bool:
    """Whether a predicate reads a column of ``table``."""
    return any(getattr(e, "table", None) is table for e in visitors.iterate(pred))


def _touches_slots(pred: ColumnElement[bool]) -> bool:
    """Whether a predicate reads a column of the ``slots`` table (then the search joins it)."""
    return _touches(pred, _SLOTS)


def _copy_binary(ids: np.ndarray, unit: np.ndarray, kind: str) -> bytes:
    """Rows ``(slot_id, key)`` in PostgreSQL's binary COPY format, keys in pgvector's binary form
    (int16 dim, int16 0, then big-endian float32, or float16 for ``halfvec``)."""
    n, dim = unit.shape
    width = np.dtype(_WIRE[kind]).itemsize
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("key_len", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
                    ("key", _WIRE[kind], (dim,))])
    rows = np.zeros(n, dtype=row)
    rows["fields"], rows["id_len"], rows["id"] = 2, 8, ids
    rows["key_len"], rows["dim"], rows["key"] = 4 + width * dim, dim, unit
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + rows.tobytes() + (-1).to_bytes(2, "big", signed=True)
