"""Which chat messages become memories: the one policy of :meth:`MindStore.add_messages` and of
:class:`mindstore.integrations.chat.ChatMemory`.

A turn is kept when its role is in :data:`ROLES_KEPT` and :func:`worth_keeping` says its text says
something: not empty, not a bare greeting or acknowledgement. ``ChatMemory`` stores through
``add_messages``, so the same rule applies there; it also skips :func:`is_question` turns, since in
a recall loop the user's question is the query, not a fact about the user.
"""

from __future__ import annotations

import re

__all__ = ["ROLES_KEPT", "is_question", "worth_keeping"]

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
