"""Engine setup: SQLite tuned for durability with concurrency (WAL), any other SQLAlchemy URL as is."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, insert, inspect, select, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ..errors import DatabaseError
from .identity import ensure_store_id
from .models import SCHEMA_VERSION, Base, MetaRow

__all__ = ["open_database", "sqlite_path"]

_BUSY_S = 30  # seconds an SQLite connection waits for another process's lock


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, or None for in-memory and other backends."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _tune_sqlite(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI connection
    cur = dbapi_conn.cursor()
    # 16 KiB pages (a no-op once the file has tables): a slot row with its 1.5 KB key fits ~10 to
    # a page instead of 2, so bulk inserts write fewer pages (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
    # Must come before WAL is set.
    cur.execute("PRAGMA page_size=16384")
    # WAL: readers never block the writer; synchronous=NORMAL in WAL loses nothing on a process
    # crash (only the last commits on power loss). busy_timeout lets two processes share a file.
    # Switching a new file to WAL answers "database is locked" at once, without waiting, while
    # another process holds a lock on it (processes opening a new store together): wait here.
    deadline = time.monotonic() + _BUSY_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={_BUSY_S * 1000}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA cache_size=-16384")  # KiB: the B-tree pages a batch touches stay cached
    cur.close()


_SQLITE_HEADER = b"SQLite format 3\x00"


def _not_ours(where: str, tables: set[str]) -> DatabaseError:
    shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
    return DatabaseError(
        f"{where} is not a mindstore database: it has tables of its own ({shown}) and no mindstore_meta "
        "table. mindstore left it untouched; give a new file (or an empty database) or a store mindstore made"
    )


def _check_sqlite_file(path: Path) -> None:
    """Refuse, before any connection changes it, a file that is not a mindstore database: a file
    that is not SQLite, or a SQLite database with tables and no ``mindstore_meta`` schema version
    (another application's). A missing or empty file, or a database with no tables, is new: it is
    made a store. The hooks of every connection switch a file to WAL, so this reads the file
    read-only through its own connection first."""
    if path.is_dir():
        raise DatabaseError(f"{path} is a folder; give a database file in it, e.g. sqlite:///{path / 'memory.db'}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except NotADirectoryError:  # a parent is a file: reported where the folders are made
        return
    except OSError as exc:
        raise DatabaseError(f"cannot read the database file {path} ({exc.strerror}); check the path and its permissions") from None
    if not head:
        return
    if head != _SQLITE_HEADER:
        raise DatabaseError(f"{path} is not a SQLite database (it holds other data); mindstore left it untouched. Give a new file name or a store mindstore made")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return  # cannot tell here; the check under the schema lock decides
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")}
        if not tables:
            return
        meta = MetaRow.__tablename__
        if meta in tables and {"key", "value"} <= {r[1] for r in conn.execute(f"PRAGMA table_info({meta})")} and conn.execute(
                f"SELECT 1 FROM {meta} WHERE key = 'schema_version'").fetchone() is not None:
            return
    except sqlite3.Error:
        return  # locked, or a hot journal a read-only connection cannot roll back: as above
    finally:
        conn.close()
    raise _not_ours(str(path), tables)


def _make_folders(path: Path) -> list[Path]:
    """The database file's missing folders, made; returns them (deepest first) for undoing."""
    made = []
    for parent in path.parents:
        if parent.exists():
            break
        made.append(parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_folders(made)
        raise DatabaseError(
            f"cannot make the folder {path.parent} for the database ({exc.strerror}: a part of the path is a file, "
            "or not writable); choose another path"
        ) from None
    return made


def _remove_folders(made: list[Path]) -> None:
    for folder in made:  # deepest first; only while empty
        try:
            folder.rmdir()
        except OSError:
            return


def _restore_autocheckpoint(dbapi_conn, record) -> None:  # noqa: ANN001 - DBAPI connection, pool record
    """A bulk add that left its checkpoint to the store's thread turned the connection's automatic
    checkpoint off (``mindstore.core.wal.Checkpoints``); the next user gets it back."""
    pages = record.info.pop("autocheckpoint", None)
    if pages is not None and dbapi_conn is not None:
        dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")


# The PostgreSQL advisory lock that serialises schema creation and upgrades (any fixed number;
# advisory locks are per database).
_SCHEMA_LOCK = 0x6D696E64


def _add_missing_columns(conn: Connection) -> None:
    """Bring a database made by an earlier mindstore up to this schema: columns added since
    (``create_all`` makes missing tables, not missing columns). Each is nullable, so the rows
    there already stay valid. Runs under the schema lock (see :func:`_create_schema`)."""
    for table, column, sql_type in (("events", "slot_last", "BIGINT"), ("slots", "superseded_by", "BIGINT")):
        if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))


