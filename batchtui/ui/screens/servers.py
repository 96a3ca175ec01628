"""Batch servers: heartbeat, threads, groups served, and what they run now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from ... import servers
from ...timeutil import machine_zone
from ..format import wall
from ..guard import guarded
from ..safe_text import one_line, safe
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb

SERVER_COLUMNS = [
    Column("name", "Server", 14, flex=True),
    Column("host", "Host", 12),
    Column("pid", "PID", 7, align="right"),
    Column("threads", "Threads", 7, align="right"),
    Column("groups", "Batch groups", 14, flex=True),
    Column("heartbeat", "Last heartbeat", 19),
    Column("alive", "Alive", 5),
    Column("running", "Running now", 11, align="right"),
]


class BatchServersScreen(BaseScreen):
    HELP_TITLE = "Batch servers"
    BINDINGS = [
        Binding("f5", "refresh", "Refresh", id="servers.refresh"),
        Binding("escape", "back", "Back", id="servers.back"),
        Binding("question_mark", "app.help", "Help", show=False, id="servers.help"),
    ]

    def __init__(self, now=None) -> None:
        super().__init__()
        self.title = "Batch servers"
        self._now = now  # tests freeze the clock

    def compose(self) -> ComposeResult:
        yield Breadcrumb("System administration > Setup > Batch servers", id="breadcrumb")
        yield PagedGrid(SERVER_COLUMNS, CallableSource(self._rows), empty_text="No batch server has run yet.",
                        id="servers-grid")
        yield Static("", id="server-detail", classes="detail")
        yield Footer()

    def _rows(self) -> list[GridRow]:
        tz = machine_zone()
        rows = []
        for s in servers.server_rows(self._now):
            groups = ", ".join(g or "(Empty)" for g in s.groups)
            rows.append(GridRow(s.name, [one_line(s.name), one_line(s.host), str(s.pid), str(s.threads),
                                         one_line(groups), wall(s.heartbeat, tz, "%Y-%m-%d %H:%M:%S"),
                                         "Yes" if s.alive else "No", str(s.running)],
                                {6: "green" if s.alive else "dim"}))
        return rows

    @guarded
    def on_mount(self) -> None:
        grid = self.query_one(PagedGrid)
        grid.focus()
        self._detail(grid.cursor_key)

    @guarded
    def on_paged_grid_cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        self._detail(event.key)

    def _detail(self, name) -> None:
        detail = self.query_one("#server-detail", Static)
        if name is None:
            detail.update("")
            return
        tasks = servers.running_tasks(name, limit=20)
        if not tasks:
            detail.update(safe(f"{name} runs nothing now."))
            return
        lines = [f"{one_line(name)} runs now:"] + [f"  job {t.job_id} task {t.task_id}: {one_line(t.description)}"
                                                   for t in tasks]
        detail.update(safe("\n".join(lines), keep_newlines=True))

    @guarded
    def jobs_changed(self) -> None:
        if self.is_mounted:
            grid = self.query_one(PagedGrid)
            grid.reload(keep_key=True)
            self._detail(grid.cursor_key)

    @guarded
    def on_tick(self) -> None:
        self.jobs_changed()

    @guarded
    def action_refresh(self) -> None:
        self.jobs_changed()

    def action_back(self) -> None:
        self.app.pop_screen()
