"""Which chat messages become memories: the one policy of :meth:`MindStore.add_messages` and of
:class:`mindstore.integrations.chat.ChatMemory`.

A turn is kept when its role is in :data:`ROLES_KEPT` and :func:`worth_keeping` says its text says
something: not empty, not a bare greeting or acknowledgement. ``ChatMemory`` stores through
``add_messages``, so the same rule applies there; it also skips :func:`is_question` turns, since in
a recall loop the user's question is the query, not a fact about the user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidInputError
from .validate import check_chars, check_metadata

__all__ = ["ROLES_KEPT", "is_question", "kept_messages", "worth_keeping"]

ROLES_KEPT = ("user", "assistant")

# A chat message made only of these words (at most _PHATIC_MAX of them, any punctuation or emoji
# around) is a greeting or an acknowledgement, not a memory: "Hi there!", "Thanks, great!",
# "Congratulations!", "ok 👍". One word outside the list keeps the message.
_PHATIC = frozenset("""
    hi hello hey there thanks thank you thx ty ok okay k yes yeah yep no nope sure bye goodbye cool great nice
    lol haha hmm got it sounds good congratulations congrats awesome perfect wow cheers welcome please morning
    evening night np so much very a lot again
""".split())
_PHATIC_MAX = 4


def worth_keeping(text: str) -> bool:
    """A chat message worth a slot: it has a word, and it is not made only of at most
    ``_PHATIC_MAX`` greeting or acknowledgement words ("Hi there!", "Thanks, great!", "ok 👍")."""
    words = re.findall(r"\w+", text.casefold())
    return bool(words) and not (len(words) <= _PHATIC_MAX and all(w in _PHATIC for w in words))


def is_question(text: str) -> bool:
    """A message that only asks ("where do I live?") holds no fact worth remembering."""
    return text.rstrip().endswith("?")


def kept_messages(messages: Any, metadata: Any, speakers: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The texts of the messages worth keeping (OpenAI shape: ``[{"role": ..., "content": ...}]``)
    and one metadata dict each: ``metadata``, the ``role``, and ``name`` / ``speaker`` (a
    message's own ``name`` wins over ``speakers[role]``). Every message is checked, kept or not."""
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        raise InvalidInputError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if speakers is not None and (not isinstance(speakers, Mapping) or not all(isinstance(v, str) and v.strip() for v in speakers.values())):
        raise InvalidInputError("speakers must map roles to non-empty names, e.g. {'user': 'Caroline', 'assistant': 'Mia'}")
    base = check_metadata(metadata)
    texts, metas = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InvalidInputError(f"messages[{i}] must be a dict with 'role' and 'content'")
        role, content = m["role"], m["content"]
        if not isinstance(role, str):
            raise InvalidInputError(f"messages[{i}]['role'] must be a string")
        if content is None:
            continue  # e.g. an assistant turn that only calls tools
        if not isinstance(content, str):
            raise InvalidInputError(f"messages[{i}]['content'] must be a string (multi-part content: pass its text)")
        check_chars(content, f"messages[{i}]['content']")  # malformed even in a turn not worth keeping
        if role not in ROLES_KEPT or not worth_keeping(content):
            continue
        meta = {**base, "role": role}
        if isinstance(m.get("name"), str):
            meta["name"] = m["name"]
        speaker = meta.get("name") or (speakers or {}).get(role)
        if speaker:
            meta["speaker"] = speaker
        texts.append(content)
        metas.append(meta)
    return texts, metas
