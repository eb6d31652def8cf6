"""MindStore in LangChain: a ``VectorStore``, a retriever and a ``BaseChatMessageHistory``.

>>> vs = MindStoreVectorStore(MindStore("sqlite:///memory.db"), user_id="alice")
>>> vs.add_texts(["Alice is allergic to peanuts"], ids=["diet"])
>>> vs.as_retriever().invoke("what can't alice eat?")

All three embed with the store's own model (all-MiniLM-L6-v2 by default) and stay inside the
scope they were opened with (``user_id`` / ``agent_id`` / ``session_id``). A document's id is the
id it was added with (kept in the slot's metadata under ``langchain_id``), or, for memories
written another way (``MindStore.add``, the MCP server), the slot id as a string.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.messages import BaseMessage, SystemMessage, message_to_dict, messages_from_dict
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from pydantic import ConfigDict

from mindstore import Hit, InvalidInputError, MindStore, NotFoundError, Scope, Slot

from ._pages import scan
from .chat import MEMORY_HEADER, memory_block

__all__ = ["MindStoreEmbeddings", "MindStoreVectorStore", "MindStoreRetriever", "MindStoreChatMessageHistory"]

ID_KEY = "langchain_id"
MESSAGE_KEY = "langchain_message"


def _document(slot: Slot) -> Document:
    meta = {k: v for k, v in slot.metadata.items() if k != ID_KEY}
    return Document(id=str(slot.metadata.get(ID_KEY, slot.id)), page_content=slot.text or "", metadata=meta)


class MindStoreEmbeddings(Embeddings):
    """The store's own embedder as LangChain ``Embeddings`` (what :class:`MindStoreVectorStore`
    reports as its ``embeddings``)."""

    def __init__(self, store: MindStore) -> None:
        self.store = store

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.store.embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class MindStoreVectorStore(VectorStore):
    """A LangChain vector store over one scope of a :class:`MindStore`.

    Adding with an id that exists replaces that document (the slot is updated, its history
    grows); similarity scores are cosine similarities (higher is closer).
    """

    def __init__(self, store: MindStore, *, user_id: str | None = None, agent_id: str | None = None, session_id: str | None = None) -> None:
        self.store = store
        self.scope = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}

    @property
    def embeddings(self) -> Embeddings:
        return MindStoreEmbeddings(self.store)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        store: MindStore | None = None,
        url: str | None = None,
        **scope: Any,
    ) -> MindStoreVectorStore:
        """A vector store on ``store`` (or a new ``MindStore(url)``) holding ``texts``. MindStore
        embeds with its own model, so ``embedding`` must be None or a :class:`MindStoreEmbeddings`."""
        if embedding is not None and not isinstance(embedding, MindStoreEmbeddings):
            raise InvalidInputError("MindStore embeds with its own model; pass embedding=None (choose the model with MindStore(embedder=...))")
        vs = cls(store if store is not None else MindStore(url), **scope)
        vs.add_texts(texts, metadatas, ids=ids)
        return vs

    # -- writes ------------------------------------------------------------------------------

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Add texts (embedded in batches); a text whose id exists replaces that document."""
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidInputError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise InvalidInputError(f"got {len(ids)} ids for {len(texts)} texts")
        ids = [str(i) if i is not None else uuid.uuid4().hex for i in (ids or [None] * len(texts))]
        metas = [{**(m or {}), ID_KEY: i} for m, i in zip(metadatas or [{}] * len(texts), ids)]
        # Check everything before writing anything: replacements are separate updates.
        for n, (text, meta) in enumerate(zip(texts, metas)):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"texts[{n}] must be a non-empty string, not {text!r}")
            try:
                json.dumps(meta, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"metadatas[{n}] must be JSON-serialisable: {exc}") from exc
        # Later entries win, as if added one by one.
        last = {i: n for n, i in enumerate(ids)}
        existing = {_document(s).id: s for s in self._slots(list(last))}
        new = [n for i, n in last.items() if i not in existing]
        self.store.add_many([texts[n] for n in new], metadata=[metas[n] for n in new], dedup=False, **self.scope)
        for i, n in last.items():
            if i in existing:
                self.store.update(existing[i].id, text=texts[n], metadata=metas[n])
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete these documents (unknown ids are skipped); ``ids=None`` empties the scope."""
        if ids is None:
            if not any(self.scope.values()):
                raise InvalidInputError("delete() without ids empties the scope; open the vector store with user_id, agent_id or session_id")
            self.store.delete_all(**self.scope)
            return True
        self.store.delete_many(slot.id for slot in self._slots([str(i) for i in ids]))
        return True

    # -- reads -------------------------------------------------------------------------------

    def _in_scope(self, slot: Slot) -> bool:
        return slot.space == self.store.space and Scope(**self.scope).contains(slot)

    def _slots(self, ids: Sequence[str]) -> list[Slot]:
        """The slots of these document ids in this scope, in the order of ``ids``."""
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise InvalidInputError("ids must be a list of strings")
        found = {_document(s).id: s for s in scan(self.store, filters={ID_KEY: {"$in": list(ids)}}, **self.scope)} if ids else {}
        for i in ids:
            if i not in found and i.isdigit():  # a memory written without a LangChain id
                try:
                    slot = self.store.get(int(i))
                except NotFoundError:
                    continue
                if ID_KEY not in slot.metadata and self._in_scope(slot):
                    found[i] = slot
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids; unknown ids are skipped."""
        if isinstance(ids, str):
            raise InvalidInputError("ids must be a list of strings, not one string")
        return [_document(s) for s in self._slots(list(ids))]

    def _hits(self, query: str, k: int, filter: dict[str, Any] | None, **kwargs: Any) -> list[Hit]:
        # Documents are addressed by id, not versions of one another: the ranking's order stands.
        return self.store.search(query, k=k, filters=filter, min_score=kwargs.get("score_threshold"), newest_first=False, **self.scope)

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any) -> list[tuple[Document, float]]:
        """The ``k`` closest documents with their cosine similarity; ``filter`` is a MindStore
        structured filter on metadata (``{"year": {"$gte": 2024}}``)."""
        return [(_document(h.slot), h.score) for h in self._hits(query, k, filter, **kwargs)]

    def similarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any) -> list[Document]:
        hits = self.store.search_vector(embedding, k=k, filters=filter, **self.scope)
        return [_document(h.slot) for h in hits]

    def _select_relevance_score_fn(self):  # noqa: ANN202
        return lambda score: score  # already a cosine similarity

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """``k`` documents chosen among the ``fetch_k`` closest for relevance and diversity."""
        hits = self._hits(query, max(k, fetch_k), filter)
        if not hits:
            return []
        keys = self.store.keys([h.slot.id for h in hits])
        chosen = maximal_marginal_relevance(self.store.embedder.embed([query])[0], keys.tolist(), lambda_mult=lambda_mult, k=k)
        return [_document(hits[i].slot) for i in chosen]


