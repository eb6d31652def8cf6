"""What every ``mindstore`` command shares: the common options, opening the store, failing with a
message, and printing JSON.

Both command modules import from here: ``mindstore.cli`` (the store commands, and the ``mindstore``
app itself) and ``mindstore.neural.cli`` (train, evaluate, bind, recall). Neither imports the other's
helpers, so the commands form no import cycle: ``mindstore.cli`` imports ``mindstore.neural.cli`` to
register its commands, and ``mindstore.neural.cli`` imports only this module. Nothing here imports
torch, faiss or the store at import time, so ``mindstore --help`` stays fast.

Every command that can print JSON takes ``--json`` as ``as_json: JsonOpt = False``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from .errors import MindStoreError

__all__ = ["DbOpt", "JsonOpt", "check_folder", "fail", "jsonable", "open_store", "print_json"]

DbOpt = Annotated[Optional[str], typer.Option("--db", envvar="MINDSTORE_DB", help="SQLAlchemy URL, e.g. sqlite:///memory.db or postgresql+psycopg://user@host/db. Default: a SQLite file in the user data dir.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with ``error: message`` on stderr and exit status ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def check_folder(db: str | None) -> None:
    """A typo in --db must not create a folder tree and an empty store: the folder must exist."""
    if isinstance(db, str) and db.startswith("sqlite:///"):
        folder = Path(db.removeprefix("sqlite:///").split("?", 1)[0]).parent
        if db.removeprefix("sqlite:///") and not folder.is_dir():
            fail(f"the folder {folder} of --db does not exist: check the path, or create the folder first (mkdir -p {folder})")


@contextmanager
def open_store(db: str | None, model: str | None = None, **kwargs: Any) -> Iterator[Any]:
    """The :class:`mindstore.MindStore` at ``db`` (embedding with ``model``), closed afterwards;
    a :class:`MindStoreError`, on opening or inside the block, ends the command with its message."""
    from .store import MindStore

    check_folder(db)
    try:
        with MindStore(db, embedder=model, **kwargs) as store:
            yield store
    except MindStoreError as exc:
        fail(str(exc))


def jsonable(obj: Any) -> Any:
    """``obj`` with dataclasses turned into dicts and datetimes into ISO 8601 strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def print_json(obj: Any) -> None:
    """Print ``obj`` (see :func:`jsonable`) as indented JSON."""
    typer.echo(json.dumps(jsonable(obj), ensure_ascii=False, indent=2))
