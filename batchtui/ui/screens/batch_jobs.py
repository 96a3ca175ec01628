"""Batch jobs: the list page of System administration > Inquiries > Batch jobs."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static

from ... import models as m
from ... import status as st
from ... import validators
from ...errors import Conflict, UserError
from ...timeutil import machine_zone, utcnow
from ...vocabulary import BatchStatus, Priority
from ..format import status_label, wall
from ..guard import guarded
from ..safe_text import safe, safe_options, visible
from ..validation import Description, Seconds, TimeZone, WallTime, refusal
from ..widgets.fields import chosen
from ..widgets.footer import Footer
from ..widgets.paged_grid import PagedGrid
from .base import Breadcrumb, MessageLine
from .job_menu import BatchJobMenu
from .jobs_source import DEFAULT_SORT, JOB_COLUMNS, SORT_FIELDS, STATUS_FILTERS, JobsSource
from .record_form import record_bindings

__all__ = ["BatchJobsScreen", "JobsSource", "SORT_FIELDS"]

EMPTY_FORM = {"description": "", "start": "", "time_zone": "", "company": None, "priority": "normal",
              "active_period": None, "late_after": ""}


def _zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(available_timezones())


class BatchJobsScreen(BatchJobMenu):
    """The jobs grid, the selected job's fields below it, and the Batch job menu."""

    BREADCRUMB = "System administration > Inquiries > Batch jobs"
    HELP_TITLE = "Batch jobs"
    RECORD = "batch job"
    is_home = True

    BINDINGS = [
        *record_bindings("jobs", show_back=False),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        Binding("s", "status_filter", "Status filter", show=False, id="jobs.status_filter"),
        Binding("enter", "view_tasks", "View tasks", id="jobs.view_tasks"),
        Binding("r", "recurrence", "Recurrence", id="jobs.recurrence"),
        Binding("a", "alerts", "Alerts", id="jobs.alerts"),
        Binding("t", "change_status", "Change status", id="jobs.change_status"),
        Binding("x", "cancel_job", "Cancel job", id="jobs.cancel"),
        Binding("n", "run_now", "Run now", id="jobs.run_now"),
        Binding("f", "rerun", "Rerun failed", id="jobs.rerun"),
        Binding("c", "copy", "Copy", id="jobs.copy"),
        Binding("h", "history", "View history", id="jobs.history"),
        Binding("u", "audit", "Audit trail", id="jobs.audit"),
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
        self.job_id: int | None = None  # the record in the form; None = new or none
        self.job_version: int | None = None
        self.job_status: int | None = None
        self._pending_key: Any = None
        self._load_timer: Timer | None = None
        self._companies: list[str] = []
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
                # Widths follow the values: Run by stays in view at 80 columns.
                yield Label("Job ID", classes="field-label")
                yield Label("", id="job-id", classes="read-only")
                yield Label("Status", classes="field-label-short")
                yield Label("", id="job-status", classes="read-only")
                yield Label("Created by", classes="field-label-short")
                yield Label("", id="job-created-by", classes="read-only")
                # Who the tasks run as (the ERP's Run by): the creator unless changed.
                yield Label("Run by", classes="field-label-short")
                yield Label("", id="job-run-by", classes="read-only wide")
            with Horizontal(classes="form-row"):
                yield Label("Job description", classes="field-label")
                yield Input(id="job-description", compact=True, max_length=validators.MAX_DESCRIPTION,
                            validators=[Description("Job description")], valid_empty=True)
            with Horizontal(classes="form-row"):
                yield Label("Scheduled start", classes="field-label")
                yield Input(id="job-start", placeholder="YYYY-MM-DD HH:MM", compact=True, classes="start-input",
                            validators=[WallTime("Scheduled start")], valid_empty=True)
                yield Label("Time zone", classes="field-label-short")
                yield Input(id="job-tz", compact=True, suggester=SuggestFromList(_zones(), case_sensitive=False),
                            validators=[TimeZone("Time zone")], valid_empty=True)
            with Horizontal(classes="form-row"):
                yield Label("Company", classes="field-label")
                yield Select([], id="job-company", compact=True, allow_blank=True, prompt="Company")
                yield Label("Priority", classes="field-label-short")
                yield Select([(p.label, p.cli) for p in Priority], id="job-priority", compact=True,
                             allow_blank=False, value="normal")
            with Horizontal(classes="form-row"):
                yield Label("Recurrence", classes="field-label")
                yield Label("", id="job-recurrence", classes="read-only wide")
                yield Label("Late after", classes="field-label-short")
                yield Input(id="job-late", placeholder="seconds", compact=True, classes="seconds-input",
                            validators=[Seconds("Late after")], valid_empty=True)
            with Horizontal(classes="form-row"):
                yield Label("Active period", classes="field-label")
                yield Select([], id="job-period", compact=True, allow_blank=True, prompt="(none)")
                yield Label("Waiting", classes="field-label-short")
                yield Label("", id="job-waiting", classes="read-only wide")
            yield MessageLine("", id="job-message")
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        self.query_one("#job-message", MessageLine).display = False
        grid = self.grid
        grid.set_sort(self.sort, self.sort_descending)
        grid.focus()
        self._load_companies()
        self._load_periods()
        self.load_record(grid.cursor_key)

    def _load_periods(self) -> None:
        from ...periods import period_names

        sel = self.query_one("#job-period", Select)
        current = sel.value
        self._periods = period_names()
        sel.set_options([(safe(p), p) for p in self._periods])
        if current in self._periods:
            sel.value = current

    def _load_companies(self) -> None:
        ids = [c.id for c in m.Company.select(m.Company.id).order_by(m.Company.id)]
        default = self.console.default_company
        if default not in ids:
            ids.insert(0, default)
        sel = self.query_one("#job-company", Select)
        current = sel.value
        self._companies = ids
        sel.set_options(safe_options((c, c) for c in ids))
        if current in ids:
            sel.value = current

    # -- the form -----------------------------------------------------------

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#jobs-grid", PagedGrid)

    def record_name(self) -> str:
        return "The new batch job" if self._new else f"Batch job {self.job_id}"

    def form_values(self) -> dict[str, Any]:
        company = self.query_one("#job-company", Select).value
        priority = self.query_one("#job-priority", Select).value
        period = self.query_one("#job-period", Select).value
        return {
            "description": self.query_one("#job-description", Input).value,
            "start": self.query_one("#job-start", Input).value.strip(),
            "time_zone": self.query_one("#job-tz", Input).value.strip(),
            "company": chosen(company),
            "priority": chosen(priority),
            "active_period": period if isinstance(period, str) else None,
            "late_after": self.query_one("#job-late", Input).value.strip(),
        }

    def _set_form(self, values: dict[str, Any]) -> None:
        for wid, key in (("#job-description", "description"), ("#job-start", "start"), ("#job-tz", "time_zone"),
                         ("#job-late", "late_after")):
            field = self.query_one(wid, Input)
            with field.prevent(Input.Changed):
                field.value = values[key]
            field.cursor_position = len(field.value)
            field.remove_class("-invalid")  # a value as saved is not the operator's mistake
        company = self.query_one("#job-company", Select)
        if values["company"] is None:
            company.clear()
        else:
            if values["company"] not in self._companies:
                self._load_companies()
            if values["company"] in self._companies:
                company.value = values["company"]
            else:
                company.clear()
        self.query_one("#job-priority", Select).value = values["priority"] or "normal"
        period = self.query_one("#job-period", Select)
        if values["active_period"] is not None and values["active_period"] not in self._periods:
            self._load_periods()
        if values["active_period"] in self._periods:
            period.value = values["active_period"]
        else:
            period.clear()
        self._loaded = dict(values)

    @staticmethod
    def _job_values(job: Any) -> dict[str, Any]:
        """A job as the form shows it."""
        return {
            "description": job.description,
            "start": wall(job.scheduled_start, job.time_zone),
            "time_zone": job.time_zone,
            "company": job.company_id,
            "priority": Priority(job.priority).cli,
            "active_period": job.active_period,
            "late_after": validators.seconds_shown(job.late_after),
        }

    def load_record(self, job_id: Any) -> None:
        """Show the job in the form (read from the database now)."""
        self._new = False
        self.show_message(None)
        job: Any = m.BatchJob.get_or_none(m.BatchJob.id == job_id) if job_id is not None else None
        self.job_id = job.id if job else None
        self.job_version = job.version if job else None
        self.query_one("#job-form").disabled = job is None
        if job is None:
            self._set_form(EMPTY_FORM)
            self._loaded = None
        else:
            self._set_form(self._job_values(job))
        self._show_read_only(job)
        self._refresh_actions()

    def reread(self) -> None:
        key = self.job_id
        if key is None or (self.grid.cursor_key != key and not self.grid.move_to_key(key)):
            key = self.grid.cursor_key
        self.load_record(key)

    def _refresh_actions(self) -> None:
        # The footer is rebuilt when this changes: only what greys a key out belongs here.
        cancellable = self.job_status in (BatchStatus.HOLD, BatchStatus.WAITING, BatchStatus.EXECUTING)
        running = self.job_status in (BatchStatus.EXECUTING, BatchStatus.CANCELLING)
        self.refresh_bindings_if((self._new, self.job_id is None, cancellable, running, type(self.focused).__name__))

    def on_descendant_focus(self) -> None:
        self._refresh_actions()

    def _show_read_only(self, job: Any) -> None:
        if job is None:
            texts = ("", "", "", "", "")
        else:
            texts = (str(job.id), status_label(job.status), visible(job.created_by), visible(job.run_by),
                     visible(job.recurrence_text) or "None")
        self.job_status = job.status if job is not None else None
        for wid, text in zip(("#job-id", "#job-status", "#job-created-by", "#job-run-by", "#job-recurrence"), texts,
                             strict=True):
            self.set_text(wid, safe(text))
        waiting = (_request_text(job) or job_waiting_reason(job) or "") if job is not None else ""
        self.set_text("#job-waiting", safe(waiting))

    # -- grid events --------------------------------------------------------

    @on(PagedGrid.CursorMoved, "#jobs-grid")
    @guarded
    def _cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key == self.job_id and not self._new:
            if self._load_timer is not None:  # back on the record shown: drop a stale load
                self._load_timer.stop()
                self._load_timer = None
            return
        if self.is_dirty():
            self._pending_key = event.key
            self.ask_unsaved(then=lambda: self.load_record(self._pending_key), stay=self._return_to_record)
            return
        # The grid moves at once; the form follows when the cursor rests, so
        # holding Down through thousands of jobs never waits for the form.
        self._pending_key = event.key
        if self._load_timer is not None:
            self._load_timer.stop()
        self._load_timer = self.set_timer(0.04, self._load_pending)

    @guarded
    def _load_pending(self) -> None:
        self._load_timer = None
        if not self.is_dirty() and self._pending_key != self.job_id:
            self.load_record(self._pending_key)

    def _flush_pending(self) -> None:
        """Actions work on the row under the cursor: load it now if the form lags (the timer's
        key may be older than the cursor: see follow_cursor)."""
        if self._load_timer is not None:
            self._load_timer.stop()
            self._load_timer = None
        self.follow_cursor()

    @property
    def current_key(self) -> Any:
        return self.job_id

    def form_settled(self) -> bool:
        return self._load_timer is None

    def _return_to_record(self) -> None:
        if self.job_id is not None:
            self.grid.move_to_key(self.job_id)
        self.query_one("#job-description", Input).focus()

    def jobs_changed(self) -> None:
        """Live refresh: rows re-read, cursor and scroll kept, the form's status updated; a form
        without changes re-reads its job when the job changed (a new start set by the server...)."""
        grid = self.grid
        grid.reload(keep_key=True)
        if self.job_id is None or self._new:
            return
        job: Any = m.BatchJob.get_or_none(m.BatchJob.id == self.job_id)
        if job is None:
            if not self.is_dirty():
                self.load_record(grid.cursor_key)
            return
        self._show_read_only(job)
        if not self.is_dirty() and (job.version != self.job_version or self._job_values(job) != self._loaded):
            self.load_record(job.id)
        self._refresh_actions()

    # -- filters and sorting ---------------------------------------------------

    def _apply_filter(self, keep_key: Any = None) -> None:
        text = self.query_one("#filter-text", Input).value
        status = self.query_one("#filter-status", Select).value
        grid = self.grid
        source = JobsSource(text, status if isinstance(status, int) and status != -1 else None,
                            self.sort, self.sort_descending)
        if isinstance(grid.source, JobsSource) and grid.source.criteria == source.criteria:
            # The same rows (the filters' first Changed events, as the screen mounts): not
            # counted and read again (at 1,000,000 jobs a count is 15-50 ms; issue 17).
            return
        grid.set_sort(self.sort, self.sort_descending)
        grid.set_source(source, keep_key=keep_key)
        if not self.is_dirty():
            self.load_record(grid.cursor_key)

    def sort_by(self, column: str, descending: bool) -> None:
        """Sort the grid; the cursor stays on the job it was on."""
        if column not in SORT_FIELDS:
            return
        self.sort, self.sort_descending = column, descending
        self._apply_filter(keep_key=self.grid.cursor_key)

    @guarded
    def action_sort_next(self) -> None:
        keys = [c.key for c in JOB_COLUMNS if c.key in SORT_FIELDS]
        column = keys[(keys.index(self.sort) + 1) % len(keys)]
        self.sort_by(column, column == DEFAULT_SORT[0] and DEFAULT_SORT[1])

    @guarded
    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort, not self.sort_descending)

    @on(PagedGrid.HeaderSelected, "#jobs-grid")
    @guarded
    def _header_selected(self, event: PagedGrid.HeaderSelected) -> None:
        if event.column_key == self.sort:
            self.sort_by(self.sort, not self.sort_descending)
        else:
            self.sort_by(event.column_key, event.column_key == DEFAULT_SORT[0] and DEFAULT_SORT[1])

    @on(Input.Changed, "#filter-text")
    @on(Select.Changed, "#filter-status")
    @guarded
    def _filter_changed(self) -> None:
        self._apply_filter()

    @on(Input.Submitted, "#filter-text")
    def _filter_submitted(self) -> None:
        self.grid.focus()

    def action_filter(self) -> None:
        self.query_one("#filter-text", Input).focus()

    def action_status_filter(self) -> None:
        self.query_one("#filter-status", Select).focus()

    # -- actions ------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("view_tasks", "recurrence", "alerts", "change_status", "cancel_job", "copy",
                      "history", "delete", "run_now", "rerun"):
            if self._new or self.job_id is None:
                return None  # shown greyed: no saved job selected
        if action in ("run_now", "rerun") and self.job_status in (BatchStatus.EXECUTING, BatchStatus.CANCELLING):
            return None  # refused while it runs
        if action == "cancel_job" and self.job_id is not None:
            if self.job_status not in (BatchStatus.HOLD, BatchStatus.WAITING, BatchStatus.EXECUTING):
                return None
        if action in ("filter", "status_filter", "view_tasks", "recurrence", "alerts", "change_status",
                      "cancel_job", "copy", "history", "sort_next", "sort_reverse", "run_now", "rerun"):
            if isinstance(self.focused, (Input, Select)) and action != "filter":
                return None
        return True

    @guarded
    def action_new(self) -> None:
        self._flush_pending()
        self.new_record(self._start_new)

    def _start_new(self) -> None:
        self._new = True
        self.job_id = None
        self.job_version = None
        self.query_one("#job-form").disabled = False
        self._load_companies()
        tz = machine_zone()
        self._set_form({"description": "", "start": wall(utcnow(), tz), "time_zone": tz,
                        "company": self.console.default_company, "priority": "normal",
                        "active_period": None, "late_after": ""})
        self.set_text("#job-id", "(new)")
        self.set_text("#job-status", "Withhold")
        self.set_text("#job-created-by", safe(self.user))
        self.set_text("#job-run-by", safe(self.user))
        self.set_text("#job-recurrence", "None")
        self.show_message("New batch job: enter its description, then Ctrl+S to save.", "note")
        self.query_one("#job-description", Input).focus()
        self._refresh_actions()

    def _changes(self, values: dict[str, Any]) -> dict[str, Any]:
        """What the service is given: for a saved job, only the fields the operator changed (the
        start shown to the minute is not written back unless it was edited)."""
        tz = values["time_zone"] or machine_zone()
        loaded = self._loaded or {}
        changed = {k for k, v in values.items() if self._new or loaded.get(k) != v}
        fields: dict[str, Any] = {}
        if "description" in changed:
            fields["description"] = values["description"]
        if changed & {"start", "time_zone"}:
            fields["scheduled_start"] = validators.wall_time_text(values["start"]).isoformat()
            fields["time_zone"] = tz
        if "company" in changed:
            fields["company"] = values["company"]
        if "priority" in changed:
            fields["priority"] = values["priority"] or "normal"
        if "active_period" in changed:
            fields["active_period"] = values["active_period"] or ""
        if "late_after" in changed:
            try:
                fields["late_after"] = validators.seconds_text(values["late_after"])
            except validators.Invalid as exc:
                raise exc.named("Late after") from None
        return fields

    def save(self) -> bool:
        """Save the record in the form; on a refusal, say why and keep what was typed."""
        from ... import jobs

        if not self._new and not self.is_dirty():
            return True
        values = self.form_values()
        refused = refusal(*(self.query_one(w, Input) for w in ("#job-description", "#job-start", "#job-tz",
                                                               "#job-late")))
        if refused is None and values["company"] is None:
            refused = "Company: choose the company the job runs in"
        if refused is not None:
            self.show_message(refused)
            return False
        try:
            fields = self._changes(values)
            if self._new:
                job_id = jobs.create_job(actor=self.actor, **fields).id
            else:
                assert self.job_id is not None and self.job_version is not None
                jobs.update_job(self.job_id, actor=self.actor, version=self.job_version, **fields)
                job_id = self.job_id
        except Conflict as exc:
            self.refused_as_changed(exc)
            return False
        except UserError as exc:
            self.show_message(str(exc))
            return False
        self._new = False
        self.job_id = job_id
        self.grid.reload(keep_key=False)
        self.grid.move_to_key(job_id)
        self.load_record(job_id)
        self.show_message(f"Saved batch job {job_id}.", "note")
        self.console.wake_engine()
        return True

    def refresh_lists(self) -> None:
        self._flush_pending()
        self._load_companies()
        self._load_periods()
        self.grid.reload(keep_key=True)

    @guarded
    def action_back(self) -> None:
        if self.is_dirty():
            self.ask_unsaved(then=self._discarded, stay=lambda: None)
            return
        grid = self.grid
        if self.focused is not grid:
            grid.focus()
            return
        if self.query_one("#filter-text", Input).value or self.query_one("#filter-status", Select).value != -1:
            self.query_one("#filter-text", Input).value = ""
            self.query_one("#filter-status", Select).value = -1

    def _discarded(self) -> None:
        self._new = False
        self.load_record(self.grid.cursor_key)
        self.grid.focus()

    def with_saved_job(self, then: Any) -> None:
        """Batch job menu actions work on the saved record: save first, as the ERP does."""
        with self.service_call("Not saved") as call:
            self._flush_pending()
            if self.job_id is None and not self._new:
                return
            if self.is_dirty() and not self.save():
                return
        if call.ok and self.job_id is not None:
            with self.service_call():
                then(self.job_id)

    @guarded
    def action_delete(self) -> None:
        self._flush_pending()
        if self._new:
            self._discarded()
            return
        job_id = self.job_id
        if job_id is None:
            return
        refused = delete_refusal(job_id)
        if refused is not None:  # no question first: the answer could only be refused
            self.show_message(refused)
            return

        def delete() -> None:
            with self.service_call("Not deleted") as call:
                try:
                    st.delete_job(job_id, self.actor)
                except UserError as exc:
                    self.show_message(str(exc))
                    return
            if call.ok:
                with self.service_call():
                    self._loaded = None
                    self.grid.reload(keep_key=False)
                    self.load_record(self.grid.cursor_key)
                    self.show_message(f"Deleted batch job {job_id}.", "note")

        self.confirm_delete(f"Delete batch job {job_id} and its tasks?", delete)


