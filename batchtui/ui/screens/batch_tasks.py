"""Batch tasks ("View tasks"): the job's tasks, their General fields, Parameters,
Has conditions and the log of the latest attempt."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static, TabbedContent, TabPane

from ... import models as m
from ... import validators
from ...errors import Conflict, UserError
from ...vocabulary import ConditionStatus, ConditionType
from ..format import status_label
from ..guard import guarded
from ..safe_text import safe, safe_options, visible
from ..validation import Description, MaxRetries, Seconds, refusal
from ..widgets.fields import chosen
from ..widgets.footer import Footer
from ..widgets.paged_grid import CallableSource, GridRow, PagedGrid
from ..widgets.parameters import ParametersForm
from .base import Breadcrumb, MessageLine
from .record_form import RecordForm, record_bindings
from .tasks_source import CONDITION_COLUMNS, TASK_COLUMNS, condition_rows, latest_attempt_log, task_rows

EXPECTED = [(c.label, c.cli) for c in ConditionStatus]
EMPTY_GROUP = "(Empty batch group)"
TABS = ["general", "parameters", "conditions", "log"]


class BatchTasksScreen(RecordForm):
    HELP_TITLE = "Batch tasks"
    RECORD = "task"

    BINDINGS = [
        *record_bindings("tasks"),
        Binding("f6", "next_tab", "Next tab", id="tasks.next_tab"),
        Binding("1", "tab('general')", "General", show=False, id="tasks.tab_general"),
        Binding("2", "tab('parameters')", "Parameters", show=False, id="tasks.tab_parameters"),
        Binding("3", "tab('conditions')", "Has conditions", show=False, id="tasks.tab_conditions"),
        Binding("4", "tab('log')", "Log", show=False, id="tasks.tab_log"),
        Binding("enter", "edit", "Edit task", show=False, id="tasks.edit"),
        Binding("question_mark", "app.help", "Help", show=False, id="tasks.help"),
    ]
    HELP_EXTRA = [
        ("Ctrl+N in Has conditions", "New condition (choose the parent task and its expected status)"),
        ("Ctrl+S in Has conditions", "Save the condition"),
        ("Alt+F9 in Has conditions", "Delete the condition under the cursor"),
        ("1 2 3 4 (in the grid)", "General / Parameters / Has conditions / Log"),
    ]

    def __init__(self, job_id: int) -> None:
        super().__init__()
        self.job_id = job_id
        # Read here, not in compose: a form that cannot be read (the database is away) is not opened.
        job: Any = m.BatchJob.get_by_id(job_id)
        self.title = f"Batch tasks: job {job_id}"
        self.job_description = job.description
        self.job_company = job.company_id
        self.task_id: int | None = None
        self.task_version: int | None = None
        self._new_condition = False
        self._saved_params: dict[str, Any] = {}  # the task's parameters as saved
        self._class_names: list[str] = []
        self._parents: list[int] = []  # the tasks a condition may wait for
        self._choices: dict[str, list[Any]] = {}  # the values each list field offers

    # -- layout -------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Breadcrumb(safe(f"System administration > Batch jobs > {self.job_id} "
                              f"{visible(self.job_description)} > Batch tasks"), id="breadcrumb")
        yield Static("[b]Task[/b]  New [dim]^N[/]  Save [dim]^S[/]  Delete [dim]Alt+F9[/] │ "
                     "[b]Has conditions[/b]  New [dim]^N[/]  Save [dim]^S[/]  Delete [dim]Alt+F9[/] │ "
                     "Tabs [dim]F6[/]", classes="action-pane")
        yield PagedGrid(TASK_COLUMNS, CallableSource(self._task_rows),
                        empty_text="No tasks. Press Ctrl+N to add one.", id="tasks-grid")
        with TabbedContent(id="task-tabs"):
            with TabPane("General", id="general"):
                yield from self._compose_general()
            with TabPane("Parameters", id="parameters"):
                yield ParametersForm(id="param-form", classes="record-form")
            with TabPane("Has conditions", id="conditions"):
                yield from self._compose_conditions()
            with TabPane("Log", id="log"):
                with VerticalScroll(id="log-view"):
                    yield Static("", id="task-log")
        yield MessageLine("", id="task-message")
        yield Footer()

    def _compose_general(self) -> ComposeResult:
        with Vertical(id="task-form", classes="record-form"):
            with Horizontal(classes="form-row"):
                yield Label("Task ID", classes="field-label")
                yield Label("", id="task-id", classes="read-only short")
                yield Label("Status", classes="field-label-short")
                yield Label("", id="task-status", classes="read-only short")
                yield Label("Retries used", classes="field-label-short")
                yield Label("", id="task-used", classes="read-only short")
            with Horizontal(classes="form-row"):
                yield Label("Description", classes="field-label")
                yield Input(id="task-description", compact=True, max_length=validators.MAX_DESCRIPTION,
                            validators=[Description("Description")], valid_empty=True)
            with Horizontal(classes="form-row"):
                yield Label("Company accounts", classes="field-label")
                yield Select([], id="task-company", compact=True, prompt="Company")
                yield Label("Class name", classes="field-label-short")
                yield Select([], id="task-class", compact=True, prompt="Class name")
            with Horizontal(classes="form-row"):
                yield Label("Batch group", classes="field-label")
                yield Select([(EMPTY_GROUP, "")], id="task-group", compact=True, allow_blank=False)
            with Horizontal(classes="form-row"):
                yield Label("Ignore task failure", classes="field-label")
                yield Checkbox("", id="task-ignore", compact=True, classes="bare")
                yield Label("Maximum retries", classes="field-label-short")
                yield Input("0", id="task-retries", compact=True, classes="count-input", restrict=r"[0-9]*",
                            max_length=2, validators=[MaxRetries("Maximum retries")])
                yield Label(f"(0 to {validators.MAX_RETRIES})", classes="dim")
                yield Label("Time limit", classes="field-label-short")
                yield Input(id="task-limit", placeholder="seconds", compact=True, classes="seconds-input",
                            validators=[Seconds("Time limit")], valid_empty=True)

    def _compose_conditions(self) -> ComposeResult:
        with Vertical(id="conditions-pane"):
            with Horizontal(classes="form-row"):
                yield Label("Condition type", classes="field-label")
                yield Select([("All", "all"), ("Any", "any")], value="all", allow_blank=False,
                             id="task-ctype", compact=True)
                yield Label("All: every condition must hold; Any: one is enough", classes="dim")
            yield PagedGrid(CONDITION_COLUMNS, CallableSource(self._condition_rows),
                            empty_text="No conditions: the task is ready as soon as the job starts.",
                            id="conditions-grid")
            with Horizontal(classes="form-row", id="condition-new"):
                yield Label("Parent task ID", classes="field-label")
                yield Select([], id="cond-parent", compact=True, prompt="Task")
                yield Label("Expected status", classes="field-label-short")
                yield Select(EXPECTED, value="ended", allow_blank=False, id="cond-expected", compact=True)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#task-message", MessageLine).display = False
        self.query_one("#condition-new").display = False
        self._load_lists()
        self.grid.focus()
        self.load_record(self.grid.cursor_key)

    def _load_lists(self) -> None:
        from ...classes import list_classes

        companies = [c.id for c in m.Company.select(m.Company.id).order_by(m.Company.id)]
        if self.job_company not in companies:
            companies.insert(0, self.job_company)
        self._set_options("#task-company", [(c, c) for c in companies])
        self._class_names = sorted(c.name for c in list_classes())
        self._set_options("#task-class", [(n, n) for n in self._class_names])
        groups = [(g.name or EMPTY_GROUP, g.name) for g in m.BatchGroup.select().order_by(m.BatchGroup.name)]
        if not any(v == "" for _, v in groups):
            groups.insert(0, (EMPTY_GROUP, ""))
        self._set_options("#task-group", groups)

    def _set_options(self, wid: str, options: list[tuple[str, Any]]) -> None:
        sel = self.query_one(wid, Select)
        current = sel.value
        self._choices[wid] = [v for _, v in options]
        sel.set_options(safe_options(options))
        if chosen(current) is not None and current in self._choices[wid]:
            sel.value = current

    # -- rows ---------------------------------------------------------------

    def _task_rows(self) -> list[GridRow]:
        return task_rows(self.job_id)

    def _condition_rows(self) -> list[GridRow]:
        return [] if self.task_id is None or self._new else condition_rows(self.task_id)

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#tasks-grid", PagedGrid)

    @property
    def conditions_grid(self) -> PagedGrid:
        return self.query_one("#conditions-grid", PagedGrid)

    @property
    def parameters(self) -> ParametersForm:
        return self.query_one("#param-form", ParametersForm)

    # -- the form -----------------------------------------------------------

    def record_name(self) -> str:
        return "The new task" if self._new else f"Task {self.task_id}"

    def _select_value(self, wid: str) -> Any:
        value = self.query_one(wid, Select).value
        return chosen(value)

    def _set_select(self, wid: str, value: Any) -> None:
        sel = self.query_one(wid, Select)
        if value is None or value not in self._choices.get(wid, [value]):
            sel.clear()
        else:
            sel.value = value

    def form_values(self) -> dict[str, Any]:
        return {
            "description": self.query_one("#task-description", Input).value,
            "company": self._select_value("#task-company"),
            "class_name": self._select_value("#task-class"),
            "batch_group": self._select_value("#task-group") or "",
            "ignore_failure": self.query_one("#task-ignore", Checkbox).value,
            "max_retries": self.query_one("#task-retries", Input).value.strip(),
            "time_limit": self.query_one("#task-limit", Input).value.strip(),
            "condition_type": self._select_value("#task-ctype") or "all",
            "params": self.parameters.texts(),
        }

    def _set_form(self, values: dict[str, Any], params: dict[str, Any]) -> None:
        for wid, key in (("#task-description", "description"), ("#task-retries", "max_retries"),
                         ("#task-limit", "time_limit")):
            field = self.query_one(wid, Input)
            with field.prevent(Input.Changed):
                field.value = values[key]
            field.remove_class("-invalid")  # a value as saved is not the operator's mistake
        self._set_select("#task-company", values["company"])
        self._set_select("#task-class", values["class_name"])
        self._set_select("#task-group", values["batch_group"])
        self.query_one("#task-ignore", Checkbox).value = values["ignore_failure"]
        self._set_select("#task-ctype", values["condition_type"])
        self.parameters.build(values["class_name"], params)
        self.mark_loaded()

    def is_dirty(self) -> bool:
        return self._new_condition or super().is_dirty()

    def task_dirty(self) -> bool:
        return super().is_dirty()

    def discard(self) -> None:
        super().discard()
        self._close_new_condition()

    def load_record(self, task_id: Any) -> None:
        self._new = False
        self.show_message(None)
        task: Any = m.BatchTask.get_or_none(m.BatchTask.id == task_id) if task_id is not None else None
        self.task_id = task.id if task else None
        self.task_version = task.version if task else None
        self._saved_params = dict(task.params or {}) if task else {}
        self.query_one("#task-tabs").disabled = task is None
        if task is None:
            self._set_form({"description": "", "company": None, "class_name": None, "batch_group": "",
                            "ignore_failure": False, "max_retries": "0", "condition_type": "all",
                            "time_limit": ""}, {})
            self._loaded = None
        else:
            self._set_form({
                "description": task.description,
                "company": task.company_id,
                "class_name": task.class_name if task.class_name in self._class_names else None,
                "batch_group": task.batch_group or "",
                "ignore_failure": bool(task.ignore_failure),
                "max_retries": str(task.max_retries),
                "time_limit": validators.seconds_shown(task.time_limit),
                "condition_type": ConditionType(task.condition_type).cli,
            }, task.params or {})
        self._show_read_only(task)
        self._close_new_condition()
        self.conditions_grid.reload(keep_key=False, reset=True)
        self._load_parents()
        self._show_log()
        self.refresh_bindings()

    def reread(self) -> None:
        key = self.task_id
        if key is None or (self.grid.cursor_key != key and not self.grid.move_to_key(key)):
            key = self.grid.cursor_key
        self.load_record(key)

    def _show_read_only(self, task: Any) -> None:
        texts = ("", "", "") if task is None else (str(task.id), status_label(task.status), str(task.retries_used))
        for wid, text in zip(("#task-id", "#task-status", "#task-used"), texts, strict=True):
            self.set_text(wid, text)

    def _load_parents(self) -> None:
        T = m.BatchTask
        others = (T.job == self.job_id) & (T.id != (self.task_id or 0))
        rows: list[Any] = list(T.select(T.id, T.description).where(others).order_by(T.id).tuples())
        self._parents = [tid for tid, _ in rows]
        self.query_one("#cond-parent", Select).set_options(safe_options((f"{tid}  {d}", tid) for tid, d in rows))

    def _show_log(self) -> None:
        log = self.query_one("#task-log", Static)
        log.update("" if self.task_id is None or self._new else latest_attempt_log(self.task_id, self.job_id))

    # -- events -------------------------------------------------------------

    @on(PagedGrid.CursorMoved, "#tasks-grid")
    @guarded
    def _cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key == self.task_id and not self._new:
            return
        if self.is_dirty():
            pending = event.key
            self.ask_unsaved(then=lambda: self.load_record(pending),
                             stay=lambda: self.task_id is not None and self.grid.move_to_key(self.task_id))
            return
        self.load_record(event.key)

    @on(Select.Changed, "#task-class")
    def _class_changed(self, event: Select.Changed) -> None:
        value = None if chosen(event.value) is None else str(event.value)
        if value != self.parameters.class_name:
            loaded_class = (self._loaded or {}).get("class_name")
            self.parameters.build(value, self._saved_params if self.task_id and value == loaded_class else {})

    def on_tick(self) -> None:
        """Once a second: task statuses and the log, as the engine moves them."""
        self.jobs_changed()

    def jobs_changed(self) -> None:
        """Live refresh. The grids are read in worker threads (a job may have thousands of
        tasks); the task in the form is re-read by itself when it changed and nothing was typed."""
        if not self.is_mounted:
            return
        self.grid.reload_in_background()
        if self.task_id is None or self._new:
            return
        task: Any = m.BatchTask.get_or_none(m.BatchTask.id == self.task_id)
        if task is None:
            if not self.is_dirty():
                self.load_record(self.grid.cursor_key)
            return
        self._show_read_only(task)
        if not self.is_dirty() and task.version != self.task_version:
            self.load_record(task.id)
        self.conditions_grid.reload_in_background()
        self._show_log()

    # -- actions ------------------------------------------------------------

    def _in_conditions(self) -> bool:
        pane = self.query_one("#conditions-pane")
        node: Widget | None = self.focused
        while node is not None:
            if node is pane:
                return True
            node = node.parent if isinstance(node.parent, Widget) else None
        return False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("tab", "edit") and isinstance(self.focused, (Input, Select, Checkbox)):
            return None
        if action == "delete" and self.task_id is None and not self._new:
            return None
        return True

    def action_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = name
        if name == "conditions":
            self.conditions_grid.focus()
        elif name == "log":
            self.query_one("#log-view").focus()

    def action_next_tab(self) -> None:
        tc = self.query_one(TabbedContent)
        tc.active = TABS[(TABS.index(tc.active) + 1) % len(TABS)] if tc.active in TABS else "general"

    @property
    def current_key(self) -> Any:
        return self.task_id

    def action_edit(self) -> None:
        self.follow_cursor()
        if self.task_id is not None:
            self.query_one(TabbedContent).active = "general"
            self.query_one("#task-description", Input).focus()

    @guarded
    def action_new(self) -> None:
        if self._in_conditions():
            self._start_new_condition()
            return
        self.new_record(self._start_new)

    def _start_new(self) -> None:
        self._new = True
        self.task_id = None
        self.task_version = None
        self._saved_params = {}
        self.query_one("#task-tabs").disabled = False
        self._load_lists()
        self.query_one(TabbedContent).active = "general"
        self._set_form({"description": "", "company": self.job_company, "class_name": None, "batch_group": "",
                        "ignore_failure": False, "max_retries": "0", "condition_type": "all",
                            "time_limit": ""}, {})
        for wid, text in (("#task-id", "(new)"), ("#task-status", ""), ("#task-used", "")):
            self.set_text(wid, text)
        self.conditions_grid.reload(keep_key=False, reset=True)
        self._show_log()
        self.show_message("New task: description, company accounts, class name; Ctrl+S saves.", "note")
        self.query_one("#task-description", Input).focus()
        self.refresh_bindings()

    def _start_new_condition(self) -> None:
        if self._new or self.task_id is None:
            self.show_message("Save the task first (Ctrl+S), then add its conditions.")
            return
        if self.task_dirty() and not self.save_task():
            return
        self._load_parents()
        if not self._parents:
            self.show_message("The job has no other task to depend on: add the parent task first.")
            return
        self._new_condition = True
        self.query_one("#condition-new").display = True
        self.query_one("#cond-parent", Select).clear()
        self.query_one("#cond-expected", Select).value = "ended"
        self.query_one("#cond-parent", Select).focus()
        self.show_message("New condition: choose the parent task and its expected status; Ctrl+S saves.", "note")

    def _close_new_condition(self) -> None:
        self._new_condition = False
        self.query_one("#condition-new").display = False

    def save(self) -> bool:
        if self._new_condition and not self.save_condition():
            return False
        if self.task_dirty():
            return self.save_task()
        return True

    def _task_fields(self) -> dict[str, Any]:
        """The task form as the service takes it; Invalid or UserError name the field."""
        v = self.form_values()
        refused = refusal(self.query_one("#task-description", Input), self.query_one("#task-retries", Input),
                          self.query_one("#task-limit", Input))
        if refused is not None:
            raise UserError(refused)
        if v["company"] is None:
            raise UserError("Company accounts: choose the company the task runs in")
        if v["class_name"] is None:
            raise UserError("Class name: choose the process the task runs")
        return dict(description=v["description"], company=v["company"], class_name=v["class_name"],
                    params=self.parameters.values(v["params"], self._saved_params), batch_group=v["batch_group"],
                    ignore_failure=v["ignore_failure"], max_retries=validators.max_retries_text(v["max_retries"]),
                    condition_type=v["condition_type"], time_limit=_time_limit(v["time_limit"]))

    def save_task(self) -> bool:
        from ... import jobs

        try:
            fields = self._task_fields()
            if self._new:
                task_id = jobs.add_task(self.job_id, actor=self.actor, **fields).id
            else:
                assert self.task_id is not None and self.task_version is not None
                task_id = jobs.update_task(self.task_id, actor=self.actor, version=self.task_version, **fields).id
        except Conflict as exc:
            self.refused_as_changed(exc)
            return False
        except UserError as exc:
            self.show_message(str(exc))
            invalid_param = isinstance(exc, validators.Invalid) and (exc.field or "").startswith("Parameter")
            if invalid_param or getattr(exc, "param", None):
                self.query_one(TabbedContent).active = "parameters"
            return False
        self._new = False
        self.grid.reload(keep_key=False)
        self.grid.move_to_key(task_id)
        self.load_record(task_id)
        self.show_message(f"Saved task {task_id}.", "note")
        return True

    def save_condition(self) -> bool:
        from ... import jobs

        parent = self._select_value("#cond-parent")
        expected = self._select_value("#cond-expected") or "ended"
        if parent is None:
            self.show_message("Parent task ID: choose the task this one waits for")
            return False
        with self.service_call("Condition not saved") as call:
            try:
                jobs.add_condition(self.task_id, actor=self.actor, parent_id=parent, expected=expected)
            except UserError as exc:
                self.show_message(str(exc))
                return False
        if call.failed:
            return False
        self._close_new_condition()
        self.conditions_grid.reload(keep_key=False)
        self.conditions_grid.focus()
        self.show_message(f"Condition saved: task {self.task_id} waits for task {parent} "
                          f"({ConditionStatus.from_cli(expected).label}).", "note")
        return True

    def action_save(self) -> None:
        if not self.is_dirty():
            self.show_message("Nothing to save.", "note")
            return
        super().action_save()

    def refresh_lists(self) -> None:
        self._load_lists()
        self.grid.reload(keep_key=True)

    @guarded
    def action_delete(self) -> None:
        if self._in_conditions():
            self._delete_condition()
            return
        if self._new:
            self._new = False
            self.load_record(self.grid.cursor_key)
            self.grid.focus()
            return
        self.follow_cursor()
        task_id = self.task_id
        if task_id is None:
            return
        from .batch_jobs import delete_refusal

        if delete_refusal(self.job_id) is not None:  # its job runs: refused at once, no question
            job: Any = m.BatchJob.get_or_none(m.BatchJob.id == self.job_id)
            label = status_label(job.status) if job is not None else ""
            self.show_message(f"Not deleted: batch job {self.job_id} is {label}; its tasks cannot be "
                              "changed while it runs.")
            return

        def delete() -> None:
            from ... import jobs

            with self.service_call("Not deleted") as call:
                try:
                    jobs.delete_task(task_id, actor=self.actor)
                except UserError as exc:
                    self.show_message(str(exc))
                    return
            if call.ok:
                with self.service_call():
                    self._loaded = None
                    self.grid.reload(keep_key=False)
                    self.load_record(self.grid.cursor_key)
                    self.show_message(f"Deleted task {task_id}.", "note")

        self.confirm_delete(f"Delete task {task_id} and the conditions on it?", delete)

    def _delete_condition(self) -> None:
        if self._new_condition:
            self._close_new_condition()
            self.show_message(None)
            return
        condition = self.conditions_grid.cursor_key
        if condition is None:
            return

        def delete() -> None:
            from ... import jobs

            with self.service_call("Not deleted") as call:
                try:
                    jobs.delete_condition(condition, actor=self.actor)
                except UserError as exc:
                    self.show_message(str(exc))
                    return
            if call.ok:
                with self.service_call():
                    self.conditions_grid.reload(keep_key=False)
                    self.show_message("Condition deleted.", "note")

        self.confirm_delete("Delete this condition?", delete)

    @guarded
    def action_back(self) -> None:
        if self._new_condition:
            self._close_new_condition()
            self.show_message(None)
            self.conditions_grid.focus()
            return
        if self.is_dirty():
            self.ask_unsaved(then=self._leave, stay=lambda: None)
            return
        if self.focused is not self.grid:
            self.grid.focus()
            return
        self._leave()

    def _leave(self) -> None:
        self.discard()
        self.app.pop_screen()


def _time_limit(text: str) -> float | None:
    """The Time limit field: seconds, blank for none (a refusal names the field)."""
    try:
        return validators.seconds_text(text)
    except validators.Invalid as exc:
        raise exc.named("Time limit") from None
