"""The help screen (? or F1): what each key does, in one place."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen

HELP = """\
# mindstore: keys

**Browse** (the first screen)

| key | does |
| --- | --- |
| `/` | search by meaning in the picked space and scope (results update as you type; `↓` moves to them) |
| `Esc` | clear the search, back to browsing |
| `↑ ↓ PgUp PgDn Ctrl+End` | move; more rows load as you reach the end (`n` loads the next page now) |
| `Enter` | open the highlighted slot |
| `Tab` | move between the sidebar, the search box and the table |
| `d` | delete the highlighted slot (asks first) |
| `D` | delete every slot of the user, agent or session picked in the sidebar (asks first) |
| `u` | undo the last delete: the slots come back as they were (same ids, usage and history) |
| `r` | reload counts and rows |

**A slot**

| key | does |
| --- | --- |
| `e` | edit text and metadata (`Ctrl+S` saves: the text is re-embedded, history grows) |
| `d` | delete this slot |
| `Enter` on a neighbour | open it |
| `c` | on a neural binding (a slot with a label and its drawing): recall from the drawing and list the slots the read heads read, with their weights |
| `Esc` | back |

`q` quits, `?` or `F1` shows this help (from the search box too), `Esc` closes it. Browsing and
searching here do not count as reads of the slots (`MindStoreApp(count_reads=True)` counts them).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close_help", "Close help")]

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # markdown-it is slow to import: paid when help opens, not at start

        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)

    def action_close_help(self) -> None:
        self.dismiss(None)
