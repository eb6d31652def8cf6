"""The errors a user of mindstore can cause, each saying what to do about it.

Every error raised on bad input is a subclass of :class:`MindStoreError`, and the store is left
unchanged when one is raised.
"""

from __future__ import annotations

__all__ = [
    "MindStoreError",
    "InvalidInputError",
    "InvalidVectorError",
    "InvalidFilterError",
    "NotFoundError",
    "EmbedderMismatchError",
    "MixedKeysError",
    "SpaceError",
    "StoreClosedError",
    "DatabaseError",
    "PgVectorMissingError",
    "DataNotFoundError",
]


class MindStoreError(Exception):
    """Base class of every error mindstore raises on purpose."""


class InvalidInputError(MindStoreError, ValueError):
    """Content or an argument is not usable: empty or non-string text, a bad ``k``, a bad scope."""


class InvalidVectorError(InvalidInputError):
    """A key vector has the wrong dimension or holds NaN or infinite values."""


class InvalidFilterError(InvalidInputError):
    """A metadata filter is malformed: unknown operator, or a value of the wrong type."""


class NotFoundError(MindStoreError, KeyError):
    """No slot (or space) with that id exists in this store."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class EmbedderMismatchError(MindStoreError):
    """The store's space was built with another embedder (or key dimension) than the one given."""


class MixedKeysError(EmbedderMismatchError):
    """A space's slots hold keys of different sizes: a re-embedding by an older mindstore was cut
    short. Reopening with ``reindex=True`` re-embeds every slot with one model."""


class SpaceError(MindStoreError):
    """A space is missing, or exists with another key kind than asked for."""


class StoreClosedError(MindStoreError):
    """The store was used after ``close()``."""


class DatabaseError(MindStoreError):
    """The database could not be opened or reached."""


class PgVectorMissingError(DatabaseError):
    """The PostgreSQL database cannot hold vectors: pgvector is not installed on the server, not
    created in this database (and this user may not create it), or older than 0.8."""


class DataNotFoundError(MindStoreError, FileNotFoundError):
    """A data set (Omniglot) is neither where it was looked for nor downloadable from here."""
