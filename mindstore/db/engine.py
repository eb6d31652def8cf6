"""Engine setup: SQLite tuned for durability with concurrency (WAL), any other SQLAlchemy URL as is."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ..errors import DatabaseError
from .models import SCHEMA_VERSION, Base, MetaRow

__all__ = ["open_database", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, or None for in-memory and other backends."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _tune_sqlite(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI connection
    cur = dbapi_conn.cursor()
    # 16 KiB pages (a no-op once the file has tables): a slot row with its 1.5 KB key fits ~10 to
    # a page instead of 2: raw sqlite3 inserts 1e6 slots with their events in 12.6 s instead of
    # 17.8 s (bench/bench_sql_floor.py). Must come before WAL is set.
    cur.execute("PRAGMA page_size=16384")
    # WAL: readers never block the writer; synchronous=NORMAL in WAL loses nothing on a process
    # crash (only the last commits on power loss). busy_timeout lets two processes share a file.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA cache_size=-16384")  # KiB: the B-tree pages a batch touches stay cached
    cur.close()


def _restore_autocheckpoint(dbapi_conn, record) -> None:  # noqa: ANN001 - DBAPI connection, pool record
    """A bulk add that left its checkpoint to the store's thread turned the connection's automatic
    checkpoint off (``MindStore._checkpoint_behind``); the next user gets it back."""
    pages = record.info.pop("autocheckpoint", None)
    if pages is not None and dbapi_conn is not None:
        dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")


def _add_missing_columns(engine: Engine) -> None:
    """Bring a database made by an earlier mindstore up to this schema: columns added since
    (``create_all`` makes missing tables, not missing columns). Each is nullable, so the rows
    there already stay valid. Two processes may open an old database at once: the loser of the
    race finds the column there."""
    for table, column, sql_type in (("events", "slot_last", "BIGINT"), ("slots", "superseded_by", "BIGINT")):
        if column in {c["name"] for c in inspect(engine).get_columns(table)}:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {'IF NOT EXISTS ' if engine.dialect.name == 'postgresql' else ''}{column} {sql_type}"))
        except SQLAlchemyError:
            if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
                raise


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
    if u.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(u, **kwargs)
    except (ImportError, SQLAlchemyError) as exc:
        hint = " (install the postgres extra: pip install 'mindstore[postgres]')" if "psycopg" in str(exc) else ""
        raise DatabaseError(f"cannot use database {u.render_as_string(hide_password=True)}: {exc}{hint}") from exc
    if u.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "checkin", _restore_autocheckpoint)
    try:
        Base.metadata.create_all(engine)
        _add_missing_columns(engine)
        # create_all makes missing tables with their indexes, but not indexes added to a table
        # that already exists: add those to databases made by an earlier mindstore.
        for table in Base.metadata.sorted_tables:
            for index in table.indexes:
                index.create(engine, checkfirst=True)
        with Session(engine) as s, s.begin():
            row = s.get(MetaRow, "schema_version")
            if row is None:
                s.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row.value) < SCHEMA_VERSION:  # its missing columns were added above
                row.value = str(SCHEMA_VERSION)
            elif int(row.value) > SCHEMA_VERSION:
                raise DatabaseError(
                    f"this database uses schema version {row.value}, newer than this mindstore "
                    f"({SCHEMA_VERSION}); upgrade mindstore to open it"
                )
            s.execute(select(MetaRow.key))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseError(
            f"cannot open database {u.render_as_string(hide_password=True)}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return engine, sessionmaker(engine, expire_on_commit=False)
