"""A Model Context Protocol server that gives an agent long-term memory, one scope per user.

Run it with ``mindstore mcp --db sqlite:///memory.db`` (stdio, for desktop and IDE agents) or
``mindstore mcp --transport http --port 8765`` (streamable HTTP on 127.0.0.1 only). Tools:
``add_memory``, ``search_memories``, ``list_memories``, ``update_memory``, ``delete_memory`` and
``memory_history``. Every tool takes a ``user_id`` and acts only on that user's memories: an id
of another user's memory is answered as unknown, so nothing leaks, not even its existence.
Mistakes (unknown ids, empty text, wrong types) come back as tool errors the model can read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mindstore import InvalidInputError, MindStore, MindStoreError, NotFoundError, Slot, Written
from mindstore.validate import check_scope

__all__ = ["Memory", "MemoryEvent", "MemoryHit", "MemoryPage", "MemoryTools", "create_server", "serve"]

T = TypeVar("T")

UserId = Annotated[str, Field(description="whose memories: every call only sees this user's memories", min_length=1, max_length=255)]
MemoryId = Annotated[int, Field(description="a memory id, as returned by add_memory, search_memories or list_memories")]
Metadata = Annotated[dict[str, Any] | None, Field(description="optional JSON object stored with the memory, e.g. {\"topic\": \"food\"}")]


class Memory(BaseModel):
    """One memory as the tools return it."""

    id: int
    text: str | None
    user_id: str | None
    session_id: str | None
    metadata: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, slot: Slot) -> Memory:
        return cls(id=slot.id, text=slot.text, user_id=slot.user_id, session_id=slot.session_id, metadata=slot.metadata, created_at=slot.created_at, updated_at=slot.updated_at)


class Remembered(Memory):
    """What add_memory did: a new memory, a restatement that reinforced one, or a newer version."""

    change: str = Field(description="'added', 'reinforced' (the same statement was already remembered) or 'superseded' (a newer version of a memory)")
    supersedes: int | None = Field(default=None, description="the id of the older version this memory replaces in searches")

    @classmethod
    def of_write(cls, slot: Written) -> Remembered:
        return cls(**Memory.of(slot).model_dump(), change=slot.change, supersedes=slot.supersedes)


class MemoryHit(BaseModel):
    score: float = Field(description="cosine similarity to the query; higher is closer")
    memory: Memory


class SearchResult(BaseModel):
    hits: list[MemoryHit]


class MemoryPage(BaseModel):
    memories: list[Memory]
    next_cursor: str | None = Field(description="pass it back as cursor for the next page; null on the last page")


class MemoryEvent(BaseModel):
    kind: str
    old_text: str | None
    new_text: str | None
    at: datetime


class History(BaseModel):
    events: list[MemoryEvent]


class Deleted(BaseModel):
    deleted: int


@contextmanager
def _tool_errors() -> Iterator[None]:
    """MindStore's typed errors become tool errors, with the message that says what to do."""
    try:
        yield
    except MindStoreError as exc:
        raise ToolError(str(exc)) from exc


