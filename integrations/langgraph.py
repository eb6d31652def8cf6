"""MindStore as a LangGraph ``BaseStore``: namespaced items with semantic search, persisted in SQL.

>>> from langgraph.store.base import BaseStore
>>> graph_store = MindStoreGraphStore(MindStore("sqlite:///memory.db"))
>>> graph_store.put(("users", "alice"), "diet", {"text": "Alice is allergic to peanuts"})
>>> graph_store.search(("users", "alice"), query="what can't she eat?")

How items map onto the store: every item is one slot of ``agent_id`` (default ``"langgraph"``),
so graph items never mix with other memories. A namespace is a scope: the slot's ``session_id``
is the namespace joined by ``.`` (LangGraph forbids dots in labels, so the join is unambiguous);
namespace, key and value also live in the slot's metadata, where prefix searches and filters
reach them through MindStore's structured filters. A put on an existing key updates the slot
(the history grows); ``index=False`` items are stored and listed but never scored by a query.
Being metadata, a value may have up to 64 KiB as JSON (``validate.MAX_METADATA_BYTES``).

Several indexed fields (``fields=["title", "body"]`` or ``index=[...]``) are embedded as one text
(joined), giving one key per item rather than one per field as ``InMemoryStore`` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from mindstore import InvalidFilterError, InvalidInputError, MindStore, Slot
from mindstore.validate import check_metadata

from ._pages import scan

__all__ = ["MindStoreGraphStore"]

_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_MAX_SESSION = 255  # the length of a scope field in the store


class MindStoreGraphStore(BaseStore):
    """A LangGraph store over a :class:`MindStore`: put / get / search / delete / list_namespaces,
    sync and async, one operation or a batch. Semantic search uses the store's own embedder."""

    def __init__(self, store: MindStore, *, agent_id: str = "langgraph", fields: Sequence[str] = ("$",)) -> None:
        if not isinstance(agent_id, str) or not agent_id.strip():
            raise InvalidInputError("agent_id must be a non-empty string; it keeps graph items apart from other memories")
        self.store = store
        self.agent_id = agent_id
        self.fields = list(fields)

    # -- the two methods LangGraph asks for --------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; each read sees the writes of the puts before it."""
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        results: list[Result] = []
        run: list[PutOp] = []  # consecutive puts are applied together
        for n, op in enumerate(ops):
            if isinstance(op, PutOp):
                run.append(op)
                if n + 1 == len(ops) or not isinstance(ops[n + 1], PutOp):
                    self._put_many(run)
                    run = []
                results.append(None)
            elif isinstance(op, GetOp):
                slot = self._find(op.namespace, op.key)
                results.append(None if slot is None else self._item(slot))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise InvalidInputError(f"unknown operation {type(op).__name__}; use GetOp, PutOp, SearchOp or ListNamespacesOp")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread, so the event loop never waits on SQL or the model."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- mapping -------------------------------------------------------------------------------

    @staticmethod
    def _session(namespace: tuple[str, ...]) -> str:
        if not namespace:
            raise InvalidNamespaceError("Namespace cannot be empty.")
        joined = ".".join(namespace)
        if len(joined) > _MAX_SESSION:
            raise InvalidNamespaceError(f"namespace {namespace} is {len(joined)} characters joined; at most {_MAX_SESSION} fit")
        return joined

    @staticmethod
    def _prefix_filter(prefix: tuple[str, ...]) -> dict[str, Any]:
        # Only graph items: a slot written another way under this agent_id is not one.
        return {"langgraph.key": {"$exists": True}, **{f"langgraph.namespace.{i}": label for i, label in enumerate(prefix)}}

    def _find(self, namespace: tuple[str, ...], key: str) -> Slot | None:
        page = self.store.list(agent_id=self.agent_id, session_id=self._session(namespace), filters={"langgraph.key": str(key)}, limit=1)
        return page.slots[0] if page.slots else None

    @staticmethod
    def _namespace(slot: Slot) -> tuple[str, ...]:
        ns = slot.metadata["langgraph"]["namespace"]
        return tuple(ns[str(i)] for i in range(len(ns)))

    def _item(self, slot: Slot, score: float | None = None, *, search: bool = False) -> Item:
        lg = slot.metadata["langgraph"]
        fields = dict(value=slot.metadata["value"], key=lg["key"], namespace=self._namespace(slot), created_at=slot.created_at, updated_at=slot.updated_at)
        return SearchItem(score=score, **fields) if search else Item(**fields)

    def _text(self, value: Mapping[str, Any], index: Any) -> tuple[str, bool]:
        """The text to embed and whether the item is searchable by a query."""
        if index is False:
            paths: list[str] = []
        elif index is None:
            paths = self.fields
        elif isinstance(index, (list, tuple)) and all(isinstance(p, str) for p in index):
            paths = list(index)
        else:
            raise InvalidInputError(f"index must be False, None or a list of field paths, not {index!r}")
        texts = [t for p in paths for t in get_text_at_path(value, p if p == "$" else tokenize_path(p)) if t.strip()]
        if texts:
            return "\n".join(texts), True
        # Not indexed: the slot still needs text (and so a key); the value's JSON is what a person
        # browsing the store wants to read. Queries never score it (see _search).
        return json.dumps(value, ensure_ascii=False, sort_keys=True), False

    def _prepare(self, op: PutOp) -> tuple[str, str, dict[str, Any]] | None:
        """Check a put and turn it into (session, text, metadata); None for a delete."""
        # The "langgraph" root label is refused by BaseStore.put, not here: LangGraph itself
        # writes under it through batch().
        session = self._session(op.namespace)
        if not isinstance(op.key, str) or not op.key:
            raise InvalidInputError(f"key must be a non-empty string, not {op.key!r}")
        if op.ttl is not None:
            raise NotImplementedError("MindStoreGraphStore does not support TTLs; memories last until deleted")
        if op.value is None:
            return None
        if not isinstance(op.value, Mapping):
            raise InvalidInputError(f"value must be a dict, not {type(op.value).__name__}")
        try:
            json.dumps(op.value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"value must be JSON-serialisable (strings, numbers, lists, dicts): {exc}") from exc
        text, indexed = self._text(op.value, op.index)
        meta = {
            "langgraph": {"namespace": {str(i): label for i, label in enumerate(op.namespace)}, "key": op.key, "indexed": indexed},
            "value": dict(op.value),
        }
        try:  # here, so that a value too large for metadata stops the batch before any put applies
            check_metadata(meta)
        except InvalidInputError as exc:
            raise InvalidInputError(f"the value of key {op.key!r} cannot be stored (it is kept as the slot's metadata): {exc}") from None
        return session, text, meta

    def _put_many(self, puts: Sequence[PutOp]) -> None:
        """Apply a run of puts: all are checked before any is applied; for each (namespace, key)
        the last put wins (as in InMemoryStore), and new items are embedded in batches."""
        last = {(op.namespace, op.key): op for op in puts}
        prepared = [(op, self._prepare(op)) for op in last.values()]
        new: dict[str, list[dict[str, Any]]] = {}
        texts: dict[str, list[str]] = {}
        for op, item in prepared:
            existing = self._find(op.namespace, op.key)
            if item is None:
                if existing is not None:
                    self.store.delete(existing.id)
            elif existing is not None:
                self.store.update(existing.id, text=item[1], metadata=item[2])
            else:
                texts.setdefault(item[0], []).append(item[1])
                new.setdefault(item[0], []).append(item[2])
        for session, metas in new.items():
            self.store.add_many(texts[session], agent_id=self.agent_id, session_id=session, metadata=metas, dedup=False)

    @staticmethod
    def _value_filter(spec: Mapping[str, Any], path: str = "value") -> dict[str, Any]:
        """LangGraph's filter on item values as a MindStore filter on the slot's metadata."""
        if not isinstance(spec, Mapping):
            raise InvalidFilterError(f"filter must be a dict like {{'status': 'active'}}, not {type(spec).__name__}")
        out: dict[str, Any] = {}
        for key, cond in spec.items():
            where = f"{path}.{key}"
            if isinstance(cond, Mapping) and any(str(k).startswith("$") for k in cond):
                bad = [k for k in cond if k not in _OPS]
                if bad:
                    raise InvalidFilterError(f"{key}: unsupported operator {bad[0]!r}; use one of {' '.join(_OPS)}")
                out[where] = dict(cond)
            elif isinstance(cond, Mapping):
                out.update(MindStoreGraphStore._value_filter(cond, where))
            elif isinstance(cond, (list, tuple)):
                raise InvalidFilterError(f"{key}: filtering on a whole list is not supported; filter on a scalar field")
            else:
                out[where] = cond
        return out

    def _search(self, op: SearchOp) -> list[SearchItem]:
        for name in ("limit", "offset"):
            n = getattr(op, name)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InvalidInputError(f"{name} must be a non-negative integer, got {n!r}")
        if op.limit == 0:
            return []
        filters = {**self._prefix_filter(op.namespace_prefix), **self._value_filter(op.filter or {})}
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidInputError(f"query must be a string, not {type(op.query).__name__}")
        if not (op.query and op.query.strip()):
            slots = self._scan(filters, op.offset + op.limit)[op.offset :]
            return [self._item(s, search=True) for s in slots]
        # Items are addressed by key (a put replaces its item): they are not versions of one another.
        hits = self.store.search(op.query, k=min(op.offset + op.limit, 10_000), agent_id=self.agent_id, filters={**filters, "langgraph.indexed": True},
                                 newest_first=False)
        found = [self._item(h.slot, h.score, search=True) for h in hits[op.offset :]]
        if len(found) < op.limit:
            # As InMemoryStore does: fill up with the matching items that have no embedding.
            unindexed = self._scan({**filters, "langgraph.indexed": False}, op.limit - len(found))
            found += [self._item(s, search=True) for s in unindexed]
        return found

    def _scan(self, filters: Mapping[str, Any] | None, limit: int | None) -> list[Slot]:
        return scan(self.store, filters=filters, limit=limit, agent_id=self.agent_id)

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        prefix = next((c.path for c in conditions if c.match_type == "prefix" and "*" not in c.path), ())
        namespaces = {self._namespace(s) for s in self._scan(self._prefix_filter(prefix), None)}
        namespaces = {ns for ns in namespaces if all(_matches(c, ns) for c in conditions)}
        if op.max_depth is not None:
            namespaces = {ns[: op.max_depth] for ns in namespaces}
        return sorted(namespaces)[op.offset : op.offset + op.limit]


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether ``namespace`` starts (prefix) or ends (suffix) with the path; ``*`` matches any label."""
    path = condition.path
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise InvalidInputError(f"match_type must be 'prefix' or 'suffix', not {condition.match_type!r}")
    return all(p == "*" or n == p for n, p in pairs)
