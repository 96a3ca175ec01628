"""The ERP's scheduling controls as pure rules: active periods and server schedules.

No database here: the engine, the services and the screens all ask these
functions, so "is the period open", "when does it open next" and "how many
threads does this server run now" have one answer each.

- An active period (System administration > Setup > Active periods for batch
  jobs) is a window of time of day, ``start`` to ``end`` in the job's time
  zone, that opens on the listed weekdays (every day when none are listed)
  between ``start_date`` and ``end_date`` (inclusive, either may be open).
  A window whose end is before its start wraps past midnight: 22:00-06:00
  opened on Friday covers Saturday 00:00-06:00 too. A window whose end is its
  start is open the whole day. The start is inside, the end is not.
- A server schedule is a list of ``HH:MM-HH:MM=THREADS`` windows in the
  server machine's time zone; inside one the server runs at most THREADS
  tasks (0: none start). Outside every window, its thread count applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_THREADS = 256

#: How far ahead next_open looks before it gives up (a period whose end date has passed).
LOOK_AHEAD_DAYS = 400


class ControlError(ValueError):
    """Bad input for a control; the message names the field and what is wrong."""


# -- times of day ----------------------------------------------------------------------


def parse_hhmm(text: str, field: str = "time") -> time:
    """'HH:MM' (00:00 to 23:59, or 24:00 for the end of the day) as a time of day."""
    text = str(text).strip()
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() and 1 <= len(p) <= 2 for p in parts):
        raise ControlError(f"{field}: {text!r} is not a time HH:MM")
    hour, minute = int(parts[0]), int(parts[1])
    if hour == 24 and minute == 0:
        return time(0, 0)
    if hour > 23 or minute > 59:
        raise ControlError(f"{field}: {text!r} is not a time of day (00:00 to 23:59)")
    return time(hour, minute)


def hhmm(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _covers(start: time, end: time, moment: time, opened_today: bool) -> bool:
    """Whether a window start-end covers moment, on the day it opened or the day after."""
    s, e, t = _minutes(start), _minutes(end), moment.hour * 60 + moment.minute + moment.second / 60
    if s == e:  # the whole day
        return opened_today
    if s < e:
        return opened_today and s <= t < e
    return s <= t if opened_today else t < e


# -- active periods ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """An active period: when a job that names it may start a run."""

    name: str
    start: time
    end: time
    weekdays: tuple[str, ...] = ()  # empty: every day
    start_date: date | None = None
    end_date: date | None = None

    def opens_on(self, day: date) -> bool:
        if self.weekdays and WEEKDAYS[day.weekday()] not in self.weekdays:
            return False
        if self.start_date is not None and day < self.start_date:
            return False
        return not (self.end_date is not None and day > self.end_date)

    def is_open(self, moment: datetime, tz_name: str) -> bool:
        """Whether the period is open at moment (naive UTC) in the time zone tz_name."""
        local = moment.replace(tzinfo=UTC).astimezone(ZoneInfo(tz_name))
        today, now = local.date(), local.time()
        if self.opens_on(today) and _covers(self.start, self.end, now, True):
            return True
        yesterday = today - timedelta(days=1)
        return self.opens_on(yesterday) and _covers(self.start, self.end, now, False)

    def next_open(self, after: datetime, tz_name: str) -> datetime | None:
        """The first instant at or after `after` (naive UTC) when the period is open; None: never again."""
        if self.is_open(after, tz_name):
            return after
        tz = ZoneInfo(tz_name)
        day = after.replace(tzinfo=UTC).astimezone(tz).date()
        for i in range(LOOK_AHEAD_DAYS):
            d = day + timedelta(days=i)
            if self.end_date is not None and d > self.end_date:
                return None
            if not self.opens_on(d):
                continue
            opening = _utc(datetime.combine(d, self.start), tz)
            if opening >= after:
                return opening
        return None

    @property
    def text(self) -> str:
        """The period as a sentence, e.g. '22:00-06:00 Mon, Fri from 2026-01-01'."""
        out = f"{hhmm(self.start)}-{hhmm(self.end)}"
        out += " " + (", ".join(d.capitalize() for d in self.weekdays) if self.weekdays else "every day")
        if self.start_date:
            out += f" from {self.start_date.isoformat()}"
        if self.end_date:
            out += f" until {self.end_date.isoformat()}"
        return out


def _utc(wall: datetime, tz: ZoneInfo) -> datetime:
    from .timeutil import to_utc

    return to_utc(wall, tz)


def parse_weekdays(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """'mon,tue' (or a list) as weekday names in week order; empty: every day."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    days = set()
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in WEEKDAYS:
            raise ControlError(f"days: {name!r} is not a weekday ({', '.join(WEEKDAYS)})")
        days.add(name)
    return tuple(d for d in WEEKDAYS if d in days)