def _schema_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(MetaRow.__tablename__):
        return None
    value = conn.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
    try:
        return None if value is None else int(value)
    except ValueError:
        raise DatabaseError(f"this database's schema version is {value!r}, not a number: it is not a mindstore database") from None


def _schema_current(conn: Connection) -> bool:
    """Whether every table, column and index of this mindstore exists at this schema version: an
    open of such a database takes no lock and writes nothing."""
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in tables:
            return False
        if not {c.name for c in table.columns} <= {c["name"] for c in insp.get_columns(table.name)}:
            return False
        if not {i.name for i in table.indexes} <= {i["name"] for i in insp.get_indexes(table.name)}:
            return False
    return _schema_version(conn) == SCHEMA_VERSION


def _create_schema(engine: Engine) -> None:
    """Create the schema, or bring an older one up to date, as one transaction that holds the
    database's schema lock (PostgreSQL: an advisory lock; SQLite: the write lock, taken by
    ``BEGIN IMMEDIATE``), so processes opening a new database at once create it once: the others
    wait, then find it made. A current schema is only inspected."""
    with engine.connect() as conn:
        if _schema_current(conn):
            return
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
        elif engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        version = _schema_version(conn)
        if version is None:
            # Another application's database: leave it as it is. On SQLite every table counts (a
            # store is a file of its own); a PostgreSQL database may hold an application's tables
            # beside a store's, but none named like ours.
            tables = set(inspect(conn).get_table_names())
            if engine.dialect.name != "sqlite":
                tables &= {t.name for t in Base.metadata.sorted_tables}
            if tables:
                raise _not_ours(f"database {engine.url.render_as_string(hide_password=True)}", tables)
        if version is not None and version > SCHEMA_VERSION:
            raise DatabaseError(
                f"this database uses schema version {version}, newer than this mindstore "
                f"({SCHEMA_VERSION}); upgrade mindstore to open it"
            )
        Base.metadata.create_all(conn)
        _add_missing_columns(conn)
        # create_all makes missing tables with their indexes, but not indexes added to a table
        # that already exists: add those to databases made by an earlier mindstore.
        for table in Base.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        if version is None:
            conn.execute(insert(MetaRow).values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif version < SCHEMA_VERSION:  # its missing columns were added above
            conn.execute(update(MetaRow).where(MetaRow.key == "schema_version").values(value=str(SCHEMA_VERSION)))
        conn.commit()


def open_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Create the engine, the schema if missing, and check the schema version."""
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(
            f"{url!r} is not a database URL; use e.g. sqlite:///path/to/memory.db or "
            "postgresql+psycopg://user@host/dbname"
        ) from exc
    kwargs: dict = {}
    made: list[Path] = []  # folders this open made, removed again if it fails
    if u.get_backend_name() == "sqlite":
        if "uri" in u.query or (u.database or "").startswith("file:"):
            raise DatabaseError(
                f"SQLite URI file names ({url!r:.80}) are not supported: mindstore opens the file read-write and makes its "
                "folders. Give the file's path, e.g. sqlite:////path/to/memory.db"
            )
        path = sqlite_path(url)
        if path is None:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            _check_sqlite_file(path)
            made = _make_folders(path)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": _BUSY_S}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(u, **kwargs)
    except (ImportError, SQLAlchemyError, TypeError, ValueError) as exc:  # TypeError, ValueError: a bad URL query argument
        _remove_folders(made)
        hint = " (install the postgres extra: pip install 'mindstore[postgres]')" if "psycopg" in str(exc) else ""
        raise DatabaseError(f"cannot use database {u.render_as_string(hide_password=True)}: {exc}{hint}") from exc
    if u.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "checkin", _restore_autocheckpoint)
    try:
        _create_schema(engine)
        ensure_store_id(engine)  # what the derived caches are bound to (db/identity.py)
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:  # the driver's own errors: raised in a connect hook
        engine.dispose()
        _remove_folders(made)
        raise DatabaseError(
            f"cannot open database {u.render_as_string(hide_password=True)}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    except BaseException:
        engine.dispose()
        _remove_folders(made)
        raise
    return engine, sessionmaker(engine, expire_on_commit=False)
