"""The console application: screens, the embedded batch server, live refresh."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peewee import fn
from textual.actions import ActionParseResult
from textual.app import App, SystemCommand
from textual.binding import Binding, Keymap
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.timer import Timer

from .. import models as m
from ..actor import Actor
from ..config import Config, acting_user, load_config
from ..errors import UserError
from .guard import ServiceCall
from .messages import AlertRaised, DatabaseHealth, JobsChanged, ReadFailed
from .outage import ThreadConnection, close_quietly, is_outage, reason
from .safe_text import notify_plain
from .screens.base import BaseScreen
from .widgets.toggles import install as _install_toggles

_install_toggles()  # checkboxes and radio buttons say their state without colour

if TYPE_CHECKING:
    from .watcher import ChangeWatcher
    from .widgets.guide import TaskGuide


class BatchTuiApp(App[None]):
    """The console. It owns the embedded batch server: started on mount, stopped on unmount.

    When the database goes away (see outage.py) it says so on every form
    (``db_problem``, the banner under the breadcrumb), keeps what was typed,
    stops re-reading until the watcher finds the database back, then re-reads
    the forms on screen. Every place the console calls a service or reads the
    database goes through one helper, ``service_call()`` (guard.py).
    """

    CSS_PATH = "batchtui.tcss"
    TITLE = "batchtui"
    SUB_TITLE = "System administration"

    BINDINGS = [
        Binding("f2", "navigation", "Modules", id="app.navigation"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f4", "action_center", "Action center", show=False, id="app.action_center"),
        Binding("ctrl+g", "task_guide", "Task guide", show=False, id="app.task_guide"),
    ]

    def __init__(self, *, server: bool = True, user: str | None = None, config: Config | None = None,
                 engine_factory: Callable[[Callable[[], None]], Any] | None = None, poll_interval: float = 1.0,
                 start_screen: str = "batch_jobs", guide: bool = False, company: str | None = None) -> None:
        super().__init__()
        self.user = user or acting_user()
        if config is None:
            try:
                config = load_config()
            except UserError:
                config = Config()
        self.config = config
        # A new job's Company: the config's default, or the one given (the demo's USMF).
        self.default_company = company or config.default_company
        self.server_enabled = server
        self._actor: Actor | None = None
        self._engine_factory = engine_factory
        self.engine: Any = None  # the embedded batch server (BatchServerEngine), None when off
        self.poll_interval = poll_interval
        self.start_screen = start_screen
        self.guide = guide
        self.watcher: ChangeWatcher | None = None
        self.task_guide: TaskGuide | None = None  # opened by Ctrl+G
        self.keys_by_id: dict[str, str] = {}  # the keymap set on the app: binding id -> keys
        self._last_refresh = 0.0
        self._refresh_timer: Timer | None = None
        self.db_problem: str | None = None  # why the database cannot be used now; None: it can
        self._ui_connection = ThreadConnection()
        self._engine_error: str | None = None

    # -- life cycle ---------------------------------------------------------

    @property
    def actor(self) -> Actor:
        """Who acts in this console: built once, when first needed (the database is open by then;
        on PostgreSQL the role's membership of batchtui_manager decides who manages)."""
        if self._actor is None:
            from ..identity import managers

            self._actor = Actor.of(self.user, managers(self.config.managers), self.default_company,
                                   self.config.smtp.recipients, self.config.delivery)
        return self._actor

    def on_mount(self) -> None:
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        self.theme_changed_signal.subscribe(self, self._theme_chosen)
        self.push_screen(self.make_screen(self.start_screen))
        if self.server_enabled:
            self._start_engine()
        self._start_watcher()
        self.set_interval(self.poll_interval, self._tick)
        if self.guide:
            self.call_after_refresh(self.action_open_guide)

    def _theme_chosen(self, theme: Any) -> None:
        """A theme chosen (Ctrl+P > Change theme): remembered in the config file for next time."""
        name = getattr(theme, "name", str(theme))
        if self.config.path is None or name == self.config.theme:
            return
        from ..config import save_theme

        try:
            save_theme(self.config.path, name)
        except UserError as exc:
            notify_plain(self, f"The theme is not remembered: {exc}", title="Theme", severity="warning")
            return
        self.config.theme = name

    def _start_watcher(self) -> None:
        from .watcher import ChangeWatcher

        watcher = ChangeWatcher(self.user, on_change=self._engine_changed, on_alert=self._alert_arrived,
                                interval=self.poll_interval, last_alert_id=self._max_alert_id(),
                                on_health=self._health_reported)
        self.watcher = watcher
        watcher.start()

    def _start_engine(self) -> None:
        try:
            if self._engine_factory is not None:
                engine = self._engine_factory(self._engine_changed)
            else:
                from ..engine import BatchServerEngine

                engine = BatchServerEngine(on_change=self._engine_changed, console=True)
            self.engine = engine
            engine.start()
        except Exception as exc:  # noqa: BLE001 - the console still works without its server
            self.engine = None
            notify_plain(self, f"The embedded batch server did not start: {exc}",
                         title="Batch server", severity="error", timeout=8)

    def _engine_changed(self) -> None:
        # Engine or watcher thread: post only (thread-safe, never blocks).
        self.post_message(JobsChanged())

    def _alert_arrived(self, alert: Any) -> None:
        # Watcher thread.
        self.post_message(AlertRaised(alert.id, alert.message, alert.popup))

    def _health_reported(self, problem: str | None) -> None:
        # Watcher thread.
        self.post_message(DatabaseHealth(problem))

    def on_unmount(self) -> None:
        self.stop_watcher()
        self.stop_engine()

    def stop_watcher(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()

    def stop_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                engine.stop(grace=5.0)
            except Exception:  # noqa: BLE001 - closing: nothing more to do about it
                pass

    def wake_engine(self) -> None:
        if self.engine is not None:
            try:
                self.engine.wake()
            except Exception:  # noqa: BLE001 - a wake-up only saves the server a poll
                pass

    # -- live refresh -------------------------------------------------------

    def _max_alert_id(self) -> int:
        with self.service_call():
            return m.Alert.select(fn.MAX(m.Alert.id)).where(m.Alert.user == self.user).scalar() or 0
        return 0

    def _tick(self) -> None:
        """Once a second: screens that show the passing of time (heartbeats, running tasks)."""
        with self.service_call():
            self._check_engine_error()
            if self.db_problem:
                return  # the forms are re-read when the database is back
            screen = self.screen
            if isinstance(screen, BaseScreen):
                try:
                    screen.on_tick()
                except NoMatches:
                    pass  # pushed but not composed yet

    def on_alert_raised(self, event: AlertRaised) -> None:
        if event.popup:
            notify_plain(self, event.message, title="Batch job alert", timeout=10)
        with self.service_call():
            for screen in self.screen_stack:
                if isinstance(screen, BaseScreen):
                    screen.alerts_changed()

    # A busy batch server commits many times a second: refresh at most this often.
    REFRESH_SPACING = 0.25

    def on_jobs_changed(self, event: JobsChanged) -> None:
        if self.db_problem:
            return  # nothing to read now: everything is re-read when the database is back
        wait = self._last_refresh + self.REFRESH_SPACING - time.monotonic()
        if wait > 0:
            if self._refresh_timer is None:
                self._refresh_timer = self.set_timer(wait, self._refresh_screens)
            return
        self._refresh_screens()

    def _refresh_screens(self) -> None:
        """Re-read what the visible screens show; the ones hidden behind re-read when they come back."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        self._last_refresh = time.monotonic()
        with self.service_call():
            self._refresh_stack()

    def _refresh_stack(self) -> None:
        visible_screens = True
        for screen in reversed(self.screen_stack):
            if isinstance(screen, BaseScreen):
                if visible_screens:
                    try:
                        screen.jobs_changed()
                    except NoMatches:
                        # Pushed but not composed yet: it reads fresh data when it is.
                        pass
                else:
                    screen.stale = True
            if not isinstance(screen, ModalScreen):
                visible_screens = False

    def refresh_now(self) -> None:
        self.post_message(JobsChanged())
        if self.watcher is not None:
            self.watcher.wake()

    # -- the database going away and coming back -------------------------------

    def check_connection(self) -> None:
        """Before each piece of work: the UI thread's connection is still on the database's file."""
        self._ui_connection.check()

    def service_call(self) -> ServiceCall:
        """A block that calls services or reads the database: a database error in it is reported
        (banner, notification) and swallowed; the caller keeps what was typed (guard.py)."""
        return ServiceCall(self)

    def on_read_failed(self, event: ReadFailed) -> None:
        """A read in a worker thread failed for the database."""
        self.database_error(event.error)

    def database_error(self, exc: BaseException) -> None:
        """A database error in the UI thread: say so; the watcher looks again at once."""
        close_quietly()  # opened again by the next query (after a failure it may be dead)
        if not is_outage(exc):
            notify_plain(self, f"Database error: {reason(exc)}", title="Database", severity="error", timeout=8)
            return
        self.set_db_problem(reason(exc))
        if self.watcher is not None:
            self.watcher.recheck(probe_writes=True)

    def on_database_health(self, event: DatabaseHealth) -> None:
        self.set_db_problem(event.problem)

    def set_db_problem(self, problem: str | None) -> None:
        if problem == self.db_problem:
            return
        was, self.db_problem = self.db_problem, problem
        close_quietly()
        self.show_db_state()
        if problem and not was:
            notify_plain(self, f"Database unavailable: {problem}. The console retries every second; "
                         "what you typed is kept.", title="Database", severity="error", timeout=8)
        elif was and not problem:
            notify_plain(self, "The database is available again.", title="Database", timeout=5)
            self._refresh_screens()  # and the hidden forms when they come back
            self.wake_engine()

    def _check_engine_error(self) -> None:
        """The embedded server's last database error (it writes every round: it is the first to
        know of a database that can no longer be written)."""
        error = getattr(self.engine, "error", None) if self.engine is not None else None
        if error != self._engine_error:
            self._engine_error = error
            self.show_db_state()
            if error and self.watcher is not None:
                self.watcher.recheck(probe_writes=True)

    def db_banner(self) -> tuple[str, str] | None:
        """The banner of every form: (text, "error" or "warning"), or None when all is well."""
        if self.db_problem:
            return (f"Database unavailable: {self.db_problem} — retrying every second; "
                    "your unsaved changes are kept.", "error")
        if self._engine_error:
            error = self._engine_error
            return (f"{error[:1].upper()}{error[1:]} — it retries with back-off.", "warning")
        return None

    def show_db_state(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, BaseScreen):
                try:
                    screen.show_db_state()
                except NoMatches:
                    pass

    async def run_action(self, action: str | ActionParseResult, default_namespace: DOMNode | None = None,
                         namespaces: Mapping[str, DOMNode] | None = None) -> bool:
        """Keys, commands and clicks (Textual's public entry point for every action).

        The console's own actions read the database through ``service_call``; this
        is the same helper around any action at all (a form that has not been
        brought to it yet), so a database error behind a key is reported, never
        the end of the console.
        """
        with self.service_call():
            return await super().run_action(action, default_namespace, namespaces)
        return True

    # -- key maps -------------------------------------------------------------

    def set_keymap(self, keymap: Keymap) -> None:
        super().set_keymap(keymap)
        self.keys_by_id = dict(keymap)

    def update_keymap(self, keymap: Keymap) -> None:
        super().update_keymap(keymap)
        self.keys_by_id.update(keymap)

    # -- navigation ---------------------------------------------------------

    def make_screen(self, name: str, **kwargs: Any) -> Screen[Any]:
        # Only the screen asked for is imported: importing every one to open the
        # Batch jobs page cost about 60 ms of the console's start (issue 17).
        module, class_name = _SCREENS[name]
        factory: Callable[..., Screen[Any]] = getattr(import_module(f"{__package__}.screens.{module}"), class_name)
        return factory(**kwargs)

    def open_screen(self, name: str, **kwargs: Any) -> None:
        """Open a form from the navigation: one of each, on top of the Batch jobs page."""
        if name == "cleanup":
            self.action_cleanup()
            return

        def home(screen: Screen[Any]) -> bool:
            return isinstance(screen, BaseScreen) and screen.is_home

        # Leave stacked forms (but never the base Batch jobs page).
        while len(self.screen_stack) > 2 and not home(self.screen):
            if isinstance(self.screen, BaseScreen) and self.screen.is_dirty():
                break
            self.pop_screen()
        if name == "batch_jobs" and home(self.screen):
            return
        with self.service_call():  # a form that cannot be read is not opened
            self.push_screen(self.make_screen(name, **kwargs))

    def action_navigation(self) -> None:
        from .screens.navigation import NavigationScreen

        def chosen(name: str | None) -> None:
            if name:
                self.open_screen(name)

        self.push_screen(NavigationScreen(), chosen)

    def action_action_center(self) -> None:
        self.open_screen("action_center")

    def action_cleanup(self) -> None:
        """Batch job history clean-up: the dialog, then how many runs would go, asked first."""
        from .dialogs.cleanup import CleanupDialog, CleanupRequest
        from .dialogs.confirm import ConfirmDialog

        title = "Batch job history clean-up"

        def clean(request: CleanupRequest, dry_run: bool) -> int | None:
            from .. import history

            with self.service_call():
                try:
                    return history.cleanup_history(older_than_days=request.older_than_days,
                                                   statuses=request.statuses or None, company=request.company,
                                                   user=request.user, actor=self.actor, dry_run=dry_run)
                except UserError as exc:
                    notify_plain(self, exc, title=title, severity="error")
                    return None
            return None  # the database failed: reported by service_call

        def chosen(request: CleanupRequest | None) -> None:
            if request is None:
                return
            count = clean(request, dry_run=True)
            if count is None:
                return
            if count == 0:
                notify_plain(self, "No run of the batch job history matches: nothing deleted.", title=title)
                return

            def answered(answer: str | None) -> None:
                if answer != "delete":
                    notify_plain(self, "Nothing deleted.", title=title)
                    return
                deleted = clean(request, dry_run=False)
                if deleted is None:
                    return
                notify_plain(self, f"Deleted {deleted} run(s) from the batch job history.", title=title)
                self.refresh_now()

            self.push_screen(ConfirmDialog(
                title, f"{count} run(s) of the batch job history would be deleted: {request.describe()}, "
                       "with their tasks' attempts and logs.\n\nDelete them?",
                [("delete", f"Delete {count}"), ("cancel", "Cancel")], default="cancel"), answered)

        self.push_screen(CleanupDialog(), chosen)

    def action_task_guide(self) -> None:
        """Ctrl+G: open the task guide, or hide / show it."""
        from .widgets.guide import toggle_guide

        toggle_guide(self)

    def action_open_guide(self) -> None:
        from .widgets.guide import open_guide

        open_guide(self)

    def action_help(self) -> None:
        from .dialogs.help import HelpDialog

        if isinstance(self.screen, HelpDialog):
            return
        self.push_screen(HelpDialog(self.screen))

    NAVIGATION = [
        ("Batch jobs", "System administration > Inquiries > Batch jobs", "batch_jobs"),
        ("Batch job history", "System administration > Inquiries > Batch job history", "history"),
        ("Batch groups", "System administration > Setup > Batch groups", "groups"),
        ("Batch servers", "System administration > Setup > Server configuration", "servers"),
        ("Active periods for batch jobs", "System administration > Setup > Active periods for batch jobs",
         "periods"),
        ("Calendars", "System administration > Setup > Calendars of closed days", "calendars"),
        ("Batch job history clean-up", "System administration > Periodic > Batch job history clean-up", "cleanup"),
        ("Action center", "Alerts for you", "action_center"),
    ]

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for title, help_text, name in self.NAVIGATION:
            yield SystemCommand(title, help_text, lambda name=name: self.open_screen(name))
        yield SystemCommand("Modules", "The navigation pane: Modules > System administration",
                            self.action_navigation)
        # Every action of the screen in front: its bindings, by their descriptions.
        seen = set()
        for binding in getattr(screen, "BINDINGS", []):
            if not isinstance(binding, Binding) or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            if screen.check_action(binding.action, ()) is False:
                continue
            yield SystemCommand(binding.description, f"{screen.title or ''} ({binding.key})",
                                lambda action=binding.action, s=screen: s.run_action(action))
        yield SystemCommand("Task guide", "Walk through Create a batch job with USMF, step by step (Ctrl+G)",
                            self.action_open_guide)
        yield SystemCommand("Help", "The keys of the screen in front of you", self.action_help)
        yield from super().get_system_commands(screen)


# The forms make_screen opens: name -> (module under ui/screens, class).
_SCREENS: dict[str, tuple[str, str]] = {
    "batch_jobs": ("batch_jobs", "BatchJobsScreen"),
    "history": ("history", "HistoryScreen"),
    "groups": ("groups", "BatchGroupsScreen"),
    "servers": ("servers", "BatchServersScreen"),
    "periods": ("periods", "ActivePeriodsScreen"),
    "calendars": ("calendars", "CalendarsScreen"),
    "action_center": ("action_center", "ActionCenterScreen"),
}

DEMO_COMPANY = "USMF"


def run_console(db_url: str | None = None, demo: bool = False, server: bool = True, guide: bool = False) -> int:
    from .. import db

    if demo and not db_url:
        db_url = db.demo_url()
    fresh = False
    if demo:
        from urllib.parse import urlparse

        path = urlparse(db_url or "").path
        fresh = not Path(path).exists() or Path(path).stat().st_size == 0
    db.open_database(db_url)
    if demo:
        from ..demo import load_demo

        try:
            has_jobs = m.BatchJob.select().exists()
        except Exception:  # noqa: BLE001 - an empty or unreadable demo file is loaded afresh
            has_jobs = False
        if fresh or not has_jobs:
            load_demo(reset=False)
    # The demo's data and its task guide are USMF's: so is a new job there.
    app = BatchTuiApp(server=server, guide=guide, company=DEMO_COMPANY if demo else None)
    try:
        app.run()
    finally:
        app.stop_watcher()
        app.stop_engine()
    return app.return_code or 0
