"""The sidebar: spaces and their users, agents and sessions, with slot counts."""

from __future__ import annotations

from rich.markup import escape
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ..data import ScopeFilter, SpaceTree

_KIND_TITLES = {"user_id": "users", "agent_id": "agents", "session_id": "sessions"}


class ScopeTree(Tree[ScopeFilter]):
    """Pick a space, or one user, agent or session of a space; posts :class:`ScopeTree.Picked`."""

    class Picked(Message):
        def __init__(self, where: ScopeFilter) -> None:
            self.where = where
            super().__init__()

    def __init__(self, **kwargs) -> None:
        super().__init__("spaces", **kwargs)
        self.show_root = False
        self.guide_depth = 2

    def show(self, spaces: list[SpaceTree], selected: ScopeFilter | None) -> None:
        """Rebuild from ``spaces``, keeping ``selected`` highlighted."""
        self.clear()
        select: TreeNode[ScopeFilter] | None = None
        for sp in spaces:
            top = ScopeFilter(sp.name)
            node = self.root.add(f"{escape(sp.name)} [dim]({sp.count:,})[/]", data=top, expand=True)
            if top == selected:
                select = node
            for kind, title in _KIND_TITLES.items():
                items = sp.scopes.get(kind, [])
                if not items:
                    continue
                shown = f"{len(items):,}+" if sp.more.get(kind) else f"{len(items):,}"
                group = node.add(f"{title} [dim]({shown})[/]", data=top, expand=True)
                for sc in items:
                    where = ScopeFilter(sp.name, **{kind: sc.value})
                    leaf = group.add_leaf(f"{escape(sc.value)} [dim]({sc.count:,})[/]", data=where)
                    if where == selected:
                        select = leaf
                if sp.more.get(kind):
                    group.add_leaf(f"[dim]… more {title}: search, or open the space[/]", data=top)
        if select is not None:
            self.move_cursor(select)

    def on_tree_node_selected(self, event: Tree.NodeSelected[ScopeFilter]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.Picked(event.node.data))
