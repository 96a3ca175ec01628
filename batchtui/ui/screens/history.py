"""Batch job history: runs (start, end, duration, status, server); per run its
tasks, every attempt, and the attempt's log."""

from __future__ import annotations

from typing import Any

from peewee import fn
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Static

from ... import models as m
from ... import status as st
from ..format import duration, status_label, status_style, wall, zoned
from ..guard import guarded
from ..safe_text import one_line, safe, visible
from ..widgets.footer import Footer
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb

# The most telling first: at 80 columns a run's status and its end are in view.
RUN_COLUMNS = [
    Column("job", "Job ID", 6, align="right"),
    Column("run", "Run", 4, align="right"),
    Column("status", "Status", 10),
    Column("description", "Job description", 14, flex=True, min=6),
    Column("started", "Started", 23),
    Column("ended", "Ended", 23, essential=True),
    Column("duration", "Duration", 8, align="right"),
    Column("scheduled", "Scheduled", 20),
    Column("server", "Server", 10),
]
RUN_STATUS = 2
TASK_COLUMNS = [
    Column("id", "Task ID", 7, align="right"),
    Column("description", "Description", 20, flex=True),
    Column("status", "Status", 10),
    Column("retries", "Retries used", 7, align="right"),
    Column("attempts", "Attempts", 8, align="right"),
]
ATTEMPT_COLUMNS = [
    Column("attempt", "Attempt", 7, align="right"),
    Column("status", "Status", 10),
    Column("started", "Started", 16),
    Column("ended", "Ended", 16, essential=True),
    Column("duration", "Duration", 8, align="right"),
    Column("server", "Server", 12, flex=True),
]
SECONDS = "%Y-%m-%d %H:%M:%S"
NARROW_BELOW = 100  # columns: the log beside the attempts gets a fixed, narrower width


def attempt_time(value: Any, tz: str, day: str) -> str:
    """An attempt's start or end to the millisecond, with its zone; the date only when it is not
    the run's (the run's row above shows it)."""
    if not value:
        return ""
    millis = wall(value, tz, "%H:%M:%S.%f")[:-3]
    zone_name = wall(value, tz, "%Z")
    date = wall(value, tz, "%Y-%m-%d")
    return f"{millis} {zone_name}" if date == day else f"{date} {millis} {zone_name}"


class RunsSource:
    """Runs newest first, paged (history grows without bound)."""

    def __init__(self, job_id: int | None) -> None:
        self.job_id = job_id

    def fresh(self) -> RunsSource:
        return RunsSource(self.job_id)

    def _where(self, query: Any) -> Any:
        if self.job_id is not None:
            query = query.where(m.JobRun.job == self.job_id)
        return query

    def count(self) -> int:
        return self._where(m.JobRun.select(fn.COUNT(m.JobRun.id))).scalar() or 0

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        R, J = m.JobRun, m.BatchJob
        query = self._where(
            R.select(R.id, R.job, J.description, J.time_zone, R.run_no, R.scheduled, R.started, R.ended,
                     R.status, R.server).join(J, on=(R.job == J.id))
        ).order_by(R.id.desc()).offset(offset).limit(limit).tuples()
        rows = []
        for rid, job, desc, tz, run_no, sched, started, ended, status, server in query:
            rows.append(GridRow(rid, [
                str(job), str(run_no), status_label(status), one_line(desc), zoned(started, tz, SECONDS),
                zoned(ended, tz, SECONDS), duration(started, ended), zoned(sched, tz), one_line(server),
            ], {RUN_STATUS: status_style(status)}))
        return rows


