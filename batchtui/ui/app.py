"""The console application: screens, the embedded batch server, live refresh."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable

from peewee import fn
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from .. import models as m
from ..config import Config, acting_user, load_config
from ..errors import UserError
from .messages import AlertRaised, JobsChanged
from .safe_text import visible


class BatchTuiApp(App):
    """The console. It owns the embedded batch server: started on mount, stopped on unmount."""

    CSS_PATH = "batchtui.tcss"
    TITLE = "batchtui"
    SUB_TITLE = "System administration"

    BINDINGS = [
        Binding("f2", "navigation", "Modules", id="app.navigation"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("f4", "action_center", "Action center", show=False, id="app.action_center"),
    ]

    def __init__(self, *, server: bool = True, user: str | None = None, config: Config | None = None,
                 engine_factory=None, poll_interval: float = 1.0, start_screen: str = "batch_jobs",
                 guide: bool = False) -> None:
        super().__init__()
        self.user = user or acting_user()
        if config is None:
            try:
                config = load_config()
            except UserError:
                config = Config()
        self.config = config
        self.server_enabled = server
        self._engine_factory = engine_factory
        self.engine = None
        self.poll_interval = poll_interval
        self.start_screen = start_screen
        self.guide = guide
        self._signature = None
        self._last_alert_id = None
        self._changed = threading.Event()

    # -- life cycle ---------------------------------------------------------

    def on_mount(self) -> None:
        self._last_alert_id = self._max_alert_id()
        self._signature = self._db_signature()
        self.push_screen(self.make_screen(self.start_screen))
        if self.server_enabled:
            self._start_engine()
        self.set_interval(self.poll_interval, self._poll)

    def _start_engine(self) -> None:
        try:
            if self._engine_factory is not None:
                self.engine = self._engine_factory(self._engine_changed)
            else:
                from ..engine import BatchServerEngine

                self.engine = BatchServerEngine(on_change=self._engine_changed, console=True)
            self.engine.start()
        except Exception as exc:  # the console still works without its server
            self.engine = None
            self.notify(f"The embedded batch server did not start: {visible(exc)}",
                        title="Batch server", severity="error", timeout=8)

    def _engine_changed(self) -> None:
        # Engine thread: post only (thread-safe, never blocks).
        self.post_message(JobsChanged())

    def on_unmount(self) -> None:
        self.stop_engine()

    def stop_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                engine.stop(grace=5.0)
            except Exception:
                pass

    def wake_engine(self) -> None:
        if self.engine is not None:
            try:
                self.engine.wake()
            except Exception:
                pass

    # -- live refresh -------------------------------------------------------

    def _db_signature(self):
        try:
            row = m.BatchJob.select(fn.MAX(m.BatchJob.modified), fn.COUNT(m.BatchJob.id),
                                    fn.MAX(m.BatchJob.id)).tuples().first()
            attempts = m.TaskAttempt.select(fn.MAX(m.TaskAttempt.id), fn.COUNT(m.TaskAttempt.ended)).tuples().first()
            return (row, attempts)
        except Exception:
            return None

    def _max_alert_id(self) -> int:
        try:
            return m.Alert.select(fn.MAX(m.Alert.id)).where(m.Alert.user == self.user).scalar() or 0
        except Exception:
            return 0

    def _poll(self) -> None:
        """Once a second: changes made by other processes, and new alerts."""
        signature = self._db_signature()
        if signature != self._signature:
            self._signature = signature
            self.post_message(JobsChanged())
        else:
            # The tasks screen shows task statuses, which do not touch the job.
            screen = self.screen
            if hasattr(screen, "on_tick"):
                screen.on_tick()
        self._check_alerts()

    def _check_alerts(self) -> None:
        try:
            rows = list(m.Alert.select().where((m.Alert.user == self.user)
                                               & (m.Alert.id > (self._last_alert_id or 0)))
                        .order_by(m.Alert.id))
        except Exception:
            return
        for alert in rows:
            self._last_alert_id = max(self._last_alert_id or 0, alert.id)
            self.post_message(AlertRaised(alert.id, alert.message, alert.popup))

    def on_alert_raised(self, event: AlertRaised) -> None:
        if event.popup:
            self.notify(visible(event.message), title="Batch job alert", timeout=10)
        for screen in self.screen_stack:
            if hasattr(screen, "alerts_changed"):
                screen.alerts_changed()

    def on_jobs_changed(self, event: JobsChanged) -> None:
        self._signature = self._db_signature()
        for screen in self.screen_stack:
            if hasattr(screen, "jobs_changed"):
                screen.jobs_changed()
        self._check_alerts()

    def refresh_now(self) -> None:
        self.post_message(JobsChanged())

    # -- navigation ---------------------------------------------------------

    def make_screen(self, name: str, **kwargs) -> Screen:
        from .screens.action_center import ActionCenterScreen
        from .screens.batch_jobs import BatchJobsScreen
        from .screens.groups import BatchGroupsScreen
        from .screens.history import HistoryScreen
        from .screens.servers import BatchServersScreen

        factories = {
            "batch_jobs": BatchJobsScreen,
            "history": HistoryScreen,
            "groups": BatchGroupsScreen,
            "servers": BatchServersScreen,
            "action_center": ActionCenterScreen,
        }
        return factories[name](**kwargs)

    def open_screen(self, name: str, **kwargs) -> None:
        """Open a form from the navigation: one of each, on top of the Batch jobs page."""
        if name == "cleanup":
            self.action_cleanup()
            return
        # Leave stacked forms (but never the base Batch jobs page).
        while len(self.screen_stack) > 2 and not getattr(self.screen, "is_home", False):
            if getattr(self.screen, "is_dirty", lambda: False)():
                break
            self.pop_screen()
        if name == "batch_jobs" and getattr(self.screen, "is_home", False):
            return
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
        from .dialogs.cleanup import CleanupDialog

        def chosen(result) -> None:
            if result is None:
                return
            from .. import jobs

            try:
                count = jobs.cleanup_history(older_than_days=result.older_than_days,
                                             statuses=result.statuses or None, company=result.company,
                                             user=result.user, acting_user=self.user)
            except UserError as exc:
                self.notify(visible(exc), title="Batch job history clean-up", severity="error")
                return
            self.notify(f"Deleted {count} run(s) from the batch job history.",
                        title="Batch job history clean-up")
            self.refresh_now()

        self.push_screen(CleanupDialog(), chosen)

    def action_help(self) -> None:
        from .dialogs.help import HelpDialog

        if isinstance(self.screen, HelpDialog):
            return
        self.push_screen(HelpDialog(self.screen))

    NAVIGATION = [
        ("Batch jobs", "System administration > Inquiries > Batch jobs", "batch_jobs"),
        ("Batch job history", "System administration > Inquiries > Batch job history", "history"),
        ("Batch groups", "System administration > Setup > Batch groups", "groups"),
        ("Batch servers", "System administration > Setup > Batch servers", "servers"),
        ("Batch job history clean-up", "System administration > Periodic > Batch job history clean-up", "cleanup"),
        ("Action center", "Alerts for you", "action_center"),
    ]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
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
        yield SystemCommand("Help", "The keys of the screen in front of you", self.action_help)
        yield from super().get_system_commands(screen)


def run_console(db_url: str | None = None, demo: bool = False, server: bool = True, guide: bool = False) -> int:
    from .. import db

    if demo and not db_url:
        db_url = db.demo_url()
    fresh = False
    if demo:
        from urllib.parse import urlparse

        path = urlparse(db_url).path
        fresh = not Path(path).exists() or Path(path).stat().st_size == 0
    db.open_database(db_url)
    if demo:
        try:
            from ..demo import load_demo
        except ImportError:
            load_demo = None
        if load_demo is not None:
            try:
                has_jobs = m.BatchJob.select().exists()
            except Exception:
                has_jobs = False
            if fresh or not has_jobs:
                load_demo(reset=False)
    app = BatchTuiApp(server=server, guide=guide)
    try:
        app.run()
    finally:
        app.stop_engine()
    return app.return_code or 0
