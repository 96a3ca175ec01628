"""Batch tasks ("View tasks"): the job's tasks, their General fields, Parameters,
Has conditions and the log of the latest attempt."""

from __future__ import annotations

import json

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Checkbox, Footer, Input, Label, Select, Static, TabbedContent, TabPane

from ... import models as m
from ...errors import UserError
from ...vocabulary import BatchStatus, ConditionStatus, ConditionType
from ..format import condition_label, status_label, status_style, wall, yes_no
from ..outage import DB_ERRORS
from ..progress import attempt_fraction, bar, task_progress
from ..safe_text import one_line, safe, visible
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import BaseScreen, Breadcrumb, MessageLine

TASK_COLUMNS = [
    Column("id", "Task ID", 7, align="right"),
    Column("description", "Description", 13, flex=True),
    Column("company", "Company", 8),
    Column("class", "Class name", 10, flex=True),
    Column("group", "Batch group", 11),
    Column("status", "Status", 10),
    Column("progress", "Progress", 11),
    Column("ignore", "Ignore failure", 14),
    Column("retries", "Max retries", 11, align="right"),
    Column("used", "Retries used", 12, align="right"),
]
CONDITION_COLUMNS = [
    Column("parent", "Task ID", 7, align="right"),
    Column("description", "Description", 20, flex=True),
    Column("expected", "Expected status", 15),
    Column("now", "Parent status", 13),
]
EXPECTED = [(c.label, c.cli) for c in ConditionStatus]


def _param_text(value, ptype: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and ptype == "number":
        return str(int(value))
    return str(value)


class ParamError_(Exception):
    pass


def _param_value(text: str, ptype: str, name: str):
    """Typed value from the form's text; ValueError names the parameter."""
    text = text.strip()
    if ptype == "integer":
        try:
            return int(text)
        except ValueError:
            raise UserError(f"Parameter {name}: {text!r} is not a whole number") from None
    if ptype == "number":
        try:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            raise UserError(f"Parameter {name}: {text!r} is not a number") from None
    if ptype == "text_or_list" and text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"Parameter {name}: not a JSON list of texts ({exc.msg})") from None
        return value
    return text


