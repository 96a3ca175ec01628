"""Help: the keys of the screen in front of you."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from ..safe_text import safe


def _key_text(app: App[Any], key: str) -> str:
    return " / ".join(app.get_key_display(Binding(k.strip(), "")) for k in key.split(","))


class HelpDialog(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,question_mark,q", "close", "Close", id="help.close")]

    def __init__(self, screen: Screen[Any]) -> None:
        super().__init__()
        self.for_screen = screen
        self.rows: list[tuple[str, str]] = []  # (keys as shown, what they do)

    def compose(self) -> ComposeResult:
        screen = self.for_screen
        title = getattr(screen, "HELP_TITLE", None) or screen.title or type(screen).__name__
        table = Table(show_header=True, header_style="bold", box=None, expand=True, pad_edge=False)
        table.add_column("Key", no_wrap=True, min_width=14)
        table.add_column("Does")
        remapped: dict[str, str] = getattr(self.app, "keys_by_id", {})
        rows: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        modal = isinstance(screen, ModalScreen)
        for source in (screen, self.app):
            for binding in getattr(source, "BINDINGS", []):
                if not isinstance(binding, Binding) or not binding.description:
                    continue
                if modal and source is self.app and not binding.priority:
                    continue  # behind a dialog only the app's priority keys (Ctrl+Q) work
                keys = binding.key
                # A remapped key shows as the user set it (the app keeps the keymap it was given).
                if binding.id and binding.id in remapped:
                    keys = remapped[binding.id]
                if (keys, binding.action) in seen:
                    continue
                seen.add((keys, binding.action))
                rows.append((_key_text(self.app, keys), binding.description))
        for extra in getattr(screen, "HELP_EXTRA", []):
            rows.append(extra)
        rows.append(("Tab / Shift+Tab", "Next / previous field"))
        rows.append(("Ctrl+P", "Command palette: every action by name"))
        self.rows = rows
        for key, text in rows:
            # "[" is a key too: never markup.
            table.add_row(safe(key, keep_newlines=True), safe(text, keep_newlines=True))
        with Vertical(classes="dialog help-dialog"):
            yield Label(safe(f"Help: {title}"), classes="dialog-title")
            with VerticalScroll():
                yield Static(table)
            yield Static("Escape closes.", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
