"""Small widgets of the mindstore TUI; each reports what happened with a message."""

from .binding_view import BindingView
from .scope_tree import ScopeTree
from .search_box import SearchBox
from .slot_table import SlotTable

__all__ = ["BindingView", "ScopeTree", "SearchBox", "SlotTable"]