class BatchTasksScreen(BaseScreen):
    HELP_TITLE = "Batch tasks"

    BINDINGS = [
        Binding("ctrl+n", "new", "New", id="tasks.new"),
        Binding("ctrl+s", "save", "Save", id="tasks.save"),
        Binding("alt+f9,ctrl+delete", "delete", "Delete", key_display="Alt+F9", id="tasks.delete"),
        Binding("f5", "refresh", "Refresh", id="tasks.refresh"),
        Binding("escape", "back", "Back", id="tasks.back"),
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
        job = m.BatchJob.get_by_id(job_id)
        self.title = f"Batch tasks: job {job_id}"
        self.job_description = job.description
        self.job_company = job.company_id
        self.task_id: int | None = None
        self.task_version: int | None = None
        self._new = False
        self._loaded: dict | None = None
        self._params: list[dict] = []
        self._class_loaded: str | None = None
        self._new_condition = False
        self._param_gen = 0
        self._param_initial: dict = {}
        self._saved_params: dict = {}
        self._class_names: list[str] = []

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
                        yield Input(id="task-description", compact=True, max_length=200)
                    with Horizontal(classes="form-row"):
                        yield Label("Company accounts", classes="field-label")
                        yield Select([], id="task-company", compact=True, prompt="Company")
                        yield Label("Class name", classes="field-label-short")
                        yield Select([], id="task-class", compact=True, prompt="Class name")
                    with Horizontal(classes="form-row"):
                        yield Label("Batch group", classes="field-label")
                        yield Select([("(Empty batch group)", "")], id="task-group", compact=True, allow_blank=False)
                    with Horizontal(classes="form-row"):
                        yield Label("Ignore task failure", classes="field-label")
                        yield Checkbox("", id="task-ignore", compact=True, classes="bare")
                        yield Label("Maximum retries", classes="field-label-short")
                        yield Input("0", id="task-retries", compact=True, classes="count-input",
                                    restrict=r"[0-9]*", max_length=2)
                        yield Label("(0 to 5)", classes="dim")
            with TabPane("Parameters", id="parameters"):
                yield VerticalScroll(id="param-form", classes="record-form")
            with TabPane("Has conditions", id="conditions"):
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
            with TabPane("Log", id="log"):
                with VerticalScroll(id="log-view"):
                    yield Static("", id="task-log")
        yield MessageLine("", id="task-message")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#task-message", MessageLine).display = False
        self.query_one("#condition-new").display = False
        self._load_lists()
        grid = self.query_one("#tasks-grid", PagedGrid)
        grid.focus()
        self._load_record(grid.cursor_key)

    def _load_lists(self) -> None:
        companies = [c.id for c in m.Company.select(m.Company.id).order_by(m.Company.id)]
        if self.job_company not in companies:
            companies.insert(0, self.job_company)
        self._set_options("#task-company", [(c, c) for c in companies])
        try:
            from ...classes import list_classes

            names = sorted(c.name for c in list_classes())
        except Exception:
            names = []
        self._class_names = names
        self._set_options("#task-class", [(n, n) for n in names])
        groups = [(g.name or "(Empty batch group)", g.name) for g in m.BatchGroup.select().order_by(m.BatchGroup.name)]
        if not any(v == "" for _, v in groups):
            groups.insert(0, ("(Empty batch group)", ""))
        self._set_options("#task-group", groups)

    def _set_options(self, wid: str, options) -> None:
        sel = self.query_one(wid, Select)
        current = sel.value
        sel.set_options(options)
        if current is not Select.BLANK and any(v == current for _, v in options):
            sel.value = current

    # -- rows ---------------------------------------------------------------

    def _task_rows(self) -> list[GridRow]:
        tasks = list(m.BatchTask.select().where(m.BatchTask.job == self.job_id).order_by(m.BatchTask.id))
        running = task_progress(t.id for t in tasks if t.status == BatchStatus.EXECUTING)
        rows = []
        for t in tasks:
            done = running.get(t.id)
            if done is None and t.status == BatchStatus.EXECUTING:
                done = (0.0, None)  # started, nothing reported yet
            rows.append(GridRow(t.id, [
                str(t.id), one_line(t.description), one_line(t.company_id), one_line(t.class_name),
                one_line(t.batch_group) or "", status_label(t.status), bar(done[0]) if done else "",
                yes_no(t.ignore_failure), str(t.max_retries), str(t.retries_used),
            ], {5: status_style(t.status), 6: "yellow"}))
        return rows

    def _condition_rows(self) -> list[GridRow]:
        if self.task_id is None or self._new:
            return []
        Parent = m.BatchTask.alias()
        rows = []
        query = (m.BatchConstraint.select(m.BatchConstraint, Parent.description, Parent.status)
                 .join(Parent, on=(m.BatchConstraint.parent == Parent.id))
                 .where(m.BatchConstraint.task == self.task_id).order_by(m.BatchConstraint.id))
        for c in query.objects():
            rows.append(GridRow(c.id, [str(c.parent_id), one_line(c.description), condition_label(c.expected),
                                       status_label(c.status)], {3: status_style(c.status)}))
        return rows

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#tasks-grid", PagedGrid)

    @property
    def conditions_grid(self) -> PagedGrid:
        return self.query_one("#conditions-grid", PagedGrid)

    # -- the form -----------------------------------------------------------

    def _select_value(self, wid: str):
        value = self.query_one(wid, Select).value
        return None if value is Select.BLANK else value

    def _set_select(self, wid: str, value) -> None:
        sel = self.query_one(wid, Select)
        if value is None:
            sel.clear()
            return
        try:
            sel.value = value
        except Exception:
            sel.clear()

    def _form_values(self) -> dict:
        return {
            "description": self.query_one("#task-description", Input).value,
            "company": self._select_value("#task-company"),
            "class_name": self._select_value("#task-class"),
            "batch_group": self._select_value("#task-group") or "",
            "ignore_failure": self.query_one("#task-ignore", Checkbox).value,
            "max_retries": self.query_one("#task-retries", Input).value.strip(),
            "condition_type": self._select_value("#task-ctype") or "all",
            "params": self._param_texts(),
        }

    def _param_texts(self) -> dict:
        out = {}
        for p in self._params:
            try:
                widget = self.query_one(f"#param-{self._param_gen}-{p['name']}")
            except Exception:  # mounted on the next refresh: what it was built with
                out[p["name"]] = self._param_initial.get(p["name"])
                continue
            out[p["name"]] = widget.value
        return out

    def _set_form(self, values: dict, params: dict | None) -> None:
        self.query_one("#task-description", Input).value = values["description"]
        self._set_select("#task-company", values["company"])
        self._set_select("#task-class", values["class_name"])
        self._set_select("#task-group", values["batch_group"])
        self.query_one("#task-ignore", Checkbox).value = values["ignore_failure"]
        self.query_one("#task-retries", Input).value = values["max_retries"]
        self._set_select("#task-ctype", values["condition_type"])
        self._build_params(values["class_name"], params or {})
        self._loaded = self._form_values()

    def _build_params(self, class_name: str | None, params: dict) -> None:
        """The Parameters tab, generated from the class's declared parameters."""
        container = self.query_one("#param-form", VerticalScroll)
        container.remove_children()
        self._param_gen += 1
        gen = self._param_gen
        self._class_loaded = class_name
        self._params = []
        self._param_initial = {}
        if not class_name:
            container.mount(Static("Choose a class name on the General tab.", classes="dim"))
            return
        try:
            from ...classes import describe_class, get_class

            info = describe_class(get_class(class_name))
        except Exception as exc:
            container.mount(Static(safe(f"Class {class_name}: {exc}"), classes="error-line"))
            return
        self._params = info["params"]
        widgets: list[Widget] = [Static(safe(f"{info['name']}: {info['description']}"), classes="dim")]
        if not self._params:
            widgets.append(Static("This class has no parameters.", classes="dim"))
        for p in self._params:
            name, ptype = p["name"], p["type"]
            label = name + (" *" if p["required"] else "")
            value = params.get(name, None)
            if ptype == "boolean":
                initial = bool(value if value is not None else p["default"])
                self._param_initial[name] = initial
                control = Checkbox("", initial, id=f"param-{gen}-{name}", compact=True, classes="bare")
            else:
                default = p["default"]
                placeholder = "required" if p["required"] else (
                    f"default {_param_text(default, ptype)}" if default is not None else "not set")
                self._param_initial[name] = _param_text(value, ptype)
                control = Input(_param_text(value, ptype), placeholder=placeholder, id=f"param-{gen}-{name}",
                                compact=True, classes="param-input")
            row = Horizontal(Label(safe(label), classes="field-label"), control,
                             Label(safe(f"{ptype}. {p['help']}"), classes="dim param-help"), classes="form-row")
            widgets.append(row)
        container.mount_all(widgets)

    def _params_for_save(self, texts: dict) -> dict:
        params = {}
        for p in self._params:
            name, ptype = p["name"], p["type"]
            raw = texts.get(name)
            if ptype == "boolean":
                if raw is not None and (raw != bool(p["default"]) or name in (self._saved_params or {})):
                    params[name] = bool(raw)
                continue
            if raw is None or not str(raw).strip():
                continue  # the class's default
            params[name] = _param_value(str(raw), ptype, name)
        return params

    def is_dirty(self) -> bool:
        if self._new:
            return True
        if self._new_condition:
            return True
        return self._loaded is not None and self._form_values() != self._loaded

    def _load_record(self, task_id) -> None:
        self._new = False
        self.show_message(None)
        task = m.BatchTask.get_or_none(m.BatchTask.id == task_id) if task_id is not None else None
        self.task_id = task.id if task else None
        self.task_version = task.version if task else None
        self._saved_params = dict(task.params or {}) if task else {}
        self.query_one("#task-tabs").disabled = task is None
        if task is None:
            self._set_form({"description": "", "company": None, "class_name": None, "batch_group": "",
                            "ignore_failure": False, "max_retries": "0", "condition_type": "all"}, {})
            self._loaded = None
            self._show_read_only(None)
        else:
            self._set_form({
                "description": task.description,
                "company": task.company_id,
                "class_name": task.class_name if task.class_name in self._class_names else None,
                "batch_group": task.batch_group or "",
                "ignore_failure": bool(task.ignore_failure),
                "max_retries": str(task.max_retries),
                "condition_type": ConditionType(task.condition_type).cli,
            }, task.params or {})
            self._show_read_only(task)
        self._close_new_condition()
        self.conditions_grid.reload(keep_key=False, reset=True)
        self._load_parents()
        self._show_log()
        self.refresh_bindings()

    def _show_read_only(self, task) -> None:
        texts = ("", "", "") if task is None else (str(task.id), status_label(task.status), str(task.retries_used))
        for wid, text in zip(("#task-id", "#task-status", "#task-used"), texts):
            self.query_one(wid, Label).update(text)

    def _load_parents(self) -> None:
        options = [(f"{t.id}  {visible(t.description)}", t.id)
                   for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.description)
                   .where((m.BatchTask.job == self.job_id) & (m.BatchTask.id != (self.task_id or 0)))
                   .order_by(m.BatchTask.id)]
        self.query_one("#cond-parent", Select).set_options(options)

    def _show_log(self) -> None:
        log = self.query_one("#task-log", Static)
        if self.task_id is None or self._new:
            log.update("")
            return
        attempt = (m.TaskAttempt.select().where(m.TaskAttempt.task == self.task_id)
                   .order_by(m.TaskAttempt.id.desc()).first())
        if attempt is None:
            log.update("The task has not run yet.")
            return
        tz = m.BatchJob.get_by_id(self.job_id).time_zone
        head = (f"Attempt {attempt.attempt}: {status_label(attempt.status)} on {visible(attempt.server)}, "
                f"started {wall(attempt.started, tz, '%Y-%m-%d %H:%M:%S')}"
                + (f", ended {wall(attempt.ended, tz, '%Y-%m-%d %H:%M:%S')}" if attempt.ended else ""))
        if attempt.ended is None and (attempt.progress is not None or attempt.progress_text):
            fraction = attempt_fraction(attempt.progress, attempt.ended)
            head += f"\nProgress: {bar(fraction, 20)}" + (
                f"  {one_line(attempt.progress_text)}" if attempt.progress_text else "")
        text = safe(head + "\n\n" + (attempt.log or "(no log lines)"), keep_newlines=True)
        log.update(text)

    def show_message(self, text: str | None, severity: str = "error") -> None:
        self.query_one("#task-message", MessageLine).show(text, severity)

    # -- events -------------------------------------------------------------

    @on(PagedGrid.CursorMoved, "#tasks-grid")
    def _cursor_moved(self, event: PagedGrid.CursorMoved) -> None:
        if event.key == self.task_id and not self._new:
            return
        if self.is_dirty():
            pending = event.key
            self._ask_unsaved(then=lambda: self._load_record(pending),
                              stay=lambda: self.task_id is not None and self.grid.move_to_key(self.task_id))
            return
        self._load_record(event.key)

    @on(Select.Changed, "#task-class")
    def _class_changed(self, event: Select.Changed) -> None:
        value = None if event.value is Select.BLANK else event.value
        if value != self._class_loaded:
            keep = self._saved_params if self.task_id and value == self._loaded_class() else {}
            self._build_params(value, keep)

    def _loaded_class(self):
        return (self._loaded or {}).get("class_name")

    def on_tick(self) -> None:
        """Once a second: task statuses and the log, as the engine moves them."""
        self.jobs_changed()

    def jobs_changed(self) -> None:
        if not self.is_mounted:
            return
        self.grid.reload(keep_key=True)
        if self.task_id is not None and not self._new:
            task = m.BatchTask.get_or_none(m.BatchTask.id == self.task_id)
            if task is None:
                if not self.is_dirty():
                    self._load_record(self.grid.cursor_key)
                return
            self._show_read_only(task)
            if not self.is_dirty() and task.version != self.task_version:
                self._load_record(task.id)
            self.conditions_grid.reload(keep_key=True)
            self._show_log()

    # -- actions ------------------------------------------------------------

    def _in_conditions(self) -> bool:
        focused = self.focused
        pane = self.query_one("#conditions-pane")
        while focused is not None:
            if focused is pane:
                return True
            focused = focused.parent
        return False

    def check_action(self, action: str, parameters) -> bool | None:
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
        tabs = ["general", "parameters", "conditions", "log"]
        tc = self.query_one(TabbedContent)
        tc.active = tabs[(tabs.index(tc.active) + 1) % len(tabs)] if tc.active in tabs else "general"

    def action_edit(self) -> None:
        if self.task_id is not None:
            self.query_one(TabbedContent).active = "general"
            self.query_one("#task-description", Input).focus()

    def action_new(self) -> None:
        if self._in_conditions():
            self._start_new_condition()
            return
        if self.is_dirty() and not self._new:
            self._ask_unsaved(then=self._start_new, stay=lambda: None)
            return
        self._start_new()

    def _start_new(self) -> None:
        self._new = True
        self.task_id = None
        self.task_version = None
        self._saved_params = {}
        self.query_one("#task-tabs").disabled = False
        self._load_lists()
        self.query_one(TabbedContent).active = "general"
        self._set_form({"description": "", "company": self.job_company, "class_name": None, "batch_group": "",
                        "ignore_failure": False, "max_retries": "0", "condition_type": "all"}, {})
        self.query_one("#task-id", Label).update("(new)")
        self.query_one("#task-status", Label).update("")
        self.query_one("#task-used", Label).update("")
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
        if not self.query_one("#cond-parent", Select)._options[1:]:
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

    def task_dirty(self) -> bool:
        return self._new or (self._loaded is not None and self._form_values() != self._loaded)

    def save(self) -> bool:
        ok = True
        if self._new_condition:
            ok = self.save_condition()
            if not ok:
                return False
        if self.task_dirty():
            ok = self.save_task()
        return ok

    def save_task(self) -> bool:
        from ... import jobs

        v = self._form_values()
        try:
            if not v["description"].strip():
                raise UserError("Description: enter a description for the task")
            if v["company"] is None:
                raise UserError("Company accounts: choose the company the task runs in")
            if v["class_name"] is None:
                raise UserError("Class name: choose the process the task runs")
            if not v["max_retries"].isdigit() or int(v["max_retries"]) > 5:
                raise UserError(f"Maximum retries: enter 0 to 5, not {v['max_retries']!r}")
            params = self._params_for_save(v["params"])
            fields = dict(description=v["description"], company=v["company"], class_name=v["class_name"],
                          params=params, batch_group=v["batch_group"], ignore_failure=v["ignore_failure"],
                          max_retries=int(v["max_retries"]), condition_type=v["condition_type"])
            if self._new:
                task = jobs.add_task(self.job_id, actor=self.actor, **fields)
            else:
                task = jobs.update_task(self.task_id, actor=self.actor, version=self.task_version, **fields)
        except UserError as exc:
            self.show_message(str(exc))
            param = getattr(exc, "param", None)
            if param:
                self.query_one(TabbedContent).active = "parameters"
            return False
        except DB_ERRORS as exc:  # the database is away: the form keeps what was typed
            self.db_refused(exc)
            return False
        self._new = False
        task_id = getattr(task, "id", task)
        self.grid.reload(keep_key=False)
        self.grid.move_to_key(task_id)
        self._load_record(task_id)
        self.show_message(f"Saved task {task_id}.", "note")
        return True

    def save_condition(self) -> bool:
        from ... import jobs

        parent = self._select_value("#cond-parent")
        expected = self._select_value("#cond-expected") or "ended"
        try:
            if parent is None:
                raise UserError("Parent task ID: choose the task this one waits for")
            jobs.add_condition(self.task_id, actor=self.actor, parent_id=parent, expected=expected)
        except UserError as exc:
            self.show_message(str(exc))
            return False
        except DB_ERRORS as exc:
            self.db_refused(exc, "Condition not saved")
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
        self.save()

    def action_refresh(self) -> None:
        self._load_lists()
        self.grid.reload(keep_key=True)
        if not self.is_dirty():
            self._load_record(self.grid.cursor_key)

    def action_delete(self) -> None:
        from ... import jobs
        from ..dialogs.confirm import ConfirmDialog

        if self._in_conditions():
            if self._new_condition:
                self._close_new_condition()
                self.show_message(None)
                return
            cond = self.conditions_grid.cursor_key
            if cond is None:
                return

            def answered(answer) -> None:
                if answer != "delete":
                    return
                try:
                    jobs.delete_condition(cond, actor=self.actor)
                except UserError as exc:
                    self.show_message(str(exc))
                    return
                except DB_ERRORS as exc:
                    self.db_refused(exc, "Not deleted")
                    return
                self.conditions_grid.reload(keep_key=False)
                self.show_message("Condition deleted.", "note")

            self.app.push_screen(ConfirmDialog("Delete", "Delete this condition?",
                                               [("delete", "Delete"), ("cancel", "Cancel")], default="cancel"),
                                 answered)
            return
        if self._new:
            self._new = False
            self._load_record(self.grid.cursor_key)
            self.grid.focus()
            return
        task_id = self.task_id
        if task_id is None:
            return

        def answered_task(answer) -> None:
            if answer != "delete":
                return
            try:
                jobs.delete_task(task_id, actor=self.actor)
            except UserError as exc:
                self.show_message(str(exc))
                return
            except DB_ERRORS as exc:
                self.db_refused(exc, "Not deleted")
                return
            self._loaded = None
            self.grid.reload(keep_key=False)
            self._load_record(self.grid.cursor_key)
            self.show_message(f"Deleted task {task_id}.", "note")

        self.app.push_screen(ConfirmDialog("Delete", f"Delete task {task_id} and the conditions on it?",
                                           [("delete", "Delete"), ("cancel", "Cancel")], default="cancel"),
                             answered_task)

    def action_back(self) -> None:
        if self._new_condition:
            self._close_new_condition()
            self.show_message(None)
            self.conditions_grid.focus()
            return
        if self.is_dirty():
            self._ask_unsaved(then=self._leave, stay=lambda: None)
            return
        if self.focused is not self.grid:
            self.grid.focus()
            return
        self._leave()

    def _leave(self) -> None:
        self._new = False
        self._loaded = None
        self.app.pop_screen()

    def _ask_unsaved(self, then, stay) -> None:
        from ..dialogs.confirm import ConfirmDialog

        what = "The new task" if self._new else f"Task {self.task_id}"

        def answered(answer) -> None:
            if answer == "save":
                if self.save():
                    then()
                else:
                    stay()
            elif answer == "discard":
                self._new = False
                self._close_new_condition()
                self._loaded = None
                then()
            else:
                stay()

        self.app.push_screen(ConfirmDialog(
            "Unsaved changes", f"{what} has changes that are not saved.",
            [("save", "Save"), ("discard", "Discard"), ("cancel", "Keep editing")], default="save"), answered)
