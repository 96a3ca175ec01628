"""Action center: the acting user's alerts, listed until read."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ... import alerts
from ...actor import Actor
from ...errors import NotFound
from ..format import zoned
from ..guard import guarded
from ..safe_text import one_line, safe
from ..widgets.footer import Footer
from ..widgets.paged_grid import Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb

ALERT_COLUMNS = [
    Column("created", "Created", 23),
    Column("job", "Job ID", 6, align="right"),
    Column("event", "Event", 9),
    Column("message", "Message", 30, flex=True),
    Column("read", "Read", 4),
    Column("delivery", "Sent", 7),
]

# The Sent column: the alert's e-mail and notice together, the one furthest from delivered.
_DELIVERY = {"failed": ("Failed", "bold $text-error"), "pending": ("Pending", "$text-warning"), "sent": ("Yes", "")}


def delivery_cell(a: alerts.AlertInfo) -> tuple[str, str]:
    """(text, style) of the Sent column: "" when the alert asked for neither e-mail nor a notice."""
    states = [s for s in (a.email, a.notify) if s is not None]
    for state in ("failed", "pending", "sent"):
        if state in states:
            return _DELIVERY[state]
    return "", ""


def delivery_lines(a: alerts.AlertInfo) -> str:
    """The detail's lines on the alert's e-mail and notice."""
    lines = []
    for label, state, error in (("E-mail", a.email, a.email_error), ("Notice", a.notify, a.notify_error)):
        if state is None:
            continue
        line = f"{label}: {state}"
        if error and state != "sent":
            line += f" (last error: {one_line(error)})"
        lines.append(line)
    return "\n".join(lines)
# The theme's text colours, as the statuses (format.STATUS_STYLE).
EVENT_STYLE = {"error": "bold $text-error", "ended": "$text-success", "canceled": "$text-secondary"}


class AlertsSource:
    """The actor's alerts for the paged grid, newest first."""

    def __init__(self, actor: Actor, unread_only: bool) -> None:
        self.actor = actor
        self.unread_only = unread_only

    def count(self) -> int:
        return alerts.count_alerts(self.actor, unread_only=self.unread_only)

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        rows = []
        for a in alerts.list_alerts(self.actor, unread_only=self.unread_only, offset=offset, limit=limit,
                                    newest_first=True):
            sent, sent_style = delivery_cell(a)
            rows.append(GridRow(a.id, [zoned(a.created, a.time_zone, "%Y-%m-%d %H:%M:%S"), str(a.job_id or ""),
                                       a.event.capitalize(), one_line(a.message), "Yes" if a.read else "No", sent],
                                {2: EVENT_STYLE.get(a.event, ""), 5: sent_style}))
        return rows


class ActionCenterScreen(BaseScreen):
    HELP_TITLE = "Action center"
    BINDINGS = [
        Binding("enter,space", "mark_read", "Mark read", id="alerts.mark_read"),
        Binding("m", "mark_all_read", "Mark all read", id="alerts.mark_all"),
        Binding("u", "toggle_unread", "Unread/all", id="alerts.toggle"),
        Binding("f5", "refresh", "Refresh", id="alerts.refresh"),
        Binding("escape", "back", "Back", id="alerts.back"),
        Binding("question_mark", "app.help", "Help", show=False, id="alerts.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = "Action center"
        self.unread_only = True

    def compose(self) -> ComposeResult:
        yield Breadcrumb("Action center: alerts", id="breadcrumb")
        yield Static("", id="alerts-filter", classes="dim")
        yield PagedGrid(ALERT_COLUMNS, AlertsSource(self.actor, True), empty_text="No unread alerts.",
                        id="alerts-grid")
        yield Static("", id="alert-detail", classes="detail")
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        self._show_filter()
        grid = self.query_one(PagedGrid)
        grid.focus()
        self._detail(grid.cursor_key)

    def _show_filter(self) -> None:
        self.query_one("#alerts-filter", Static).update(
            safe(f"Alerts for {self.actor.user}: " + ("unread only (u shows all)" if self.unread_only
                                                    else "all (u shows unread only)")))

    @guarded
    def on_paged_grid_cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        self._detail(event.key)

    def _detail(self, alert_id) -> None:
        try:
            a = alerts.get_alert(self.actor, alert_id) if alert_id else None
        except NotFound:
            a = None
        text = "\n".join(filter(None, (a.message, delivery_lines(a)))) if a else ""
        self.query_one("#alert-detail", Static).update(safe(text, keep_newlines=True))

    @guarded
    def alerts_changed(self) -> None:
        if self.is_mounted:
            self.query_one(PagedGrid).reload(keep_key=True)

    @guarded
    def action_mark_read(self) -> None:
        grid = self.query_one(PagedGrid)
        alert_id = grid.cursor_key
        if alert_id is None:
            return
        try:
            alerts.mark_read(self.actor, [alert_id])
        except NotFound:
            pass  # gone since the grid was read: the reload shows it
        grid.reload(keep_key=not self.unread_only)

    @guarded
    def action_mark_all_read(self) -> None:
        alerts.mark_read(self.actor)
        self.query_one(PagedGrid).reload(keep_key=True)

    @guarded
    def action_toggle_unread(self) -> None:
        self.unread_only = not self.unread_only
        grid = self.query_one(PagedGrid)
        grid.empty_text = "No unread alerts." if self.unread_only else "No alerts."
        grid.set_source(AlertsSource(self.actor, self.unread_only))
        self._show_filter()

    def action_refresh(self) -> None:
        self.query_one(PagedGrid).reload(keep_key=True)

    def action_back(self) -> None:
        self.app.pop_screen()
