"""What every form of the console shares: breadcrumb, message line, help, refresh."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from ..guard import GuardedPump
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


class DbBanner(Static):
    """Says, on every form, that the database cannot be used now (and why); hidden otherwise."""

    DEFAULT_CSS = """
    DbBanner { height: auto; padding: 0 1; text-style: bold; display: none; }
    DbBanner.-error { background: $error; color: $text; }
    DbBanner.-warning { background: $warning; color: $background; }
    """

    _shown: tuple | None = None

    def show(self, state: tuple[str, str] | None) -> None:
        if state == self._shown:
            return
        self._shown = state
        text, severity = state or ("", "")
        self.set_class(severity == "error", "-error")
        self.set_class(severity == "warning", "-warning")
        self.update(safe(text))
        self.display = state is not None


class BaseScreen(GuardedPump, Screen):
    BREADCRUMB = "System administration"
    HELP_EXTRA: list[tuple[str, str]] = []
    is_home = False

    BINDINGS = [
        Binding("question_mark", "app.help", "Help", show=False, id="screen.help"),
    ]

    # Set by the app when the database changed while this form was hidden
    # behind another: it re-reads when it comes back, not while it is unseen.
    stale = False

    _banner: DbBanner | None = None

    def on_mount(self) -> None:
        self._mount_banner()

    def _mount_banner(self) -> DbBanner:
        # Under the breadcrumb (or at the top): hidden until the database goes away.
        if self._banner is None:
            self._banner = DbBanner(id="db-banner")
            crumbs = self.query(Breadcrumb)
            if crumbs:
                self.mount(self._banner, after=crumbs.first())
            else:
                self.mount(self._banner, before=0)
            self._banner.show(self.app.db_banner() if hasattr(self.app, "db_banner") else None)
        return self._banner

    def show_db_state(self) -> None:
        state = self.app.db_banner() if hasattr(self.app, "db_banner") else None
        if self._banner is None:
            if state is None or not self.is_mounted:
                return
            self._mount_banner()  # a form whose own mounting stopped at a database error
        self._banner.show(state)

    def db_refused(self, exc: BaseException, what: str = "Not saved") -> None:
        """A save that failed for the database: say so in the form; what was typed stays."""
        from ..outage import is_outage, reason

        self.app.database_error(exc)
        if is_outage(exc):
            text = (f"{what}: the database is unavailable ({reason(exc)}). Your changes are kept: "
                    "press Ctrl+S again when it is back.")
        else:
            text = f"{what}: database error: {reason(exc)}"
        show = getattr(self, "show_message", None)
        if show is not None:
            show(text)

    def on_screen_resume(self) -> None:
        if self.stale and hasattr(self, "jobs_changed"):
            if getattr(self.app, "db_problem", None):
                return  # re-read when the database is back
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
    def actor(self):
        """Who acts, as the app built it once (user, managers, default company)."""
        return self.app.actor
