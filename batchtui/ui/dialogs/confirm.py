"""Confirmations: a question and a row of answers; Escape answers None."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label, Static
from textual.widgets.button import ButtonVariant

from ..safe_text import safe
from .base import Dialog


class ConfirmDialog(Dialog[str | None]):
    """Returns the key of the chosen button, or None on Escape."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("left", "app.focus_previous", "Previous", show=False),
        Binding("right", "app.focus_next", "Next", show=False),
    ]

    HELP_EXTRA = [("Left / Right", "Move between the answers"), ("Enter", "Choose the answer in focus")]

    def __init__(self, title: str, message: str, buttons: list[tuple[str, str]] | None = None,
                 default: str | None = None) -> None:
        super().__init__()
        self.HELP_TITLE = title
        self.dialog_title = title
        self.message = message
        self.buttons = buttons or [("yes", "Yes"), ("no", "No")]
        self.default = default or self.buttons[0][0]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm-dialog"):
            yield Label(safe(self.dialog_title), classes="dialog-title")
            yield Static(safe(self.message, keep_newlines=True), classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                for key, label in self.buttons:
                    variant: ButtonVariant = "primary" if key == self.default else "default"
                    yield Button(label, id=f"answer-{key}", variant=variant, compact=True)

    def on_mount(self) -> None:
        self.query_one(f"#answer-{self.default}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("answer-"))

    def action_cancel(self) -> None:
        self.dismiss(None)
