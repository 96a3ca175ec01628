"""Recurrence: Range and Pattern, a live preview of the next occurrences, OK / Cancel.

The dialog builds a recurrence spec (the job file's "recurrence" object),
validates it with the recurrence module as the operator types, and returns
it; the caller saves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Checkbox,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from ...errors import UserError
from ..format import wall
from ..outage import DB_ERRORS
from ..safe_text import safe, visible
from ..validation import DateText, TimeText, TimeZone, WholeNumber, failure
from .base import OkCancelDialog

PATTERNS = [("Minutes", "minutes"), ("Hours", "hours"), ("Days", "days"), ("Weeks", "weeks"),
            ("Months", "months"), ("Years", "years")]
UNITS = {"minutes": "minute(s)", "hours": "hour(s)", "days": "day(s)", "weeks": "week(s)",
         "months": "month(s)", "years": "year(s)"}
WEEKDAYS = [("Monday", "mon"), ("Tuesday", "tue"), ("Wednesday", "wed"), ("Thursday", "thu"),
            ("Friday", "fri"), ("Saturday", "sat"), ("Sunday", "sun")]
NTHS = [("first", "first"), ("second", "second"), ("third", "third"), ("fourth", "fourth"), ("last", "last")]
CLOSED_DAY = [("skip it", "skip"), ("next open day", "next_open_day")]
# What the date, time and number fields accept as typed: anything else (a "?" for help) is
# refused and leaves the text as it was, selected or not.
DATE_CHARS = r"[0-9-]*"
TIME_CHARS = r"[0-9:]*"
DIGITS = r"[0-9]*"
MONTHS = [(name, i + 1) for i, name in enumerate(
    ["January", "February", "March", "April", "May", "June", "July", "August", "September",
     "October", "November", "December"])]


@dataclass
class RecurrenceResult:
    spec: dict | None  # None: no recurrence (removed)
    time_zone: str


class RecurrenceDialog(OkCancelDialog[RecurrenceResult | None]):
    EXTRA_BUTTONS = (("Remove recurrence", "remove"),)

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="recurrence.cancel"),
        Binding("ctrl+s,f10", "ok", "OK", id="recurrence.ok"),
    ]
    HELP_TITLE = "Recurrence"
    HELP_EXTRA = [
        ("Start date / time", "The first run, in the time zone beside it (YYYY-MM-DD, HH:MM)"),
        ("End", "No end date, End after a number of runs, or End by a date; typing a count or a "
                "date chooses that option"),
        ("Pattern", "Minutes, Hours, Days, Weeks (on the days ticked), Months or Years, every N"),
        ("Preview", "The next runs as they will be, with the zone's abbreviation"),
        ("Remove recurrence", "The job runs once"),
    ]

    def __init__(self, spec: dict | None, scheduled_start, time_zone: str, *, preview_count: int = 8) -> None:
        super().__init__()
        self.spec = dict(spec or {})
        self.scheduled_start = scheduled_start
        self.time_zone = time_zone
        self.preview_count = preview_count
        self.valid_spec: dict | None = None
        self._calendar_days: dict[str, Any] = {}  # calendar name -> its closed days, read once per dialog

    def _calendar_options(self) -> list[tuple[str, str]]:
        from ...calendars import calendar_names

        try:
            names = calendar_names()
        except DB_ERRORS:
            # The database is away (the dialog reopens with what was typed during an outage):
            # the calendar already named stays choosable; the others come back with the database.
            names = []
        named = self.spec.get("calendar")
        if isinstance(named, str) and named and named not in names:
            names.append(named)  # gone since (by hand): shown, and the preview says so
        return [("(none)", "")] + [(n, n) for n in names]

    def _closed_days(self, name: str) -> Any:
        if name not in self._calendar_days:
            from ...calendars import closed_days

            self._calendar_days[name] = closed_days(name)
        return self._calendar_days[name]

    def _initial(self) -> dict:
        spec = self.spec
        start_text = spec.get("start")
        if start_text:
            try:
                dt = datetime.fromisoformat(str(start_text))
                if dt.tzinfo is not None:
                    start_text = wall(dt, self.time_zone, "%Y-%m-%d %H:%M")
                else:
                    start_text = dt.strftime("%Y-%m-%d %H:%M")
            except ValueError:
                pass
        else:
            start_text = wall(self.scheduled_start, self.time_zone, "%Y-%m-%d %H:%M")
        date, _, time = (start_text or "").partition(" ")
        end = spec.get("end") or {"never": True}
        return {"date": date, "time": time, "end": end}

    def compose(self) -> ComposeResult:
        spec = self.spec
        init = self._initial()
        pattern = spec.get("pattern", "days")
        end = init["end"]
        end_kind = "after" if "after" in end else "by" if "by" in end else "never"
        with Vertical(classes="dialog recurrence-dialog"):
            yield Label("Recurrence", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Label("Range", classes="group-title")
                with Horizontal(classes="form-row"):
                    yield Label("Start date", classes="field-label")
                    yield Input(init["date"], id="rec-date", placeholder="YYYY-MM-DD", compact=True,
                                classes="date-input", validators=[DateText("Start date")], restrict=DATE_CHARS)
                    yield Label("Start time", classes="field-label-short")
                    yield Input(init["time"], id="rec-time", placeholder="HH:MM", compact=True, classes="time-input",
                                validators=[TimeText("Start time")], valid_empty=True, restrict=TIME_CHARS)
                with Horizontal(classes="form-row"):
                    # A row of its own: a zone name (America/Argentina/Buenos_Aires) is long.
                    yield Label("Time zone", classes="field-label")
                    yield Input(self.time_zone, id="rec-tz", compact=True, classes="zone-input",
                                validators=[TimeZone("Time zone")])
                with Horizontal(classes="end-row"):
                    with RadioSet(id="rec-end", compact=True):
                        yield RadioButton("No end date", value=end_kind == "never", id="end-never", compact=True)
                        yield RadioButton("End after", value=end_kind == "after", id="end-after", compact=True)
                        yield RadioButton("End by", value=end_kind == "by", id="end-by", compact=True)
                    with Vertical(classes="end-values"):
                        yield Label("")
                        with Horizontal(classes="form-row"):
                            yield Input(str(end.get("after", "10")), id="rec-after", compact=True,
                                        classes="count-input", validators=[WholeNumber("End after", minimum=1)],
                                        restrict=DIGITS)
                            yield Label("occurrences")
                        yield Input(str(end.get("by", "")), id="rec-by", placeholder="YYYY-MM-DD", compact=True,
                                    classes="date-input", validators=[DateText("End by")], valid_empty=True,
                                    restrict=DATE_CHARS)
                yield Label("Pattern", classes="group-title")
                with Horizontal(classes="form-row"):
                    yield Label("Pattern", classes="field-label")
                    yield Select(PATTERNS, value=pattern, allow_blank=False, id="rec-pattern", compact=True)
                    yield Label("Every", classes="field-label-short")
                    yield Input(str(spec.get("every", 1)), id="rec-every", compact=True, classes="count-input",
                                validators=[WholeNumber("Every", minimum=1)], restrict=DIGITS)
                    yield Label(UNITS.get(pattern, ""), id="rec-unit")
                with Horizontal(classes="form-row", id="rec-weekdays"):
                    # A short label: the seven days, Sunday too, fit in 80 columns.
                    yield Label("On", classes="field-label-short")
                    chosen = set(spec.get("weekdays", []))
                    for label, key in WEEKDAYS:
                        yield Checkbox(label[:3], value=key in chosen, id=f"wd-{key}", compact=True)
                with Horizontal(classes="form-row", id="rec-month-mode"):
                    yield Label("On", classes="field-label")
                    mode = "nth" if "nth" in spec else "day"
                    yield Select([("Day of the month", "day"), ("Weekday of the month", "nth")], value=mode,
                                 allow_blank=False, id="rec-mode", compact=True)
                    yield Label("Day", classes="field-label-short", id="rec-day-label")
                    yield Input(str(spec.get("day", 1)), id="rec-day", compact=True, classes="count-input",
                                validators=[WholeNumber("Day", minimum=1, maximum=31)], restrict=DIGITS)
                    yield Select(NTHS, value=spec.get("nth", "first"), allow_blank=False, id="rec-nth", compact=True)
                    yield Select(WEEKDAYS, value=spec.get("weekday", "mon"), allow_blank=False, id="rec-weekday",
                                 compact=True)
                with Horizontal(classes="form-row", id="rec-year-month"):
                    yield Label("Month", classes="field-label")
                    yield Select(MONTHS, value=int(spec.get("month", 1)), allow_blank=False, id="rec-month",
                                 compact=True)
                with Horizontal(classes="form-row", id="rec-calendar-row"):
                    yield Label("Calendar", classes="field-label")
                    yield Select(self._calendar_options(), value=spec.get("calendar") or "", allow_blank=False,
                                 id="rec-calendar", compact=True)
                    yield Label("On a closed day", classes="field-label-short", id="rec-closed-label")
                    yield Select(CLOSED_DAY, value=spec.get("on_closed_day") or "skip", allow_blank=False,
                                 id="rec-closed", compact=True)
                yield Label("Preview", classes="group-title")
                yield Static("", id="rec-sentence")
                yield Static("", id="rec-warning", classes="warning")
                yield Static("", id="rec-preview")
                yield Static("", id="rec-error", classes="error-line")
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self._fit()
        self._show_pattern_options()
        self._update()
        self.query_one("#rec-date", Input).focus()

    # -- building the spec ----------------------------------------------------

    def _value(self, wid: str) -> Any:
        widget = self.query_one(wid)
        return widget.value if isinstance(widget, (Input, Select)) else None

    def _checked(self, wid: str, field: str) -> str:
        """The text of Input wid; _FieldError with its validators' message when they refuse it."""
        found = failure(self.query_one(wid, Input))
        if found is not None:
            raise _FieldError(field, found)
        return str(self._value(wid)).strip()

    def build(self) -> tuple[dict, str]:
        """The spec from the fields; _FieldError(field, message) for what cannot be read."""
        pattern = self._value("#rec-pattern")
        tz = self._checked("#rec-tz", "time_zone")
        date = self._checked("#rec-date", "start")
        time = self._checked("#rec-time", "start") or "00:00"
        try:
            start = datetime.fromisoformat(f"{date}T{time}")
        except ValueError:
            raise _FieldError("start", f"Start date/time: {date} {time} is not a date (YYYY-MM-DD) "
                                       "and time (HH:MM)") from None
        every = int(self._checked("#rec-every", "every"))
        spec: dict = {"pattern": pattern, "every": every, "start": start.isoformat()}
        end = self.query_one("#rec-end", RadioSet).pressed_button
        end_id = end.id if end is not None else "end-never"
        if end_id == "end-after":
            spec["end"] = {"after": int(self._checked("#rec-after", "end"))}
        elif end_id == "end-by":
            by = self._checked("#rec-by", "end")
            if not by:
                raise _FieldError("end", "End by: enter a date (YYYY-MM-DD)")
            spec["end"] = {"by": by}
        else:
            spec["end"] = {"never": True}
        if pattern == "weeks":
            days = [key for _, key in WEEKDAYS if self.query_one(f"#wd-{key}", Checkbox).value]
            if not days:
                raise _FieldError("weekdays", "Weeks: choose at least one day of the week")
            spec["weekdays"] = days
        if pattern in ("months", "years"):
            if self._value("#rec-mode") == "day":
                spec["day"] = int(self._checked("#rec-day", "day"))
            else:
                spec["nth"] = self._value("#rec-nth")
                spec["weekday"] = self._value("#rec-weekday")
        if pattern == "years":
            spec["month"] = int(self._value("#rec-month"))
        calendar = self._value("#rec-calendar")
        if calendar:
            spec["calendar"] = calendar
            spec["on_closed_day"] = self._value("#rec-closed")
        return spec, tz

    def _update(self) -> None:
        """Validate and preview as the operator types."""
        error = self.query_one("#rec-error", Static)
        preview = self.query_one("#rec-preview", Static)
        sentence = self.query_one("#rec-sentence", Static)
        warning = self.query_one("#rec-warning", Static)
        self.valid_spec = None
        try:
            spec, tz = self.build()
        except _FieldError as exc:
            error.update(safe(exc.message))
            preview.update("")
            sentence.update("")
            warning.update("")
            return
        try:
            from ... import recurrence
        except ImportError:
            self.valid_spec = spec
            error.update("")
            sentence.update("(the recurrence module is not available: no preview)")
            return
        try:
            from ...timeutil import check_zone

            check_zone(tz)
            normalized = recurrence.normalize(spec, default_start=spec["start"], time_zone=tz)
            try:
                closed = self._closed_days(spec["calendar"]) if spec.get("calendar") else None
            except DB_ERRORS:
                self.valid_spec = spec
                error.update("")
                sentence.update("")
                warning.update("")
                preview.update("(the database is not available: no preview of the calendar's closed days)")
                return
            occurrences = recurrence.occurrences(normalized, tz, count=self.preview_count, closed=closed)
            moved = self._moved(recurrence, normalized, tz, occurrences)
            text = recurrence.describe(normalized)
            warn = recurrence.warning(normalized)
        except UserError as exc:  # RecurrenceError, or an unknown zone: the field and why
            error.update(safe(str(exc)))
            preview.update("")
            sentence.update("")
            warning.update("")
            return
        self.valid_spec = spec
        error.update("")
        sentence.update(safe(text))
        warning.update(safe(warn or ""))
        if occurrences:
            lines = [o.strftime("%a %Y-%m-%d %H:%M %Z") + (" (moved: closed day)" if o in moved else "")
                     for o in occurrences]
            preview.update(safe("Next: " + "\n      ".join(lines), keep_newlines=True))
        else:
            preview.update("No occurrences.")

    def _moved(self, recurrence: Any, normalized: dict, tz: str, found: list) -> set:
        """The previewed occurrences a closed day moved (not occurrences of the pattern itself)."""
        if normalized.get("on_closed_day") != "next_open_day" or not found:
            return set()
        plain = {k: v for k, v in normalized.items() if k not in ("calendar", "on_closed_day")}
        pattern = recurrence.occurrences(plain, tz, count=400)
        if not pattern:
            return set()
        last = pattern[-1].timestamp()
        own = {o.timestamp() for o in pattern}
        return {o for o in found if o.timestamp() <= last and o.timestamp() not in own}

    def _show_pattern_options(self) -> None:
        pattern = self._value("#rec-pattern")
        self.query_one("#rec-unit", Label).update(UNITS.get(pattern, ""))
        self.query_one("#rec-weekdays").display = pattern == "weeks"
        self.query_one("#rec-month-mode").display = pattern in ("months", "years")
        self.query_one("#rec-year-month").display = pattern == "years"
        by_day = self._value("#rec-mode") == "day"
        self.query_one("#rec-day").display = by_day
        self.query_one("#rec-day-label").display = by_day
        self.query_one("#rec-nth").display = not by_day
        self.query_one("#rec-weekday").display = not by_day
        self.query_one("#rec-closed").display = bool(self._value("#rec-calendar"))
        self.query_one("#rec-closed-label").display = bool(self._value("#rec-calendar"))

    #: A field that belongs to one option of a choice: typing into it chooses that option.
    FIELD_OPTIONS = {"rec-after": "#end-after", "rec-by": "#end-by"}

    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(RadioSet.Changed)
    def _changed(self, event: Input.Changed | Checkbox.Changed | RadioSet.Changed) -> None:
        if not self.is_mounted:
            return
        if isinstance(event, Input.Changed) and event.input.has_focus:
            option = self.FIELD_OPTIONS.get(event.input.id or "")
            if option is not None:
                button = self.query_one(option, RadioButton)
                if not button.value:
                    button.value = True  # the RadioSet unpresses the others (and posts Changed)
        self._update()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """The body scrolls, the title and the buttons stay: on a 24-line terminal OK and Cancel
        stay in view whatever the preview and its warnings take."""
        body = self.query_one(".dialog-body")
        body.styles.max_height = max(4, min(30, self.app.size.height - 6))

    @on(Select.Changed)
    def _select_changed(self) -> None:
        if self.is_mounted:
            self._show_pattern_options()
            self._update()

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_ok()

    def on_extra_button(self, button_id: str) -> None:
        if button_id == "remove":
            self.dismiss(RecurrenceResult(None, self._value("#rec-tz").strip()))

    def action_ok(self) -> None:
        self._update()
        if self.valid_spec is None:
            self.query_one("#rec-error", Static).add_class("-shake")
            return
        self.dismiss(RecurrenceResult(self.valid_spec, self._value("#rec-tz").strip()))


class _FieldError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


__all__ = ["RecurrenceDialog", "RecurrenceResult", "visible"]