def delete_refusal(job_id: int) -> str | None:
    """Why the job cannot be deleted now (it runs), or None. The service checks again as it
    deletes (the status may change in between); this only spares a question answered for nothing."""
    from ...rules import JOB_MOVES

    job: Any = m.BatchJob.get_or_none(m.BatchJob.id == job_id)
    if job is None:
        return None
    current = BatchStatus(job.status)
    if JOB_MOVES["delete"].allows(current):
        return None
    return (f"Not deleted: batch job {job_id} is {current.label}. A job cannot be deleted while it runs: "
            "cancel it (x) and delete it once it is Canceled.")


def job_waiting_reason(job: Any) -> str | None:
    """The job's detail shows the first waiting reason among its tasks (the task grid shows each)."""
    from ...waiting import job_reasons

    if job.status not in (BatchStatus.WAITING, BatchStatus.EXECUTING):
        return None
    tasks = list(m.BatchTask.select().where(m.BatchTask.job == job.id).order_by(m.BatchTask.id))
    return next((r for r in job_reasons(job, tasks).values() if r), None)


def _request_text(job: Any) -> str | None:
    """A pending Run now or Rerun (issue 14), shown where the job says why it waits."""
    if job.run_request is None or job.status in (BatchStatus.EXECUTING, BatchStatus.CANCELLING):
        return None
    what = "Rerun from the failed tasks" if job.run_request == "rerun" else "Run now"
    return f"{what} requested: a batch server starts it shortly"