class MemoryTools:
    """The server's tools over one store (within ``agent_id`` when given): each public method is
    one MCP tool, its signature the tool's schema and its docstring the tool's description."""

    NAMES = ("add_memory", "search_memories", "list_memories", "update_memory", "delete_memory", "memory_history")

    def __init__(self, store: MindStore, agent_id: str | None) -> None:
        self.store, self.agent_id = store, agent_id

    def _owned(self, user_id: str, memory_id: int) -> Slot:
        """The user's memory, or the one answer for every id that is not theirs: missing, another
        user's, out of range. Answering a missing id otherwise would tell which ids exist."""
        unknown = NotFoundError(f"user {user_id!r} has no memory with id {memory_id}; find ids with search_memories or list_memories")
        try:
            slot = self.store.get(memory_id)
        except (NotFoundError, InvalidInputError):
            raise unknown from None
        if slot.user_id != user_id or slot.space != self.store.space or (self.agent_id is not None and slot.agent_id != self.agent_id):
            raise unknown
        return slot

    def add_memory(self, user_id: UserId, text: Annotated[str, Field(description="the fact to remember, in plain words")], metadata: Metadata = None,
                   session_id: str | None = None) -> Remembered:
        """Remember a fact about the user. Restating a memory they already have reinforces it; a
        changed version of one (a new number, date, name) supersedes it: searches then return the
        new one. The result says which happened."""
        return Remembered.of_write(self.store.add(text, user_id=user_id, agent_id=self.agent_id, session_id=session_id, metadata=metadata))

    def search_memories(
        self,
        user_id: UserId,
        query: Annotated[str, Field(description="what to look for, in plain words")],
        k: Annotated[int, Field(description="how many memories at most", ge=1, le=100)] = 5,
        filters: Annotated[dict[str, Any] | None, Field(description="structured metadata filter, e.g. {\"topic\": \"food\"} or {\"year\": {\"$gte\": 2024}}")] = None,
        min_score: float | None = None,
    ) -> SearchResult:
        """The user's memories closest in meaning to the query, best first."""
        hits = self.store.search(query, k=k, user_id=user_id, agent_id=self.agent_id, filters=filters, min_score=min_score)
        return SearchResult(hits=[MemoryHit(score=h.score, memory=Memory.of(h.slot)) for h in hits])

    def list_memories(
        self,
        user_id: UserId,
        limit: Annotated[int, Field(ge=1, le=1000)] = 50,
        cursor: str | None = None,
        session_id: str | None = None,
    ) -> MemoryPage:
        """A page of the user's memories, oldest first."""
        page = self.store.list(user_id=user_id, agent_id=self.agent_id, session_id=session_id, limit=limit, cursor=cursor)
        return MemoryPage(memories=[Memory.of(s) for s in page.slots], next_cursor=page.next_cursor)

    def update_memory(self, user_id: UserId, memory_id: MemoryId, text: str | None = None, metadata: Metadata = None) -> Memory:
        """Correct a memory's text (re-embedded) and/or replace its metadata; its history keeps the old version."""
        self._owned(user_id, memory_id)
        return Memory.of(self.store.update(memory_id, text=text, metadata=metadata))

    def delete_memory(self, user_id: UserId, memory_id: MemoryId) -> Deleted:
        """Forget one memory."""
        self._owned(user_id, memory_id)
        self.store.delete(memory_id)
        return Deleted(deleted=memory_id)

    def memory_history(self, user_id: UserId, memory_id: MemoryId) -> History:
        """Every change of one of the user's memories, oldest first."""
        self._owned(user_id, memory_id)
        return History(events=[MemoryEvent(kind=e.kind, old_text=e.old_text, new_text=e.new_text, at=e.at) for e in self.store.history(memory_id)])


def _as_tool(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` with MindStore's errors turned into tool errors (its signature and docstring kept)."""
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        with _tool_errors():
            return fn(*args, **kwargs)

    return wrapped


def create_server(store: MindStore, *, agent_id: str | None = None, name: str = "mindstore") -> MCPServer:
    """An MCP server whose tools read and write ``store`` (within ``agent_id`` when given)."""
    check_scope(None, agent_id, None)  # a bad agent_id would otherwise fail every tool call

    # WARNING: the SDK logs every tool error at INFO; on stdio that is noise in the client's log.
    server = MCPServer(name, log_level="WARNING", instructions=(
        "Long-term memory. Before answering, search_memories for what you know about the user; "
        "add_memory for lasting facts they tell you (preferences, plans, people, constraints); "
        "update_memory or delete_memory when they correct or retract something."
    ))
    tools = MemoryTools(store, agent_id)
    for tool_name in MemoryTools.NAMES:
        server.tool()(_as_tool(getattr(tools, tool_name)))
    return server


def serve(url: str | None = None, *, transport: Literal["stdio", "http"] = "stdio", port: int = 8765, agent_id: str | None = None) -> None:
    """Open the store at ``url`` and serve it until the client goes away (stdio) or the
    process is stopped (http, on 127.0.0.1 only: memories are private)."""
    if transport not in ("stdio", "http"):
        raise InvalidInputError(f"transport must be 'stdio' or 'http', not {transport!r}")
    if transport == "http" and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        raise InvalidInputError(f"port must be a TCP port from 1 to 65535, not {port!r:.40}")
    check_scope(None, agent_id, None)  # before the store is opened (or made)
    with MindStore(url) as store:
        server = create_server(store, agent_id=agent_id)
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host="127.0.0.1", port=port)
