"""What every dialog shares: help (F1, or ? outside a text field); and the OK / Cancel
dialogs' buttons and how they answer.

A dialog does no I/O: OK dismisses it with its result (``action_ok`` of the
subclass), Cancel, Escape or the Cancel button dismiss it with None.
"""

from __future__ import annotations

from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Button

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """A dialog with its help: F1 anywhere, ? where it types nothing (a text field takes
    it as text; the date, time and number fields refuse it, so it never replaces what is
    there). The help lists the dialog's keys and its ``HELP_EXTRA`` lines."""

    BINDINGS = [
        Binding("f1", "dialog_help", "Help", id="dialog.help"),
        Binding("question_mark", "dialog_help", "Help", show=False, id="dialog.help_key"),
    ]
    HELP_TITLE: str | None = None
    HELP_EXTRA: list[tuple[str, str]] = []

    def action_dialog_help(self) -> None:
        from .help import HelpDialog

        if not isinstance(self.app.screen, HelpDialog):
            self.app.push_screen(HelpDialog(self))


class OkCancelDialog(Dialog[T]):
    #: Extra buttons between OK and Cancel: (label, id); pressing one calls on_extra_button(id).
    EXTRA_BUTTONS: tuple[tuple[str, str], ...] = ()

    def compose_buttons(self) -> ComposeResult:
        with Horizontal(classes="dialog-buttons"):
            yield Button("OK", id="ok", variant="primary", compact=True)
            for label, button_id in self.EXTRA_BUTTONS:
                yield Button(label, id=button_id, compact=True)
            yield Button("Cancel", id="cancel", compact=True)

    def action_ok(self) -> None:  # pragma: no cover - every dialog has its own
        raise NotImplementedError

    def on_extra_button(self, button_id: str) -> None:
        pass

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.action_ok()
        elif event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.on_extra_button(event.button.id or "")

    def action_cancel(self) -> None:
        self.dismiss(None)
