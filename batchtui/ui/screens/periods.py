"""Active periods for batch jobs (System administration > Setup > Active periods for batch jobs).

A list of periods and the record form of the one under the cursor. A job
that names a period starts a run only while it is open (its time zone's
clock); the job form's Active period field names it.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label

from ...errors import UserError
from ...periods import add_period, delete_period, period_rows
from ..guard import guarded
from ..safe_text import one_line
from ..widgets.footer import Footer
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import Breadcrumb, MessageLine
from .record_form import KeyedRecordForm, record_bindings

PERIOD_COLUMNS = [
    Column("name", "Active period", 16),
    Column("from", "From", 5),
    Column("to", "To", 5),
    Column("days", "Days", 14, flex=True),
    Column("start", "Start date", 10),
    Column("end", "End date", 10),
    Column("jobs", "Jobs", 5, align="right"),
    Column("description", "Description", 16, flex=True),
]

FIELDS = ("#period-name", "#period-description", "#period-from", "#period-to", "#period-days",
          "#period-start-date", "#period-end-date")


class ActivePeriodsScreen(KeyedRecordForm):
    HELP_TITLE = "Active periods for batch jobs"
    RECORD = "active period"
    BINDINGS = [
        *record_bindings("periods"),
        Binding("enter", "edit", "Edit", show=False, id="periods.edit"),
        Binding("question_mark", "app.help", "Help", show=False, id="periods.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = "Active periods for batch jobs"
        self.period: str | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb("System administration > Setup > Active periods for batch jobs", id="breadcrumb")
        yield PagedGrid(PERIOD_COLUMNS, CallableSource(self._rows), empty_text="No active period yet: Ctrl+N adds one.",
                        id="periods-grid")
        with Vertical(classes="record-form", id="period-form"):
            with Horizontal(classes="form-row"):
                yield Label("Active period", classes="field-label")
                yield Input(id="period-name", compact=True, max_length=40)
            with Horizontal(classes="form-row"):
                yield Label("Description", classes="field-label")
                yield Input(id="period-description", compact=True, max_length=200)
            with Horizontal(classes="form-row"):
                yield Label("From", classes="field-label")
                yield Input(id="period-from", placeholder="HH:MM", compact=True, classes="time-input")
                yield Label("To", classes="field-label-short")
                yield Input(id="period-to", placeholder="HH:MM", compact=True, classes="time-input")
                yield Label("Days", classes="field-label-short")
                yield Input(id="period-days", placeholder="mon,tue,... (empty: every day)", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Start date", classes="field-label")
                yield Input(id="period-start-date", placeholder="YYYY-MM-DD", compact=True, classes="date-input")
                yield Label("End date", classes="field-label-short")
                yield Input(id="period-end-date", placeholder="YYYY-MM-DD", compact=True, classes="date-input")
            yield Label("In the job's time zone; To before From wraps past midnight.", classes="dim")
            yield MessageLine("", id="period-message")
        yield Footer()

    def _rows(self) -> list[GridRow]:
        return [GridRow(r["name"], [one_line(r["name"]), r["from"], r["to"],
                                    ", ".join(d.capitalize() for d in r["days"]) or "Every day",
                                    r["start_date"] or "", r["end_date"] or "", str(r["jobs"]),
                                    one_line(r["description"])])
                for r in period_rows()]

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#periods-grid", PagedGrid)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#period-message", MessageLine).display = False
        self.grid.focus()
        self.load_record(self.grid.cursor_key)

    def record_name(self) -> str:
        return "The new active period" if self._new else f"Active period {self.period}"

    def form_values(self) -> tuple[str, ...]:
        return tuple(self.query_one(w, Input).value for w in FIELDS)

    def _fill(self, values: tuple[str, ...]) -> None:
        for wid, value in zip(FIELDS, values, strict=True):
            self.query_one(wid, Input).value = value

    def load_record(self, name: Any) -> None:
        self._new = False
        self.period = name
        row = next((r for r in period_rows() if r["name"] == name), None)
        values: tuple[str, ...] = ("",) * len(FIELDS) if row is None else (
            row["name"], row["description"], row["from"], row["to"], ",".join(row["days"]),
            row["start_date"] or "", row["end_date"] or "")
        self._fill(values)
        self.query_one("#period-name", Input).disabled = True
        self.query_one("#period-form").disabled = row is None
        self._loaded = values if row is not None else None

    @property
    def current_key(self) -> Any:
        return self.period

    def action_new(self) -> None:
        self.new_record(self._start_new)

    def _start_new(self) -> None:
        self._new = True
        self.period = None
        self.query_one("#period-form").disabled = False
        self._fill(("", "", "22:00", "06:00", "", "", ""))
        name = self.query_one("#period-name", Input)
        name.disabled = False
        self.show_message("New active period: name, from, to (and days, dates); Ctrl+S saves.", "note")
        name.focus()

    def action_edit(self) -> None:
        self.follow_cursor()
        self.query_one("#period-from", Input).focus()

    def save(self) -> bool:
        name, description, start, end, days, start_date, end_date = self.form_values()
        try:
            add_period(name, actor=self.actor, start=start, end=end, days=days, start_date=start_date or None,
                       end_date=end_date or None, description=description, replace=not self._new)
        except UserError as exc:
            self.show_message(str(exc))
            return False
        self.show_saved(name, f"Saved active period {name}.")
        return True

    @guarded
    def action_delete(self) -> None:
        if self.drop_new():
            return
        self.follow_cursor()
        name = self.period
        if name is None:
            return
        self.confirm_and_delete(f"active period {name}", lambda: delete_period(name, actor=self.actor))
