"""The navigation pane: Modules > System administration > Inquiries / Setup / Periodic."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, Tree

from ..dialogs.base import Dialog

MENU = [
    ("Inquiries", [("Batch jobs", "batch_jobs"), ("Batch job history", "history")]),
    ("Setup", [("Batch groups", "groups"), ("Batch servers", "servers"),
               ("Active periods for batch jobs", "periods"), ("Calendars", "calendars")]),
    ("Periodic", [("Batch job history clean-up", "cleanup")]),
]


class NavigationScreen(Dialog[str | None]):
    HELP_TITLE = "Modules"
    HELP_EXTRA = [("Up / Down", "Move through the modules and forms"), ("Enter", "Open the form")]
    BINDINGS = [
        Binding("escape,f2", "close", "Close", id="navigation.close"),
    ]

    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("Modules", id="nav-tree")
        tree.show_root = True
        sysadmin = tree.root.add("System administration", expand=True)
        for group, items in MENU:
            node = sysadmin.add(group, expand=True)
            for label, name in items:
                node.add_leaf(label, data=name)
        tree.root.add_leaf("Action center", data="action_center")
        tree.root.expand()
        with Vertical(classes="dialog navigation-dialog"):
            yield Label("Navigation pane", classes="dialog-title")
            yield tree
            yield Label("Enter opens, Escape closes.", classes="dim")

    def on_mount(self) -> None:
        tree = self.query_one(Tree)
        tree.focus()
        # Start on "Batch jobs".
        tree.cursor_line = 3

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data:
            self.dismiss(event.node.data)

    def action_close(self) -> None:
        self.dismiss(None)
