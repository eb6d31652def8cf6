"""Opening a store: its arguments, checked before anything is opened, and the check that the
default space was built by the embedder it is opened with."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ..config import Config
from ..db import SpaceRow
from ..errors import DatabaseError, EmbedderMismatchError, InvalidInputError
from ..retrieval import check_reranker
from ..validate import check_chars, check_space_name, check_text
from .keys import TextKeys

__all__ = ["check_backend", "check_options", "needs_reindex"]


def check_options(url: Any, space: Any, embedder: Any, config: Any, reindex: Any, reranker: Any, resolver: Any) -> None:
    """The arguments of ``MindStore(...)``: a typed error for the first that is wrong."""
    if resolver is not None and not callable(resolver):
        raise InvalidInputError("resolver must be a function (old_text, new_text) -> 'reinforce', 'supersede' or 'add'")
    if url is not None and not isinstance(url, str):
        raise InvalidInputError(f"url must be a database URL string such as sqlite:///memory.db, not {type(url).__name__}")
    if url is not None and not url.strip():
        raise InvalidInputError("url is empty; give a database URL such as sqlite:///memory.db, or None for the default store")
    if url is not None and "\x00" in url:
        raise DatabaseError("the database URL contains a NUL character; give a path or URL without one")
    if url is not None:
        check_chars(url, "the database URL")
    check_space_name(space, "space")
    if isinstance(embedder, str) and not embedder.strip():
        raise InvalidInputError("embedder is empty; give a sentence-transformers model name such as 'all-MiniLM-L6-v2', or None for the bundled one")
    if isinstance(embedder, str):
        check_text(embedder, "embedder")
    # Not isinstance(embedder, Embedder): that reads ``dim``, which loads a sentence-transformers model.
    if embedder is not None and not isinstance(embedder, str) and not (isinstance(getattr(embedder, "name", None), str) and callable(getattr(embedder, "embed", None))):
        raise InvalidInputError(f"embedder must be a sentence-transformers model name or an object with name, dim and embed(texts), not {type(embedder).__name__}")
    if config is not None and not isinstance(config, Config):
        raise InvalidInputError(f"config must be a mindstore Config, not {type(config).__name__}")
    if not isinstance(reindex, bool):
        raise InvalidInputError(f"reindex must be True or False, not {reindex!r:.40}")
    check_reranker(reranker)


def needs_reindex(row: SpaceRow | None, space: str, keys: TextKeys, reindex: bool, sessions: sessionmaker[Session]) -> bool:
    """Whether opening the default space ``row`` with ``keys`` must re-embed it: only when asked
    (``reindex``), and its key source differs or a re-embedding by an older mindstore was cut
    short (keys of two sizes). An EmbedderMismatchError when it differs and the
    caller did not ask, or when an embedder object under the recorded name makes keys of another
    size."""
    if row is None:
        return False
    if row.key_source == keys.name:
        if reindex:
            from ..reindex import has_mixed_keys

            with sessions() as s:
                return has_mixed_keys(s, row.id, row.dim)
        if keys.impostor(row.dim):
            raise EmbedderMismatchError(
                f"space {space!r} holds {row.dim}-dimensional keys of {row.key_source}, but the embedder given under that "
                f"name makes {keys.embedder.dim}-dimensional ones. Give the embedder that built the store, or give this one "
                f"another name and pass reindex=True to re-embed the slots with it."
            )
        return False
    if reindex:
        return True
    # A string embedder is a sentence-transformers model: only such a key source can be
    # reopened by naming it.
    model = row.key_source.removeprefix("sentence-transformers/")
    how = (f"Open it with embedder={model!r}" if model != row.key_source else
           f"Open it with the embedder object named {row.key_source!r} (not a sentence-transformers "
           f"model), or with space=... naming another default space if {space!r} holds keys you add yourself")
    raise EmbedderMismatchError(
        f"space {space!r} was built with {row.key_source}, but this store was opened "
        f"with {keys.name}. {how}, or pass "
        f"reindex=True (CLI: mindstore reindex --model ...) to re-embed its slots."
    )


def check_backend(url: str, config: Config) -> None:
    """A key index the database cannot hold: a typed error before anything is opened or made."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        return  # not a URL: opening the database says so
    if config.key_index == "pgvector" and backend != "postgresql":
        raise InvalidInputError(f"Config(key_index='pgvector') needs a PostgreSQL store (postgresql+psycopg://...); this one is "
                                f"{backend}. Use key_index='faiss' (or 'auto') here")
