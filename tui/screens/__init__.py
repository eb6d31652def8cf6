"""Whole views of the mindstore TUI."""

from .browse import BrowseScreen
from .confirm import ConfirmScreen
from .edit import EditScreen
from .error import ErrorScreen
from .help import HelpScreen
from .slot import SlotScreen

__all__ = ["BrowseScreen", "ConfirmScreen", "EditScreen", "ErrorScreen", "HelpScreen", "SlotScreen"]