class MindStoreRetriever(BaseRetriever):
    """The ``k`` memories of a scope closest to the query, as Documents (``k`` can also be
    passed to ``invoke``). Unlike ``as_retriever()`` it needs no vector store object."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: MindStore
    k: int = 4
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    filters: dict[str, Any] | None = None
    min_score: float | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any) -> list[Document]:
        hits = self.store.search(
            query, k=kwargs.get("k", self.k), filters=kwargs.get("filters", self.filters), min_score=self.min_score,
            user_id=self.user_id, agent_id=self.agent_id, session_id=self.session_id,
        )
        return [_document(h.slot) for h in hits]


class MindStoreChatMessageHistory(BaseChatMessageHistory):
    """The messages of one chat session, kept as slots of ``user_id`` and ``session_id``.

    Every message is stored whole (type, content, tool calls) and comes back as it went in.
    :meth:`memory_message` pulls the user's relevant memories from other sessions into the
    prompt, so a new session starts knowing what earlier ones learnt.
    """

    def __init__(self, store: MindStore, *, user_id: str, session_id: str, agent_id: str | None = None, k: int = 5, min_score: float = 0.15) -> None:
        for name, value in (("user_id", user_id), ("session_id", session_id)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidInputError(f"{name} must be a non-empty string")
        self.store = store
        self.user_id, self.session_id, self.agent_id = user_id, session_id, agent_id
        self.k, self.min_score = k, min_score

    @property
    def _scope(self) -> dict[str, str | None]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages, oldest first."""
        slots = scan(self.store, filters={MESSAGE_KEY: {"$exists": True}}, **self._scope)
        return messages_from_dict([s.metadata[MESSAGE_KEY] for s in slots])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages to the session, embedded in one batch."""
        if isinstance(messages, BaseMessage) or not all(isinstance(m, BaseMessage) for m in messages):
            raise InvalidInputError("messages must be a list of LangChain messages (HumanMessage, AIMessage, ...)")
        # A slot needs text: a message with none (an AI turn that only calls tools) gets a stand-in.
        texts = [m.text if m.text.strip() else f"({m.type} message without text)" for m in messages]
        metas = [{"role": m.type, MESSAGE_KEY: message_to_dict(m)} for m in messages]
        self.store.add_many(texts, metadata=metas, dedup=False, **self._scope)

    def clear(self) -> None:
        """Forget the session's messages (other memories of the user stay)."""
        for slot in scan(self.store, filters={MESSAGE_KEY: {"$exists": True}}, **self._scope):
            self.store.delete(slot.id)

    def recall(self, query: str | None = None) -> list[Hit]:
        """The user's memories closest to ``query`` (default: the session's last human message),
        from other sessions and from memories stored outside any chat."""
        if query is None:
            query = next((m.text for m in reversed(self.messages) if m.type == "human" and m.text.strip()), None)
            if query is None:
                return []
        hits = self.store.search(query, k=self.k * 2, user_id=self.user_id, agent_id=self.agent_id, min_score=self.min_score)
        return [h for h in hits if h.slot.session_id != self.session_id][: self.k]

    def memory_message(self, query: str | None = None, header: str = MEMORY_HEADER) -> SystemMessage | None:
        """A system message with the recalled memories, to put before the session's messages;
        None when nothing relevant is remembered."""
        hits = self.recall(query)
        return SystemMessage(memory_block(hits, header)) if hits else None
