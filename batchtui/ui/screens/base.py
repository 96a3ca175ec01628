"""What every form of the console shares: breadcrumb, message line, banner, help, refresh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Label, Static

from ..guard import ServiceCall, guarded
from ..safe_text import for_console, safe

if TYPE_CHECKING:
    from ...actor import Actor
    from ..app import BatchTuiApp


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
        self.update(safe(for_console(text or "")))
        self.display = bool(text)

    @property
    def text(self) -> str:
        return (self._shown or ("", ""))[0] or ""


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


class BaseScreen(Screen[Any]):
    BREADCRUMB = "System administration"
    HELP_EXTRA: list[tuple[str, str]] = []
    HELP_TITLE: str | None = None
    is_home = False

    BINDINGS = [
        Binding("question_mark", "app.help", "Help", show=False, id="screen.help"),
    ]

    # Set by the app when the database changed while this form was hidden
    # behind another: it re-reads when it comes back, not while it is unseen.
    stale = False

    _banner: DbBanner | None = None

    def __init__(self) -> None:
        super().__init__()
        self._texts: dict[str, str] = {}  # what set_text last put in each label
        self._binding_state: object = None

    @property
    def console(self) -> BatchTuiApp:
        return cast("BatchTuiApp", self.app)

    # -- the database ----------------------------------------------------------

    def service_call(self, refused: str | None = None) -> ServiceCall:
        """A block that calls services or reads the database (see ``guard``). With refused
        ("Not saved"), a database error also says so on the form's message line."""
        if refused is None:
            return ServiceCall(self.app)
        return ServiceCall(self.app, lambda exc: self.say_refused(exc, refused))

    def say_refused(self, exc: BaseException, what: str = "Not saved") -> None:
        """A save that failed for the database, said in the form; what was typed stays."""
        from ..outage import is_outage, reason

        if is_outage(exc):
            text = (f"{what}: the database is unavailable ({reason(exc)}). Your changes are kept: "
                    "press Ctrl+S again when it is back.")
        else:
            text = f"{what}: database error: {reason(exc)}"
        self.show_message(text)

    def show_message(self, text: str | None, severity: str = "error") -> None:
        """The form's message line (forms without one: nothing)."""
        found = self.query(MessageLine)
        if found:
            found.first().show(text, severity)

    def message_text(self) -> str:
        found = self.query(MessageLine)
        return found.first().text if found else ""

    def jobs_changed(self) -> None:
        """The database changed: re-read what the form shows (forms that show live data)."""

    def on_tick(self) -> None:
        """Once a second while on top (forms that show the passing of time)."""

    def alerts_changed(self) -> None:
        """New alerts for the acting user arrived."""

    # -- the banner ------------------------------------------------------------

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
            self._banner.show(self.console.db_banner())
        return self._banner

    def show_db_state(self) -> None:
        state = self.console.db_banner()
        if self._banner is None:
            if state is None or not self.is_mounted:
                return
            self._mount_banner()  # a form whose own mounting stopped at a database error
        if self._banner is not None:
            self._banner.show(state)

    @guarded
    def on_screen_resume(self) -> None:
        if self.stale:
            if self.console.db_problem:
                return  # re-read when the database is back
            self.stale = False
            self.jobs_changed()

    def is_dirty(self) -> bool:
        return False

    # -- drawing ---------------------------------------------------------------

    def set_text(self, selector: str, text: str | Text) -> None:
        """Update a label only when its text changes (an update costs a layout pass); a str is
        shown as it is, never read as markup (safe_text.py)."""
        if isinstance(text, str):
            text = safe(text)
        key = str(text)
        if self._texts.get(selector) == key:
            return
        self._texts[selector] = key
        widget = self.query_one(selector, Label)
        # A label of fixed width keeps its size: repaint it, skip the layout pass.
        width = widget.styles.width
        widget.update(text, layout=width is None or width.is_auto)

    def refresh_bindings_if(self, state: object) -> None:
        """Refresh the footer only when what applies has changed (it is rebuilt each time)."""
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    # -- who is acting -----------------------------------------------------------

    @property
    def user(self) -> str:
        return self.console.user

    @property
    def actor(self) -> Actor:
        """Who acts, as the app built it once (user, managers, default company)."""
        return self.console.actor