class HistoryScreen(BaseScreen):
    HELP_TITLE = "Batch job history"

    BINDINGS = [
        Binding("f5", "refresh", "Refresh", id="history.refresh"),
        Binding("escape", "back", "Back", id="history.back"),
        Binding("question_mark", "app.help", "Help", show=False, id="history.help"),
    ]
    HELP_EXTRA = [("Tab", "Runs > tasks of the run > attempts of the task; the log shows the attempt")]

    def __init__(self, job_id: int | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.title = "Batch job history" + (f": job {job_id}" if job_id else "")
        self.run_id: Any = None
        self.task_id: Any = None
        # Read here, not in compose: a form that cannot be read (the database is away) is not opened.
        job: Any = m.BatchJob.get_or_none(m.BatchJob.id == job_id) if job_id is not None else None
        self.job_description = job.description if job else ""

    def compose(self) -> ComposeResult:
        crumb = "System administration > Inquiries > Batch job history"
        if self.job_id is not None:
            crumb += f" > job {self.job_id} {visible(self.job_description)}"
        yield Breadcrumb(safe(crumb), id="breadcrumb")
        yield PagedGrid(RUN_COLUMNS, RunsSource(self.job_id), empty_text="No runs yet.", id="runs-grid")
        with Horizontal(id="history-detail"):
            with Vertical(id="history-left"):
                yield Label("Tasks of the run", classes="group-title")
                yield PagedGrid(TASK_COLUMNS, CallableSource(self._task_rows), empty_text="No tasks.",
                                id="run-tasks-grid")
                yield Label("Attempts of the task", classes="group-title")
                yield PagedGrid(ATTEMPT_COLUMNS, CallableSource(self._attempt_rows),
                                empty_text="The task did not start in this run.", id="attempts-grid")
            with Vertical(id="history-right"):
                yield Label("Log of the attempt", classes="group-title")
                with VerticalScroll(id="attempt-log-view"):
                    yield Static("", id="attempt-log")
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        grid = self.query_one("#runs-grid", PagedGrid)
        grid.focus()
        self._select_run(grid.cursor_key)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW_BELOW, "-narrow")

    def _run(self) -> Any:
        return m.JobRun.get_or_none(m.JobRun.id == self.run_id) if self.run_id else None

    def _task_rows(self) -> list[GridRow]:
        run = self._run()
        if run is None:
            return []
        statuses = st.task_status_for_run(run)
        retries: dict[int, int] = {}
        kept: set[int] = set()  # tasks a rerun kept from the run before (issue 14): no attempt
        if run.ended is not None:
            query: Any = m.RunTask.select(m.RunTask.task, m.RunTask.retries_used, m.RunTask.kept).where(
                m.RunTask.run == run.id)
            for task_id, used, was_kept in query.tuples():
                retries[task_id] = used
                if was_kept:
                    kept.add(task_id)
        A = m.TaskAttempt
        counted: Any = A.select(A.task, fn.COUNT(A.id)).where((A.run == run.id) & A.ran_or_runs()).group_by(A.task)
        counts: dict[int, int] = dict(counted.tuples())
        rows = []
        tasks: Any = m.BatchTask.select().where(m.BatchTask.job == run.job_id).order_by(m.BatchTask.id)
        for t in tasks:
            if t.id not in statuses:
                continue
            used = retries.get(t.id, t.retries_used)
            is_kept = t.id in kept if run.ended is not None else bool(t.kept)
            rows.append(GridRow(t.id, [str(t.id), one_line(t.description), status_label(statuses[t.id]),
                                       str(used), "kept" if is_kept else str(counts.get(t.id, 0))],
                                {2: status_style(statuses[t.id])}))
        return rows

    def _attempt_rows(self) -> list[GridRow]:
        if self.run_id is None or self.task_id is None:
            return []
        tz = self._tz()
        run = self._run()
        day = wall(run.started, tz, "%Y-%m-%d") if run is not None else ""
        rows = []
        attempts: Any = (m.TaskAttempt.select().where((m.TaskAttempt.run == self.run_id)
                                                      & (m.TaskAttempt.task == self.task_id)
                                                      & m.TaskAttempt.ran_or_runs())
                         .order_by(m.TaskAttempt.attempt, m.TaskAttempt.id))
        for a in attempts:
            rows.append(GridRow(a.id, [str(a.attempt), status_label(a.status),
                                       attempt_time(a.started, tz, day), attempt_time(a.ended, tz, day),
                                       duration(a.started, a.ended), one_line(a.server)],
                                {1: status_style(a.status)}))
        return rows

    def _tz(self) -> str:
        run = self._run()
        if run is None:
            return "UTC"
        job = m.BatchJob.get_or_none(m.BatchJob.id == run.job_id)
        return job.time_zone if job else "UTC"

    def _select_run(self, run_id: Any) -> None:
        self.run_id = run_id
        grid = self.query_one("#run-tasks-grid", PagedGrid)
        grid.reload(keep_key=False, reset=True)
        self._select_task(grid.cursor_key)

    def _select_task(self, task_id: Any) -> None:
        self.task_id = task_id
        grid = self.query_one("#attempts-grid", PagedGrid)
        grid.reload(keep_key=False, reset=True)
        grid.action_last()
        self._show_log(grid.cursor_key)

    def _show_log(self, attempt_id: Any) -> None:
        log = self.query_one("#attempt-log", Static)
        a: Any = m.TaskAttempt.get_or_none(m.TaskAttempt.id == attempt_id) if attempt_id else None
        if a is None:
            log.update("")
            return
        log.update(safe(a.log or "(no log lines)", keep_newlines=True))

    @on(PagedGrid.CursorMoved, "#runs-grid")
    @guarded
    def _run_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key != self.run_id:
            self._select_run(event.key)

    @on(PagedGrid.CursorMoved, "#run-tasks-grid")
    @guarded
    def _task_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key != self.task_id:
            self._select_task(event.key)

    @on(PagedGrid.CursorMoved, "#attempts-grid")
    @guarded
    def _attempt_moved(self, event: PagedGrid.CursorMoved) -> None:
        self._show_log(event.key)

    def jobs_changed(self) -> None:
        """Live refresh: the grids are read in worker threads (the history grows without bound)."""
        # A refresh can arrive after the screen is pushed but before its grids are.
        if not self.is_mounted or not self.query("#attempts-grid"):
            return
        for wid in ("#runs-grid", "#run-tasks-grid", "#attempts-grid"):
            self.query_one(wid, PagedGrid).reload_in_background()
        self._show_log(self.query_one("#attempts-grid", PagedGrid).cursor_key)

    @guarded
    def action_refresh(self) -> None:
        """F5: everything read again now."""
        for wid in ("#runs-grid", "#run-tasks-grid", "#attempts-grid"):
            self.query_one(wid, PagedGrid).reload(keep_key=True)
        self._show_log(self.query_one("#attempts-grid", PagedGrid).cursor_key)

    def action_back(self) -> None:
        self.app.pop_screen()
