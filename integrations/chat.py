"""Long-term memory for any chat loop, framework-free.

Give :class:`ChatMemory` the chat history in the OpenAI messages shape; it recalls the user's
relevant memories and returns the messages with a memory block inserted, ready for any
OpenAI-compatible client (OpenAI, Ollama, vLLM). After the reply, :meth:`ChatMemory.remember`
stores what is worth keeping. No client is needed to use it:

>>> memory = ChatMemory(store, user_id="alice")
>>> messages = memory.prepare([{"role": "user", "content": "What should I cook tonight?"}])
>>> reply = my_llm(messages)                     # any client, or none
>>> memory.remember(messages, reply)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mindstore import Hit, InvalidInputError, MindStore, Written
from mindstore.messages import is_question

__all__ = ["ChatMemory", "memory_block", "message_text", "is_question"]

MEMORY_HEADER = "Long-term memories about this user (most relevant first); use them when they help:"


def memory_block(hits: Sequence[Hit], header: str = MEMORY_HEADER) -> str:
    """The text of a memory block: a header, then one ``- text`` line per recalled memory."""
    return "\n".join([header, *(f"- {hit.slot.text}" for hit in hits)])


def message_text(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(p["text"] for p in content if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def _check_messages(messages: Any) -> list[Mapping[str, Any]]:
    if isinstance(messages, (str, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidInputError("messages must be a list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise InvalidInputError(f"messages[{i}] must be a dict with a string 'role'")
    return list(messages)


class ChatMemory:
    """Recall before the model answers, remember after, for one user (and optionally one agent).

    ``k`` memories at most are recalled, and only those with cosine similarity at least
    ``min_score`` to the user's last message. ``keep_roles`` says whose turns are stored:
    by default only the user's, so the assistant's own words never come back as "facts".
    """

    def __init__(
        self,
        store: MindStore,
        *,
        user_id: str,
        agent_id: str | None = None,
        k: int = 5,
        min_score: float = 0.15,
        keep_roles: Sequence[str] = ("user",),
        header: str = MEMORY_HEADER,
    ) -> None:
        if not isinstance(user_id, str) or not user_id.strip():
            raise InvalidInputError("user_id must be a non-empty string: memories are kept per user")
        self.store = store
        self.user_id = user_id
        self.agent_id = agent_id
        self.k = k
        self.min_score = min_score
        self.keep_roles = tuple(keep_roles)
        self.header = header

    def recall(self, messages: Sequence[Mapping[str, Any]]) -> list[Hit]:
        """The user's memories closest to their last message (none when there is no user text)."""
        query = next((message_text(m.get("content")) for m in reversed(_check_messages(messages)) if m["role"] == "user"), "")
        if not query.strip():
            return []
        return self.store.search(query, k=self.k, user_id=self.user_id, agent_id=self.agent_id, min_score=self.min_score)

    def prepare(self, messages: Sequence[Mapping[str, Any]], *, hits: Sequence[Hit] | None = None) -> list[dict[str, Any]]:
        """A copy of ``messages`` with a system message holding the recalled memories (or the
        given ``hits``), placed after the leading system messages. Unchanged (but copied) when
        nothing is recalled."""
        out = [dict(m) for m in _check_messages(messages)]
        hits = self.recall(out) if hits is None else hits
        if not hits:
            return out
        at = next((i for i, m in enumerate(out) if m["role"] != "system"), len(out))
        out.insert(at, {"role": "system", "content": memory_block(hits, self.header)})
        return out

    def remember(self, messages: Sequence[Mapping[str, Any]], reply: str | Mapping[str, Any] | None = None) -> list[Written]:
        """Store the turns of the last exchange worth keeping: the messages after the last
        assistant message, plus ``reply`` (text or an assistant message), filtered by
        ``keep_roles``; questions are skipped here, and greetings, bare acknowledgements and
        empty turns by :meth:`MindStore.add_messages` (see :mod:`mindstore.messages`). Returns the
        slots and what each write did (``Written.change``): a repeated fact reinforces the
        memory it repeats, a changed one ("my number is now ...") supersedes it."""
        msgs = _check_messages(messages)
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=-1)
        turn = [m for m in msgs[last + 1 :] if m["role"] != "system"]
        if reply is not None:
            turn.append({"role": "assistant", "content": reply} if isinstance(reply, str) else reply)
        keep = [
            {"role": m["role"], "content": text}
            for m in turn
            if m.get("role") in self.keep_roles and not is_question(text := message_text(m.get("content")))
        ]
        return self.store.add_messages(keep, user_id=self.user_id, agent_id=self.agent_id)
