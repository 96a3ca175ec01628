"""Calendars of closed days (System administration > Setup > Calendars).

A list of calendars and the record form of the one under the cursor: closed
dates, weekends, the public holidays of a country (and subdivision). A job's
recurrence names a calendar in the Recurrence dialog; batch job managers
change calendars (calendars.py says why).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, Label

from ...calendars import add_calendar, calendar_rows, delete_calendar
from ...errors import UserError
from ..guard import guarded
from ..safe_text import one_line
from ..widgets.footer import Footer
from ..widgets.paged_grid import CallableSource, Column, GridRow, PagedGrid
from .base import Breadcrumb, MessageLine
from .record_form import KeyedRecordForm, record_bindings

CALENDAR_COLUMNS = [
    Column("name", "Calendar", 16),
    Column("weekends", "Weekends", 8),
    Column("country", "Holidays", 8),
    Column("dates", "Dates", 5, align="right"),
    Column("jobs", "Jobs", 5, align="right"),
    Column("description", "Description", 16, flex=True),
]

INPUTS = ("#calendar-name", "#calendar-description", "#calendar-country", "#calendar-subdiv", "#calendar-dates")


class CalendarsScreen(KeyedRecordForm):
    HELP_TITLE = "Calendars"
    RECORD = "calendar"
    BINDINGS = [
        *record_bindings("calendars"),
        Binding("enter", "edit", "Edit", show=False, id="calendars.edit"),
        Binding("question_mark", "app.help", "Help", show=False, id="calendars.help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.title = "Calendars"
        self.calendar: str | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb("System administration > Setup > Calendars", id="breadcrumb")
        yield PagedGrid(CALENDAR_COLUMNS, CallableSource(self._rows), empty_text="No calendar yet: Ctrl+N adds one.",
                        id="calendars-grid")
        with Vertical(classes="record-form", id="calendar-form"):
            with Horizontal(classes="form-row"):
                yield Label("Calendar", classes="field-label")
                yield Input(id="calendar-name", compact=True, max_length=40)
            with Horizontal(classes="form-row"):
                yield Label("Description", classes="field-label")
                yield Input(id="calendar-description", compact=True, max_length=200)
            with Horizontal(classes="form-row"):
                yield Label("Closed", classes="field-label")
                yield Checkbox("Weekends", id="calendar-weekends", compact=True)
                yield Label("Country", classes="field-label-short")
                yield Input(id="calendar-country", placeholder="US", compact=True, max_length=3,
                            classes="count-input")
                yield Label("Subdivision", classes="field-label-short")
                yield Input(id="calendar-subdiv", placeholder="TX", compact=True, max_length=16,
                            classes="count-input")
            with Horizontal(classes="form-row"):
                yield Label("Dates", classes="field-label")
                yield Input(id="calendar-dates", placeholder="YYYY-MM-DD,YYYY-MM-DD,...", compact=True)
            yield Label("Country: public holidays (holidays package). Managers only.", classes="dim")
            yield MessageLine("", id="calendar-message")
        yield Footer()

    def _rows(self) -> list[GridRow]:
        return [GridRow(r["name"], [one_line(r["name"]), "Yes" if r["weekends"] else "No",
                                    one_line((r["country"] or "") + (f"-{r['subdiv']}" if r["subdiv"] else "")),
                                    str(len(r["dates"])), str(len(r["jobs"])), one_line(r["description"])])
                for r in calendar_rows()]

    @property
    def grid(self) -> PagedGrid:
        return self.query_one("#calendars-grid", PagedGrid)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#calendar-message", MessageLine).display = False
        self.grid.focus()
        self.load_record(self.grid.cursor_key)

    def record_name(self) -> str:
        return "The new calendar" if self._new else f"Calendar {self.calendar}"

    def form_values(self) -> tuple[Any, ...]:
        return (*(self.query_one(w, Input).value for w in INPUTS),
                self.query_one("#calendar-weekends", Checkbox).value)

    def _fill(self, values: tuple[Any, ...]) -> None:
        for wid, value in zip(INPUTS, values[:-1], strict=True):
            self.query_one(wid, Input).value = value
        self.query_one("#calendar-weekends", Checkbox).value = bool(values[-1])

    def load_record(self, name: Any) -> None:
        self._new = False
        self.calendar = name
        row = next((r for r in calendar_rows() if r["name"] == name), None)
        values: tuple[Any, ...] = ("", "", "", "", "", False) if row is None else (
            row["name"], row["description"], row["country"] or "", row["subdiv"] or "", ",".join(row["dates"]),
            row["weekends"])
        self._fill(values)
        self.query_one("#calendar-name", Input).disabled = True
        self.query_one("#calendar-form").disabled = row is None
        self._loaded = values if row is not None else None

    @property
    def current_key(self) -> Any:
        return self.calendar

    def action_new(self) -> None:
        self.new_record(self._start_new)

    def _start_new(self) -> None:
        self._new = True
        self.calendar = None
        self.query_one("#calendar-form").disabled = False
        self._fill(("", "", "", "", "", True))
        name = self.query_one("#calendar-name", Input)
        name.disabled = False
        self.show_message("New calendar: name, weekends, country, dates; Ctrl+S saves.", "note")
        name.focus()

    def action_edit(self) -> None:
        self.follow_cursor()
        self.query_one("#calendar-description", Input).focus()

    def save(self) -> bool:
        name, description, country, subdiv, dates, weekends = self.form_values()
        try:
            add_calendar(name, actor=self.actor, dates=dates, weekends=weekends, country=country or None,
                         subdiv=subdiv or None, description=description, replace=not self._new)
        except UserError as exc:
            self.show_message(str(exc))
            return False
        self.show_saved(name, f"Saved calendar {name}.")
        return True

    @guarded
    def action_delete(self) -> None:
        if self.drop_new():
            return
        self.follow_cursor()
        name = self.calendar
        if name is None:
            return
        self.confirm_and_delete(f"calendar {name}", lambda: delete_calendar(name, actor=self.actor))
