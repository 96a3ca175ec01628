"""What every form of the console shares: breadcrumb, message line, help, refresh."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from ..safe_text import safe


class Breadcrumb(Static):
    """Where the form lives in the navigation, as the ERP shows it."""


class MessageLine(Static):
    """The inline message of a form: a refusal, a validation error, or a note."""

    _shown: tuple | None = None

    def show(self, text: str | None, severity: str = "error") -> None:
        if self._shown == (text, severity):
            return  # an update re-lays the screen out: only when it changes
        self._shown = (text, severity)
        self.set_class(severity == "error" and bool(text), "-error")
        self.set_class(severity != "error" and bool(text), "-note")
        self.update(safe(text or ""))
        self.display = bool(text)


class BaseScreen(Screen):
    BREADCRUMB = "System administration"
    HELP_EXTRA: list[tuple[str, str]] = []
    is_home = False

    BINDINGS = [
        Binding("question_mark", "app.help", "Help", show=False, id="screen.help"),
    ]

    # Set by the app when the database changed while this form was hidden
    # behind another: it re-reads when it comes back, not while it is unseen.
    stale = False

    def on_screen_resume(self) -> None:
        if self.stale and hasattr(self, "jobs_changed"):
            self.stale = False
            self.jobs_changed()

    def is_dirty(self) -> bool:
        return False

    def set_text(self, selector: str, text) -> None:
        """Update a label only when its text changes (an update costs a layout pass)."""
        widget = self.query_one(selector)
        key = str(text)
        if getattr(widget, "_batchtui_text", None) != key:
            widget._batchtui_text = key
            # A label of fixed width keeps its size: repaint it, skip the layout pass.
            width = widget.styles.width
            widget.update(text, layout=width is None or width.is_auto)

    _binding_state = None

    def refresh_bindings_if(self, state) -> None:
        """Refresh the footer only when what applies has changed (it is rebuilt each time)."""
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    @property
    def user(self) -> str:
        return self.app.user

    @property
    def managers(self):
        from ...identity import managers

        return managers(self.app.config.managers)
