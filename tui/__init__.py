"""The Textual app for browsing and editing a store (``mindstore tui``)."""