def parse_date(text: str | None, field: str) -> date | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise ControlError(f"{field}: {text!r} is not a date YYYY-MM-DD") from None


def make_period(name: str, start: str, end: str, days: str | Iterable[str] | None = None,
                start_date: str | None = None, end_date: str | None = None) -> Period:
    """An active period from the command line's or the form's text; ControlError when bad."""
    period = Period(name=name, start=parse_hhmm(start, "from"), end=parse_hhmm(end, "to"),
                    weekdays=parse_weekdays(days), start_date=parse_date(start_date, "start date"),
                    end_date=parse_date(end_date, "end date"))
    if period.start_date and period.end_date and period.end_date < period.start_date:
        raise ControlError(f"end date {period.end_date} is before start date {period.start_date}")
    return period


# -- server schedules ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A window of a server's schedule: from start to end (wrapping past midnight), at most threads tasks."""

    start: time
    end: time
    threads: int

    def covers(self, moment: time) -> bool:
        return _covers(self.start, self.end, moment, True) or (
            _minutes(self.start) > _minutes(self.end) and _covers(self.start, self.end, moment, False))

    @property
    def text(self) -> str:
        return f"{hhmm(self.start)}-{hhmm(self.end)}={self.threads}"


def parse_schedule(spec: str) -> tuple[Window, ...]:
    """'18:00-06:00=8,06:00-18:00=2' as windows; '' is no schedule. ControlError names the bad window."""
    windows = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        span, eq, count = part.partition("=")
        start, dash, end = span.partition("-")
        if not eq or not dash:
            raise ControlError(f"schedule: {part!r} is not a window HH:MM-HH:MM=THREADS")
        try:
            threads = int(count.strip())
        except ValueError:
            raise ControlError(f"schedule: {part!r}: {count.strip()!r} is not a whole number of threads") from None
        if threads < 0 or threads > MAX_THREADS:
            raise ControlError(f"schedule: {part!r}: threads must be 0 to {MAX_THREADS}, not {threads}")
        windows.append(Window(parse_hhmm(start, f"schedule {part!r}"), parse_hhmm(end, f"schedule {part!r}"),
                              threads))
    return tuple(windows)


def schedule_text(windows: Sequence[Window]) -> str:
    return ",".join(w.text for w in windows)


def schedule_from_json(value: Any) -> tuple[Window, ...]:
    """The stored form (a list of 'HH:MM-HH:MM=N' strings, or None)."""
    if not value:
        return ()
    if isinstance(value, str):
        return parse_schedule(value)
    return parse_schedule(",".join(str(v) for v in value))


def threads_now(threads: int, schedule: Sequence[Window], paused: bool, local_now: time) -> int:
    """How many tasks a server may run now: 0 when paused, else the first window that covers
    the time of day, else its thread count."""
    if paused:
        return 0
    for w in schedule:
        if w.covers(local_now):
            return w.threads
    return threads


def most_threads(threads: int, schedule: Sequence[Window]) -> int:
    """The most threads the server may ever run (the size of its worker pool)."""
    return max([threads, *(w.threads for w in schedule)])
