"""Audit trail: every change operators made to one job, oldest first (key u on the job)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ... import audit
from ... import models as m
from ...timeutil import machine_zone
from ..format import wall
from ..guard import guarded
from ..safe_text import one_line, safe
from ..widgets.footer import Footer
from ..widgets.paged_grid import Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb

AUDIT_COLUMNS = [
    Column("at", "At", 16),
    Column("user", "User", 8),
    Column("action", "Action", 15),
    Column("field", "Field", 12),
    Column("old", "Old", 8, flex=True),
    Column("new", "New", 8, flex=True),
]


class AuditSource:
    """One job's audit entries for the paged grid, oldest first."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id

    def count(self) -> int:
        return audit.count(self.job_id)

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        tz = machine_zone()
        return [GridRow(e.id, [wall(e.at, tz, "%Y-%m-%d %H:%M"), one_line(e.user), e.action,
                               one_line(e.field or ""), one_line(audit.shown(e.old)), one_line(audit.shown(e.new))])
                for e in audit.page(self.job_id, offset, limit)]


class AuditScreen(BaseScreen):
    HELP_TITLE = "Audit trail"
    BINDINGS = [
        Binding("f5", "refresh", "Refresh", id="audit.refresh"),
        Binding("escape", "back", "Back", id="audit.back"),
        Binding("question_mark", "app.help", "Help", show=False, id="audit.help"),
    ]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.title = f"Audit trail: job {job_id}"

    def compose(self) -> ComposeResult:
        job = m.BatchJob.get_or_none(m.BatchJob.id == self.job_id)
        about = f"{self.job_id} {job.description}" if job is not None else f"{self.job_id} (deleted)"
        yield Breadcrumb(safe(f"Batch jobs > Audit trail: job {about}"), id="breadcrumb")
        yield PagedGrid(AUDIT_COLUMNS, AuditSource(self.job_id), empty_text="No changes recorded for this job.",
                        id="audit-grid")
        yield Static("", id="audit-detail", classes="detail")
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        grid = self.query_one(PagedGrid)
        grid.focus()
        self._detail(grid.cursor_key)

    @guarded
    def on_paged_grid_cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        self._detail(event.key)

    def _detail(self, entry_id) -> None:
        entry = m.JobAudit.get_or_none(m.JobAudit.id == entry_id) if entry_id else None
        text = ""
        if entry is not None:
            at = wall(entry.at, machine_zone(), "%Y-%m-%d %H:%M:%S")
            text = (f"{entry.action} {entry.field or ''} by {entry.user} at {at}\n"
                    f"Old: {audit.shown(entry.old)}\nNew: {audit.shown(entry.new)}")
        self.query_one("#audit-detail", Static).update(safe(text, keep_newlines=True))

    def action_refresh(self) -> None:
        self.query_one(PagedGrid).reload(keep_key=True)

    def action_back(self) -> None:
        self.app.pop_screen()
