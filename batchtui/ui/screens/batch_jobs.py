"""Batch jobs: the list page of System administration > Inquiries > Batch jobs."""

from __future__ import annotations

from datetime import datetime

from peewee import fn
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Input, Label, Select, Static

from ... import models as m
from ... import status as st
from ...errors import UserError
from ...timeutil import machine_zone, utcnow
from ...vocabulary import BatchStatus, Priority
from ..format import priority_label, status_label, status_style, wall
from ..outage import DB_ERRORS
from ..paging import KeysetPager
from ..progress import bar, job_progress
from ..safe_text import one_line, safe, visible
from ..widgets.paged_grid import Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb, MessageLine

JOB_COLUMNS = [
    Column("id", "Job ID", 7, align="right"),
    Column("description", "Job description", 18, flex=True),
    Column("start", "Scheduled start", 16),
    Column("status", "Status", 10),
    Column("progress", "Progress", 11, sortable=False),
    Column("recurrence", "Recurrence", 14, flex=True),
    Column("company", "Company", 7),
    Column("created_by", "Created by", 10),
    Column("priority", "Priority", 8),
]
PROGRESS_COLUMN = 4

# The grid's columns -> the column of batch_job each sorts by.
SORT_FIELDS = {
    "id": m.BatchJob.id,
    "description": m.BatchJob.description,
    "start": m.BatchJob.scheduled_start,
    "status": m.BatchJob.status,
    "recurrence": m.BatchJob.recurrence_text,
    "company": m.BatchJob.company,
    "created_by": m.BatchJob.created_by,
    "priority": m.BatchJob.priority,
}
DEFAULT_SORT = ("id", True)  # Job ID, newest first

STATUS_FILTERS = [("All statuses", -1)] + [(s.label, int(s)) for s in BatchStatus]


def _zones() -> list[str]:
    try:
        from zoneinfo import available_timezones

        return sorted(available_timezones())
    except Exception:
        return ["UTC"]


class JobsSource:
    """The Batch jobs grid's rows: keyed by Job ID, in the operator's sort, one page at a time."""

    def __init__(self, text: str = "", status: int | None = None, sort: str = "id",
                 descending: bool = True) -> None:
        self.text = text.strip()
        self.status = status
        self.sort = sort if sort in SORT_FIELDS else "id"
        self.descending = descending
        J = m.BatchJob
        self.pager = KeysetPager(self._query, SORT_FIELDS[self.sort], J.id, descending, self._count)

    def _filtered(self, query):
        J = m.BatchJob
        if self.status is not None:
            query = query.where(J.status == self.status)
        if self.text:
            cond = (J.description.contains(self.text) | (J.company == self.text.upper())
                    | (J.created_by == self.text) | J.recurrence_text.contains(self.text))
            if self.text.isdigit():
                cond = cond | (J.id == int(self.text))
            query = query.where(cond)
        return query

    def _query(self):
        J = m.BatchJob
        return self._filtered(J.select(
            J.id, J.description, J.scheduled_start, J.time_zone, J.status, J.recurrence_text,
            J.company, J.created_by, J.priority, SORT_FIELDS[self.sort],
        ))

    def _count(self) -> int:
        return self._filtered(m.BatchJob.select(fn.COUNT(m.BatchJob.id))).scalar() or 0

    def count(self) -> int:
        return self.pager.count()

    def invalidate(self) -> None:
        self.pager.invalidate()

    def index_of(self, key) -> int | None:
        return self.pager.index_of(key)

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        found = self.pager.fetch(offset, limit)
        running = [r[0] for r in found if r[4] in (BatchStatus.EXECUTING, BatchStatus.CANCELLING)]
        progress = job_progress(running) if running else {}
        rows = []
        for (jid, desc, start, tz, status, rec, company, created_by, priority, _sort) in found:
            done = progress.get(jid)
            rows.append(GridRow(jid, [
                str(jid), one_line(desc), wall(start, tz), status_label(status),
                bar(done) if done is not None else "", one_line(rec or ""),
                one_line(company), one_line(created_by), priority_label(priority),
            ], {3: status_style(status), PROGRESS_COLUMN: "yellow"}))
        return rows


