"""Checks of everything a caller passes in, each failing with a typed error that says what to do.

They run before any write, so a rejected call leaves the store unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import InvalidInputError, InvalidVectorError
from .slots import Scope

__all__ = ["MAX_K", "MAX_TEXT_CHARS", "MAX_METADATA_BYTES", "MAX_DEPTH", "MAX_DIM", "MAX_BATCH", "MAX_SPACE_BYTES", "check_chars", "check_space_name", "check_space_ref", "check_text", "check_scope", "check_metadata", "check_k", "check_min_score", "check_vectors"]

MAX_K = 10_000
# A memory is a statement, not a document: the embedder reads only its first few hundred words,
# yet a very long text still takes long to embed (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
# Longer texts are refused; split them (add_many) first.
MAX_TEXT_CHARS = 100_000
# Metadata describes a memory (a topic, a source, a date); it is stored with every slot and every
# history event and read with every hit. Content belongs in the text, large blobs elsewhere.
MAX_METADATA_BYTES = 65_536  # as UTF-8 JSON
MAX_DEPTH = 32  # nesting of metadata and filters (dicts and lists inside each other)
MAX_DIM = 65_536  # key dimensions a space may have (a key row is 4 bytes a dimension)
MAX_BATCH = 100_000  # texts embedded at once (Config.embed_batch_size, reindex): more only costs memory
# A space's name is also the name of its index files (``<name>.faiss.json.<host>-<pid>-<thread>.tmp``
# adds up to 53 bytes), and file names have at most 255 bytes.
MAX_SPACE_BYTES = 150


def check_chars(value: str, what: str) -> str:
    """Refuse what no database stores alike: NUL characters (PostgreSQL refuses them, SQLite kept
    them) and lone surrogates (not encodable as UTF-8)."""
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character (\\x00); remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} contains a lone surrogate ({value[exc.start]!r} at {exc.start}), which is not text; fix its decoding") from None
    return value


def check_text(text: Any, what: str = "text") -> str:
    """A non-blank string of at most ``MAX_TEXT_CHARS`` characters that a database can store.
    ``what`` names it in the message: a memory's text, a query, or a name (space, embedder...)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be a string, not {type(text).__name__}")
    memory = what == "text" or what.startswith(("text ", "texts["))
    if not text.strip():
        todo = "pass the words to search for" if what == "query" else "pass the words to remember" if memory else f"give a non-blank {what}"
        raise InvalidInputError(f"{what} is empty; {todo}")
    if len(text) > MAX_TEXT_CHARS:
        todo = "split it into shorter memories" if memory else "shorten it"
        raise InvalidInputError(f"{what} has {len(text):,} characters, more than {MAX_TEXT_CHARS:,}; {todo}")
    return check_chars(text, what)


def check_space_ref(space: Any, what: str = "space") -> str:
    """A space name given to look a space up: a string that a database can compare."""
    if not isinstance(space, str) or not space:
        raise InvalidInputError(f"{what} must be a space name (a non-empty string), not {space!r:.40}")
    return check_chars(space, what)


def check_space_name(name: Any, what: str = "space name") -> str:
    """A name for a new space. It names the space's index files too, so it holds no path
    separator and fits a file name; checked before anything is written."""
    check_text(name, what)
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise InvalidInputError(f"{what} {name!r:.60} is not usable: it also names the space's index files, so it may not hold '/' or '\\' or be '.' or '..'; pick a plain name such as 'omniglot'")
    if len(name.encode("utf-8")) > MAX_SPACE_BYTES:
        raise InvalidInputError(f"{what} has {len(name.encode('utf-8'))} bytes in UTF-8, more than {MAX_SPACE_BYTES} (it also names the space's index files); pick a shorter name")
    return name


def _check_id(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidInputError(f"{what} must be a non-empty string of at most 255 characters, or None; got {value!r:.80}")
    return check_chars(value, what)


def check_scope(user_id: Any, agent_id: Any, session_id: Any) -> Scope:
    return Scope(_check_id(user_id, "user_id"), _check_id(agent_id, "agent_id"), _check_id(session_id, "session_id"))


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, not {type(metadata).__name__}")
    if not all(isinstance(k, str) for k in metadata):
        raise InvalidInputError("metadata keys must be strings")
    _check_nested(metadata, "metadata")
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's own limit, 4,300 digits
            raise InvalidInputError("metadata holds an integer too long to write as JSON; store it as a string") from None
        raise InvalidInputError(f"metadata must be JSON-serialisable (strings, finite numbers, lists, dicts): {exc}") from None
    except TypeError as exc:
        raise InvalidInputError(f"metadata must be JSON-serialisable (strings, finite numbers, lists, dicts): {exc}") from None
    size = len(encoded.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata has {size:,} bytes as JSON, more than {MAX_METADATA_BYTES:,}; keep large content elsewhere "
                                "(in the text, or in a file) and store a short reference to it")
    # Normalised through JSON, so what we hand back is exactly what the database holds.
    return json.loads(encoded)


def _check_nested(value: Any, what: str) -> None:
    """Every string inside ``value`` (keys too) passes :func:`check_chars`, and dicts and lists
    nest at most ``MAX_DEPTH`` deep. Iterative: deep nesting must not exhaust the call stack."""
    todo = [(value, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, str):
            check_chars(v, what)
        elif isinstance(v, (Mapping, list, tuple)):
            if depth > MAX_DEPTH:
                raise InvalidInputError(f"{what} nests dicts or lists more than {MAX_DEPTH} deep; flatten it")
            items = list(v.items()) if isinstance(v, Mapping) else [(None, x) for x in v]
            for k, x in items:
                if isinstance(k, str):
                    check_chars(k, what)
                todo.append((x, depth + 1))


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


def check_min_score(min_score: Any) -> float | None:
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or (isinstance(min_score, float) and not math.isfinite(min_score)):
        raise InvalidInputError(f"min_score must be a number (cosine similarity, -1 to 1) or None for no threshold, got {min_score!r:.40}")
    # Clamped before float(): an int past 1e308 would overflow it. Past +-1 it keeps no hit or every one, as given.
    return float(max(-2, min(min_score, 2)))


def check_vectors(vectors: Any, dim: int, what: str = "vector") -> np.ndarray:
    try:
        v = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError(f"{what} must be numbers, shape (n, {dim}): {exc}") from exc
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != dim:
        raise InvalidVectorError(f"{what} has shape {v.shape}; this space's keys have dimension {dim}")
    # One pass for the usual case: every squared norm finite and positive means no NaN, no
    # infinity and no zero row, cheaper than isfinite plus norm (measured: docs/benchmarks.md#design-decisions-and-the-measurements-behind-them).
    sq = np.einsum("ij,ij->i", v, v)
    if not (np.isfinite(sq).all() and (sq > 0).all()):
        if not np.isfinite(v).all():
            raise InvalidVectorError(f"{what} holds NaN or infinite values")
        if (sq == 0).any():
            raise InvalidVectorError(f"{what} has a zero row; cosine similarity needs a non-zero key")
        raise InvalidVectorError(f"{what} holds values too large to normalise (a squared norm overflows float32); scale it down")
    return np.ascontiguousarray(v)
