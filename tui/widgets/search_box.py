"""The search box: an Input whose `?` opens help and whose ↓ hands the focus to the results."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class SearchBox(Input):
    """Typing searches. `?` is the help key everywhere, so it is not typed here (a question needs
    no question mark to be searched by meaning); ↓ posts :class:`ToResults`."""

    # priority: checked before Input inserts the character, and only while the box has the focus
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "app.help", "Help", show=False, priority=True),
        Binding("down", "to_results", "Results", show=False),
    ]

    class ToResults(Message):
        """The user left the box downwards, for the results."""

    def action_to_results(self) -> None:
        self.post_message(self.ToResults())