class BatchJobsScreen(BaseScreen):
    """The jobs grid, the selected job's fields below it, and the Batch job menu."""

    BREADCRUMB = "System administration > Inquiries > Batch jobs"
    HELP_TITLE = "Batch jobs"
    is_home = True

    BINDINGS = [
        Binding("ctrl+n", "new", "New", id="jobs.new"),
        Binding("ctrl+s", "save", "Save", id="jobs.save"),
        Binding("alt+f9,ctrl+delete", "delete", "Delete", key_display="Alt+F9", id="jobs.delete"),
        Binding("f5", "refresh", "Refresh", id="jobs.refresh"),
        Binding("escape", "back", "Back", show=False, id="jobs.back"),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        Binding("s", "status_filter", "Status filter", show=False, id="jobs.status_filter"),
        Binding("enter", "view_tasks", "View tasks", id="jobs.view_tasks"),
        Binding("r", "recurrence", "Recurrence", id="jobs.recurrence"),
        Binding("a", "alerts", "Alerts", id="jobs.alerts"),
        Binding("t", "change_status", "Change status", id="jobs.change_status"),
        Binding("x", "cancel_job", "Cancel job", id="jobs.cancel"),
        Binding("c", "copy", "Copy", id="jobs.copy"),
        Binding("h", "history", "View history", id="jobs.history"),
        Binding("o", "sort_next", "Sort", id="jobs.sort"),
        Binding("O", "sort_reverse", "Reverse sort", show=False, id="jobs.sort_reverse"),
        Binding("question_mark", "app.help", "Help", show=False, id="jobs.help"),
    ]
    HELP_EXTRA = [
        ("Up/Down PgUp/PgDn", "Move through all jobs"),
        ("Home / End", "First / last job"),
        ("o / O", "Sort by the next column / reverse it (or click a header)"),
        ("F2", "Modules: System administration"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = "Batch jobs"
        self.job_id: int | None = None  # the record in the form; None = new
        self.job_version: int | None = None
        self._loaded: dict | None = None
        self._new = False
        self._pending_key = None
        self.job_status = None
        self._load_timer = None
        self.sort, self.sort_descending = DEFAULT_SORT

    # -- layout -------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Breadcrumb(self.BREADCRUMB, id="breadcrumb")
        yield Static(
            "New [dim]^N[/] Save [dim]^S[/] Delete [dim]Alt+F9[/] │ [b]Batch job:[/b] "
            "Tasks [dim]⏎[/] Recurrence [dim]r[/] Alerts [dim]a[/] Change status [dim]t[/] "
            "Cancel [dim]x[/] Copy [dim]c[/] History [dim]h[/]",
            id="action-pane", classes="action-pane",
        )
        with Horizontal(id="filter-bar", classes="filter-bar"):
            yield Label("Filter", classes="field-label-short")
            yield Input(placeholder="/ text: description, company, user, job ID", id="filter-text", compact=True)
            yield Select(STATUS_FILTERS, value=-1, allow_blank=False, id="filter-status", compact=True)
        yield PagedGrid(JOB_COLUMNS, JobsSource(), empty_text="No batch jobs. Press Ctrl+N to add one.",
                        id="jobs-grid")
        with Vertical(id="job-form", classes="record-form"):
            with Horizontal(classes="form-row"):
                yield Label("Job ID", classes="field-label")
                yield Label("", id="job-id", classes="read-only short")
                yield Label("Status", classes="field-label-short")
                yield Label("", id="job-status", classes="read-only short")
                yield Label("Created by", classes="field-label-short")
                yield Label("", id="job-created-by", classes="read-only wide")
            with Horizontal(classes="form-row"):
                yield Label("Job description", classes="field-label")
                yield Input(id="job-description", compact=True, max_length=200)
            with Horizontal(classes="form-row"):
                yield Label("Scheduled start", classes="field-label")
                yield Input(id="job-start", placeholder="YYYY-MM-DD HH:MM", compact=True, classes="start-input")
                yield Label("Time zone", classes="field-label-short")
                yield Input(id="job-tz", compact=True, suggester=SuggestFromList(_zones(), case_sensitive=False))
            with Horizontal(classes="form-row"):
                yield Label("Company", classes="field-label")
                yield Select([], id="job-company", compact=True, allow_blank=True, prompt="Company")
                yield Label("Priority", classes="field-label-short")
                yield Select([(p.label, p.cli) for p in Priority], id="job-priority", compact=True,
                             allow_blank=False, value="normal")
            with Horizontal(classes="form-row"):
                yield Label("Recurrence", classes="field-label")
                yield Label("", id="job-recurrence", classes="read-only wide")
            yield MessageLine("", id="job-message")
        yield Footer()

    def on_mount(self) -> None:
        self._load_companies()
        self.query_one("#job-message", MessageLine).display = False
        grid = self.query_one(PagedGrid)
        grid.set_sort(self.sort, self.sort_descending)
        grid.focus()
        self._load_record(grid.cursor_key)

    def _load_companies(self) -> None:
        ids = [c.id for c in m.Company.select(m.Company.id).order_by(m.Company.id)]
        default = self.app.default_company
        if default not in ids:
            ids.insert(0, default)
        sel = self.query_one("#job-company", Select)
        current = sel.value
        sel.set_options([(c, c) for c in ids])
        if current in ids:
            sel.value = current

    # -- the form -----------------------------------------------------------

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#jobs-grid", PagedGrid)

    def _form_values(self) -> dict:
        company = self.query_one("#job-company", Select).value
        priority = self.query_one("#job-priority", Select).value
        return {
            "description": self.query_one("#job-description", Input).value,
            "start": self.query_one("#job-start", Input).value.strip(),
            "time_zone": self.query_one("#job-tz", Input).value.strip(),
            "company": None if company is Select.BLANK else company,
            "priority": None if priority is Select.BLANK else priority,
        }

    def _set_form(self, values: dict) -> None:
        self.query_one("#job-description", Input).value = values["description"]
        self.query_one("#job-start", Input).value = values["start"]
        self.query_one("#job-tz", Input).value = values["time_zone"]
        company = self.query_one("#job-company", Select)
        if values["company"] is not None:
            if values["company"] not in [v for _, v in company._options if v is not Select.BLANK]:
                self._load_companies()
            try:
                company.value = values["company"]
            except Exception:
                company.clear()
        else:
            company.clear()
        self.query_one("#job-priority", Select).value = values["priority"] or "normal"
        for inp in self.query("#job-form Input").results(Input):
            inp.cursor_position = len(inp.value)
        self._loaded = dict(values)

    def is_dirty(self) -> bool:
        if self._new:
            return True
        return self._loaded is not None and self._form_values() != self._loaded

    def _load_record(self, job_id) -> None:
        """Show the job in the form (read from the database now)."""
        self._new = False
        self.show_message(None)
        job = m.BatchJob.get_or_none(m.BatchJob.id == job_id) if job_id is not None else None
        self.job_id = job.id if job else None
        self.job_version = job.version if job else None
        form = self.query_one("#job-form")
        form.disabled = job is None
        if job is None:
            self._set_form({"description": "", "start": "", "time_zone": "", "company": None, "priority": "normal"})
            self._show_read_only(None)
            self._loaded = None
            self._refresh_actions()
            return
        self._set_form({
            "description": job.description,
            "start": wall(job.scheduled_start, job.time_zone),
            "time_zone": job.time_zone,
            "company": job.company_id,
            "priority": Priority(job.priority).cli,
        })
        self._show_read_only(job)
        self._refresh_actions()

    def _refresh_actions(self) -> None:
        # The footer is rebuilt when this changes: only what greys a key out belongs here.
        cancellable = self.job_status in (BatchStatus.HOLD, BatchStatus.WAITING, BatchStatus.EXECUTING)
        self.refresh_bindings_if((self._new, self.job_id is None, cancellable, type(self.focused).__name__))

    def on_descendant_focus(self) -> None:
        self._refresh_actions()

    def _show_read_only(self, job) -> None:
        if job is None:
            texts = ("", "", "", "")
        else:
            texts = (str(job.id), status_label(job.status), visible(job.created_by),
                     visible(job.recurrence_text) or "None")
        self.job_status = job.status if job is not None else None
        for wid, text in zip(("#job-id", "#job-status", "#job-created-by", "#job-recurrence"), texts):
            self.set_text(wid, safe(text))

    def show_message(self, text: str | None, severity: str = "error") -> None:
        self.query_one("#job-message", MessageLine).show(text, severity)

    # -- grid events --------------------------------------------------------

    @on(PagedGrid.CursorMoved, "#jobs-grid")
    def _cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key == self.job_id and not self._new:
            if self._load_timer is not None:  # back on the record shown: drop a stale load
                self._load_timer.stop()
                self._load_timer = None
            return
        if self.is_dirty():
            self._pending_key = event.key
            self._ask_unsaved(then=lambda: self._load_record(self._pending_key),
                              stay=self._return_to_record)
            return
        # The grid moves at once; the form follows when the cursor rests, so
        # holding Down through thousands of jobs never waits for the form.
        self._pending_key = event.key
        if self._load_timer is not None:
            self._load_timer.stop()
        self._load_timer = self.set_timer(0.04, self._load_pending)

    def _load_pending(self) -> None:
        self._load_timer = None
        if not self.is_dirty() and self._pending_key != self.job_id:
            self._load_record(self._pending_key)

    def _flush_pending(self) -> None:
        """Actions work on the row under the cursor: load it now if the form lags."""
        if self._load_timer is not None:
            self._load_timer.stop()
            self._load_pending()

    def form_settled(self) -> bool:
        return self._load_timer is None

    def _return_to_record(self) -> None:
        if self.job_id is not None:
            self.grid.move_to_key(self.job_id)
        self.query_one("#job-description", Input).focus()

    def jobs_changed(self) -> None:
        """Live refresh: rows re-read, cursor and scroll kept, the form's status updated."""
        grid = self.grid
        grid.reload(keep_key=True)
        if self.job_id is not None and not self._new:
            job = m.BatchJob.get_or_none(m.BatchJob.id == self.job_id)
            if job is None:
                if not self.is_dirty():
                    self._load_record(grid.cursor_key)
                return
            self._show_read_only(job)
            if not self.is_dirty():
                if job.version != self.job_version:
                    self._load_record(job.id)
            self._refresh_actions()

    # -- filters ------------------------------------------------------------

    def _apply_filter(self, keep_key=None) -> None:
        text = self.query_one("#filter-text", Input).value
        status = self.query_one("#filter-status", Select).value
        status = None if status in (-1, Select.BLANK) else status
        grid = self.grid
        grid.set_sort(self.sort, self.sort_descending)
        grid.set_source(JobsSource(text, status, self.sort, self.sort_descending), keep_key=keep_key)
        if not self.is_dirty():
            self._load_record(grid.cursor_key)

    # -- sorting ------------------------------------------------------------

    def sort_by(self, column: str, descending: bool) -> None:
        """Sort the grid; the cursor stays on the job it was on."""
        if column not in SORT_FIELDS:
            return
        self.sort, self.sort_descending = column, descending
        self._apply_filter(keep_key=self.grid.cursor_key)

    def action_sort_next(self) -> None:
        keys = [c.key for c in JOB_COLUMNS if c.key in SORT_FIELDS]
        column = keys[(keys.index(self.sort) + 1) % len(keys)]
        self.sort_by(column, column == DEFAULT_SORT[0] and DEFAULT_SORT[1])

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort, not self.sort_descending)

    @on(PagedGrid.HeaderSelected, "#jobs-grid")
    def _header_selected(self, event: PagedGrid.HeaderSelected) -> None:
        if event.column_key == self.sort:
            self.sort_by(self.sort, not self.sort_descending)
        else:
            self.sort_by(event.column_key, event.column_key == DEFAULT_SORT[0] and DEFAULT_SORT[1])

    @on(Input.Changed, "#filter-text")
    def _filter_changed(self) -> None:
        self._apply_filter()

    @on(Input.Submitted, "#filter-text")
    def _filter_submitted(self) -> None:
        self.grid.focus()

    @on(Select.Changed, "#filter-status")
    def _status_changed(self) -> None:
        self._apply_filter()

    def action_filter(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def action_status_filter(self) -> None:
        self.query_one("#filter-status", Select).focus()

    # -- actions ------------------------------------------------------------

    def check_action(self, action: str, parameters) -> bool | None:
        if action in ("view_tasks", "recurrence", "alerts", "change_status", "cancel_job", "copy",
                      "history", "delete"):
            if self._new or self.job_id is None:
                return None  # shown greyed: no saved job selected
        if action == "cancel_job" and self.job_id is not None:
            if self.job_status not in (BatchStatus.HOLD, BatchStatus.WAITING, BatchStatus.EXECUTING):
                return None
        if action in ("filter", "status_filter", "view_tasks", "recurrence", "alerts", "change_status",
                      "cancel_job", "copy", "history", "sort_next", "sort_reverse"):
            focused = self.focused
            if isinstance(focused, (Input, Select)) and action != "filter":
                return None
        return True

    def action_new(self) -> None:
        self._flush_pending()
        if self.is_dirty() and not self._new:
            self._ask_unsaved(then=self._start_new, stay=lambda: None)
            return
        self._start_new()

    def _start_new(self) -> None:
        self._new = True
        self.job_id = None
        self.job_version = None
        self.query_one("#job-form").disabled = False
        self._load_companies()
        tz = machine_zone()
        now = utcnow()
        company = self.app.default_company
        self._set_form({
            "description": "",
            "start": wall(now, tz),
            "time_zone": tz,
            "company": company,
            "priority": "normal",
        })
        self.set_text("#job-id", "(new)")
        self.set_text("#job-status", "Withhold")
        self.set_text("#job-created-by", safe(self.user))
        self.set_text("#job-recurrence", "None")
        self.show_message("New batch job: enter its description, then Ctrl+S to save.", "note")
        self.query_one("#job-description", Input).focus()
        self._refresh_actions()

    def _start_argument(self, text: str, tz: str):
        """Scheduled start as typed (wall time in the job's zone), checked here for an inline message."""
        raw = text.strip().replace(" ", "T", 1)
        if not raw:
            raise UserError("Scheduled start: enter a date and time (YYYY-MM-DD HH:MM)")
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise UserError(f"Scheduled start: {text!r} is not a date and time (YYYY-MM-DD HH:MM)") from None
        return value.isoformat()

    def save(self) -> bool:
        """Save the record in the form; on a refusal, say why and keep what was typed."""
        from ... import jobs

        values = self._form_values()
        if not self._new and not self.is_dirty():
            return True
        try:
            if not values["description"].strip():
                raise UserError("Job description: enter a description for the batch job")
            tz = values["time_zone"] or machine_zone()
            start = self._start_argument(values["start"], tz)
            if values["company"] is None:
                raise UserError("Company: choose the company the job runs in")
            if self._new:
                result = jobs.create_job(
                    actor=self.actor, description=values["description"], company=values["company"],
                    scheduled_start=start, time_zone=tz, priority=values["priority"] or "normal",
                )
                job_id = getattr(result, "id", result)
                if isinstance(job_id, dict):
                    job_id = job_id.get("id")
            else:
                jobs.update_job(
                    self.job_id, actor=self.actor, version=self.job_version,
                    description=values["description"], company=values["company"],
                    scheduled_start=start, time_zone=tz, priority=values["priority"] or "normal",
                )
                job_id = self.job_id
        except UserError as exc:
            self.show_message(str(exc))
            return False
        except DB_ERRORS as exc:  # the database is away: the form keeps what was typed
            self.db_refused(exc)
            return False
        self._new = False
        self.job_id = job_id
        grid = self.grid
        grid.reload(keep_key=False)
        if not grid.move_to_key(job_id) and grid.cursor_key != job_id:
            pass
        self._load_record(job_id)
        self.show_message(f"Saved batch job {job_id}.", "note")
        self.app.wake_engine()
        return True

    def action_save(self) -> None:
        self.save()

    def action_refresh(self) -> None:
        self._load_companies()
        self.grid.reload(keep_key=True)
        if not self.is_dirty():
            self._load_record(self.grid.cursor_key)

    def action_back(self) -> None:
        if self.is_dirty():
            self._ask_unsaved(then=self._discarded, stay=lambda: None)
            return
        grid = self.grid
        if self.focused is not grid:
            grid.focus()
            return
        if self.query_one("#filter-text", Input).value or self.query_one("#filter-status", Select).value != -1:
            self.query_one("#filter-text", Input).value = ""
            self.query_one("#filter-status", Select).value = -1
            return

    def _discarded(self) -> None:
        self._new = False
        self._load_record(self.grid.cursor_key)
        self.grid.focus()

    def _ask_unsaved(self, then, stay) -> None:
        from ..dialogs.confirm import ConfirmDialog

        what = "The new batch job" if self._new else f"Batch job {self.job_id}"

        def answered(answer: str | None) -> None:
            if answer == "save":
                if self.save():
                    then()
                else:
                    stay()
            elif answer == "discard":
                self._new = False
                self._loaded = None
                then()
            else:
                stay()

        self.app.push_screen(ConfirmDialog(
            "Unsaved changes", f"{what} has changes that are not saved.",
            [("save", "Save"), ("discard", "Discard"), ("cancel", "Keep editing")], default="save",
        ), answered)

    def _with_saved_job(self, then) -> None:
        """Batch job menu actions work on the saved record: save first, as the ERP does."""
        self._flush_pending()
        if self.job_id is None and not self._new:
            return
        if self.is_dirty() and not self.save():
            return
        if self.job_id is not None:
            then(self.job_id)

    def action_delete(self) -> None:
        from ..dialogs.confirm import ConfirmDialog

        self._flush_pending()
        if self._new:
            self._discarded()
            return
        job_id = self.job_id
        if job_id is None:
            return

        def answered(answer) -> None:
            if answer != "delete":
                return
            try:
                st.delete_job(job_id, self.actor)
            except UserError as exc:
                self.show_message(str(exc))
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Not deleted")
                return
            self._loaded = None
            self.grid.reload(keep_key=False)
            self._load_record(self.grid.cursor_key)
            self.show_message(f"Deleted batch job {job_id}.", "note")

        self.app.push_screen(ConfirmDialog(
            "Delete", f"Delete batch job {job_id} and its tasks?",
            [("delete", "Delete"), ("cancel", "Cancel")], default="cancel"), answered)

    def action_view_tasks(self) -> None:
        from .batch_tasks import BatchTasksScreen

        self._with_saved_job(lambda job_id: self.app.push_screen(BatchTasksScreen(job_id)))

    def action_history(self) -> None:
        from .history import HistoryScreen

        self._with_saved_job(lambda job_id: self.app.push_screen(HistoryScreen(job_id=job_id)))

    def action_recurrence(self) -> None:
        self._with_saved_job(self._open_recurrence)

    def _open_recurrence(self, job_id: int) -> None:
        from ..dialogs.recurrence import RecurrenceDialog

        job = m.BatchJob.get_by_id(job_id)

        def done(result) -> None:
            if result is None:
                return
            from ... import jobs

            try:
                if result.time_zone and result.time_zone != job.time_zone:
                    current = m.BatchJob.get_by_id(job_id)
                    jobs.update_job(job_id, actor=self.actor, version=current.version, time_zone=result.time_zone)
                jobs.set_recurrence(job_id, result.spec, actor=self.actor)
            except UserError as exc:
                self.show_message(str(exc))
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Recurrence not saved")
                if result.spec is not None:  # what was entered is kept: the dialog opens again with it
                    self.app.push_screen(RecurrenceDialog(result.spec, job.scheduled_start,
                                                          result.time_zone or job.time_zone), done)
                return
            self.grid.reload(keep_key=True)
            self._load_record(job_id)
            self.show_message("Recurrence saved." if result.spec else "Recurrence removed.", "note")

        self.app.push_screen(RecurrenceDialog(job.recurrence, job.scheduled_start, job.time_zone), done)

    def action_alerts(self) -> None:
        self._with_saved_job(self._open_alerts)

    def _open_alerts(self, job_id: int) -> None:
        from ..dialogs.alerts import AlertsDialog, AlertSettings

        row = m.JobAlert.get_or_none((m.JobAlert.job == job_id) & (m.JobAlert.user == self.user))
        current = AlertSettings.from_row(row)

        def done(result) -> None:
            if result is None:
                return
            from ... import jobs

            try:
                jobs.set_alert(job_id, actor=self.actor, alert_user=self.user, ended=result.ended,
                               error=result.error, canceled=result.canceled, popup=result.popup,
                               email=result.email)
            except UserError as exc:
                self.show_message(str(exc))
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Alerts not saved")
                self.app.push_screen(AlertsDialog(job_id, self.user, result), done)  # opens again with them
                return
            self.show_message("Alerts saved.", "note")

        self.app.push_screen(AlertsDialog(job_id, self.user, current), done)

    def action_change_status(self) -> None:
        self._with_saved_job(self._open_change_status)

    def _open_change_status(self, job_id: int) -> None:
        from ..dialogs.change_status import ChangeStatusDialog

        job = m.BatchJob.get_by_id(job_id)

        def done(target) -> None:
            if target is None:
                return
            try:
                st.set_job_status(job_id, target, self.actor)
            except UserError as exc:
                self.show_message(f"Change status refused: {exc}")
                self.app.notify(visible(exc), title="Change status", severity="error")
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Status not changed")
                return
            self.app.wake_engine()
            self.grid.reload(keep_key=True)
            self._load_record(job_id)
            self.show_message(f"Batch job {job_id} is now {BatchStatus(target).label}.", "note")

        self.app.push_screen(ChangeStatusDialog(job_id, BatchStatus(job.status)), done)

    def action_cancel_job(self) -> None:
        self._with_saved_job(self._confirm_cancel)

    def _confirm_cancel(self, job_id: int) -> None:
        from ..dialogs.confirm import ConfirmDialog

        def answered(answer) -> None:
            if answer != "cancel_job":
                return
            try:
                st.cancel_job(job_id, self.actor)
            except UserError as exc:
                self.show_message(f"Cancel refused: {exc}")
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Not canceled")
                return
            self.app.wake_engine()
            self.grid.reload(keep_key=True)
            self._load_record(job_id)
            self.show_message(f"Batch job {job_id}: cancel asked for.", "note")

        self.app.push_screen(ConfirmDialog(
            "Cancel batch job", f"Cancel batch job {job_id}? Tasks not started will not run; "
            "running tasks are stopped.",
            [("cancel_job", "Cancel job"), ("keep", "Keep running")], default="keep"), answered)

    def action_copy(self) -> None:
        self._with_saved_job(self._open_copy)

    def _open_copy(self, job_id: int) -> None:
        from ..dialogs.copy import CopyDialog

        job = m.BatchJob.get_by_id(job_id)

        def done(result) -> None:
            if result is None:
                return
            from ... import jobs

            try:
                new = jobs.copy_job(job_id, actor=self.actor, description=result.description or None,
                                    start=result.start or None)
            except UserError as exc:
                self.show_message(f"Copy refused: {exc}")
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Not copied")
                return
            new_id = getattr(new, "id", new)
            self.grid.reload(keep_key=False)
            self.grid.move_to_key(new_id)
            self._load_record(self.grid.cursor_key)
            self.show_message(f"Copied batch job {job_id} to {new_id} (Withhold).", "note")

        self.app.push_screen(CopyDialog(job_id, job.description, wall(job.scheduled_start, job.time_zone),
                                        job.time_zone), done)
