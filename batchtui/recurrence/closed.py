"""Closed days: a recurrence that names a calendar skips its closed days or moves to the next open one.

A calendar (calendars.py keeps them in the database) is handed in as a
``ClosedDays``: a predicate on dates in the job's zone. An occurrence whose
wall date is closed is either skipped (``"on_closed_day": "skip"``) or moved
to the next open day at the same wall time in the job's zone
(``"next_open_day"``; a wall time that does not exist that day is placed as
every other occurrence is, by ``timeutil.resolve_wall``). Occurrences that
land on the same instant run once.

Closed stretches are searched at most ``HORIZON_DAYS`` days: a recurrence
whose occurrences all fall on closed days for that long is over (the engine
then treats it as ended; a job file naming such a calendar is refused).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta, tzinfo

from .occurrence import iter_utc, utc_to_wall, wall_to_utc
from .rule import Rule

HORIZON_DAYS = 732
POLICIES = ("skip", "next_open_day")
_TICK = timedelta(microseconds=1)

_HOLIDAYS: dict[tuple[str, str | None], object] = {}
_HOLIDAYS_LOCK = threading.Lock()
# A holidays object fills in a year on first use and is shared by every ClosedDays of its country:
# one look-up at a time, across threads (the console and its embedded batch server).
_LOOKUP_LOCK = threading.Lock()


def public_holidays(country: str, subdiv: str | None = None):
    """The holidays package's calendar of a country (and subdivision); raises ValueError for bad codes.

    One object per (country, subdivision) for the process: it fills in a year when first asked.
    """
    key = (country, subdiv)
    with _HOLIDAYS_LOCK:
        found = _HOLIDAYS.get(key)
        if found is None:
            import holidays

            supported = holidays.list_supported_countries()
            if country not in supported:
                known = ", ".join(c for c in sorted(supported) if len(c) == 2)
                raise ValueError(f"unknown country code {country!r} (ISO 3166-1 alpha-2: {known})")
            if subdiv is not None and subdiv not in supported[country]:
                subdivs = supported[country]
                shown = ", ".join(subdivs[:30]) + (", ..." if len(subdivs) > 30 else "")
                raise ValueError(f"unknown subdivision {subdiv!r} of {country}"
                                 + (f" (subdivisions: {shown})" if shown else " (it has none)"))
            try:
                found = holidays.country_holidays(country, subdiv=subdiv)
            except (NotImplementedError, ValueError) as exc:
                raise ValueError(f"public holidays of {country}: {exc}") from None
            _HOLIDAYS[key] = found
        return found


class ClosedDays:
    """Whether a date (in the job's zone) is closed: a listed date, a weekend, a public holiday."""

    def __init__(self, dates: Iterable[date] = (), weekends: bool = False, country: str | None = None,
                 subdiv: str | None = None) -> None:
        self.dates = frozenset(dates)
        self.weekends = weekends
        self.holidays = public_holidays(country, subdiv) if country else None

    def __call__(self, day: date) -> bool:
        if self.weekends and day.weekday() >= 5:
            return True
        if day in self.dates:
            return True
        if self.holidays is None:
            return False
        with _LOOKUP_LOCK:
            return day in self.holidays

    def next_open(self, day: date) -> date | None:
        """The first open day after `day`, or None within HORIZON_DAYS."""
        for n in range(1, HORIZON_DAYS + 1):
            candidate = day + timedelta(days=n)
            if not self(candidate):
                return candidate
        return None


ClosedPredicate = Callable[[date], bool]


def _next_open(closed: ClosedPredicate, day: date) -> date | None:
    method = getattr(closed, "next_open", None)
    if method is not None:
        return method(day)
    for n in range(1, HORIZON_DAYS + 1):
        if not closed(day + timedelta(days=n)):
            return day + timedelta(days=n)
    return None


def _lower_bound(rule: Rule, tz: tzinfo, after: datetime, closed: ClosedPredicate) -> datetime:
    """Where to read occurrences from so that one moved from a closed day before `after` to after it is seen:
    the start of the closed stretch that `after` is in, or that ends the day before it."""
    try:
        day = utc_to_wall(after, tz).date()
        first = None
        probe = day if closed(day) else day - timedelta(days=1)
        for _ in range(HORIZON_DAYS):
            if not closed(probe):
                break
            first = probe
            probe -= timedelta(days=1)
        if first is None:
            return after
        return min(after, wall_to_utc(datetime.combine(first, time()), tz) - _TICK)
    except OverflowError:  # at the ends of the calendar
        return after


def iter_open(rule: Rule, tz: tzinfo, after: datetime | None, closed: ClosedPredicate,
              move: bool) -> Iterator[datetime]:
    """Occurrences as naive UTC, strictly increasing, strictly after `after`, none on a closed day."""
    cursor = after if after is None or not move else _lower_bound(rule, tz, after, closed)
    pending: list[datetime] = []  # moved occurrences, a heap
    last = after
    anchor = after  # the latest occurrence given (or `after`): the horizon counts from it

    def due(at: datetime | None) -> Iterator[datetime]:
        nonlocal last, anchor
        while pending and (at is None or pending[0] <= at):
            moved = heapq.heappop(pending)
            if last is None or moved > last:
                last = anchor = moved
                yield moved

    try:
        while True:
            restart = None
            for at in iter_utc(rule, tz, cursor):
                yield from due(at)
                if anchor is None:
                    anchor = at
                if at - anchor > timedelta(days=HORIZON_DAYS):
                    break  # closed for longer than the horizon: the recurrence is over
                wall = utc_to_wall(at, tz)
                if not closed(wall.date()):
                    if last is None or at > last:
                        last = anchor = at
                        yield at
                    continue
                open_day = _next_open(closed, wall.date())
                if open_day is None:
                    break
                if move:
                    heapq.heappush(pending, wall_to_utc(datetime.combine(open_day, wall.time()), tz))
                    continue
                restart = wall_to_utc(datetime.combine(open_day, time()), tz) - _TICK
                break
            if restart is None:
                yield from due(None)
                return
            cursor = restart
    except OverflowError:
        yield from due(None)
        return
