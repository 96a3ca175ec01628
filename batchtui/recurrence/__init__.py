"""Recurrence patterns of batch jobs: validate, describe, and compute occurrences.

A recurrence is the JSON object of the job file (cli-contract.md, "Job file")
and of the Recurrence dialog (batch-framework.md, "Recurrence dialog")::

    {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri",
     "start": "2026-12-01T22:00:00", "end": {"after": 12}}
    {"rrule": "FREQ=WEEKLY;BYDAY=MO,WE", "start": "...", "end": {"never": true}}

``normalize`` validates one and returns its canonical form, which is what the
database stores and what every other function here reads. The canonical form
spells out every default (``every``, ``weekdays``, ``day``, ``month``, ``end``)
so that a stored recurrence means the same thing even if defaults change, and
so that ``describe`` can say everything without knowing the job.

Time zones and daylight saving follow Vixie cron, as the reference chooses:

* ``minutes`` and ``hours`` step in real elapsed time from the start instant,
  so an every-30-minutes job keeps its rhythm through both changes.
* ``days`` and longer (and ``rrule``) keep the wall-clock time in the job's
  zone. A wall time that does not exist that day runs at the first instant
  after the gap; one that occurs twice runs once, at its first occurrence
  (``timeutil.resolve_wall``).

Calendar patterns are compiled to ``dateutil.rrule`` over *naive wall times*
and each wall time is then placed in the zone. Computing on naive wall times
(rather than on aware datetimes) matters: Python compares two aware datetimes
that share a tzinfo by their wall time, ignoring ``fold``, which is wrong in
the repeated hour. All comparisons here are therefore made in UTC.

A raw ``rrule`` is RFC 5545 RRULE text without DTSTART, read on the wall
clock of the job's zone (as a calendar with a TZID would), with dateutil's
semantics: the month-end rule of the ``months`` pattern does not apply to it
(BYMONTHDAY=31 skips short months). COUNT and UNTIL are allowed: COUNT
becomes ``end.after`` and a date-only UNTIL ``end.by`` in the canonical form;
an UNTIL with a time stays in the rule, converted to the zone's wall time if
given in UTC. An rrule with COUNT or UNTIL may not also have an ``end``.
FREQ=SECONDLY is refused.

The package: ``rule`` (the validated Rule and the limits), ``parse`` (the
object or RRULE text into a Rule), ``sentence`` (the canonical form and the
sentence), ``occurrence`` (dateutil and the daylight-saving rules above);
``closed`` (calendars of closed days); this module holds the functions every
caller uses.

A recurrence may name a calendar of closed days (``"calendar": NAME``,
``"on_closed_day": "skip" | "next_open_day"``). The calendar's days live in
the database, so the functions that compute occurrences take them as
``closed`` (a ``closed.ClosedDays``; calendars.closed_days_for(spec) reads
them): the engine, the preview and the job service compute occurrences with
the same function. Asked for occurrences of such a recurrence without its
closed days, they raise ValueError rather than ignore the calendar.

This package must stay free of textual and peewee: the batch server, the
command line and the console all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any

from ..errors import UserError
from ..timeutil import zone
from .closed import POLICIES, ClosedPredicate, iter_open
from .occurrence import as_utc, iter_utc, rrule_has_occurrence
from .parse import parse
from .rule import NTHS, PATTERNS, RRULE_HORIZON_YEARS, WEEKDAYS, RecurrenceError, Rule
from .sentence import sentence, to_dict

__all__ = [
    "RecurrenceError",
    "PATTERNS",
    "WEEKDAYS",
    "NTHS",
    "normalize",
    "describe",
    "warning",
    "occurrences",
    "next_occurrence",
    "next_run",
    "calendar_of",
]

MAX_CALENDAR_NAME = 40


def calendar_of(spec: dict) -> tuple[str | None, str]:
    """The calendar a (normalized) recurrence names, or None, and what happens on its closed days."""
    if not isinstance(spec, dict):
        return None, "skip"
    name = spec.get("calendar")
    return (name if isinstance(name, str) and name else None), spec.get("on_closed_day") or "skip"


def _check_calendar(spec: dict) -> dict[str, Any]:
    """The canonical calendar keys of a recurrence object ({} without a calendar)."""
    name = spec.get("calendar")
    policy = spec.get("on_closed_day")
    if name is None or name == "":
        if policy not in (None, "skip"):
            raise RecurrenceError("recurrence.on_closed_day", "needs a calendar (recurrence.calendar)")
        return {}
    if not isinstance(name, str) or len(name) > MAX_CALENDAR_NAME or name != name.strip() \
            or not name.isprintable():
        raise RecurrenceError("recurrence.calendar", f"expected the name of a calendar (up to {MAX_CALENDAR_NAME} "
                                                     f"characters), got {name!r}"[:200])
    if policy is None:
        policy = "skip"
    if policy not in POLICIES:
        raise RecurrenceError("recurrence.on_closed_day", f"expected one of {', '.join(POLICIES)}, "
                                                          f"got {policy!r}"[:200])
    return {"calendar": name, "on_closed_day": policy}


def _iter(rule: Rule, tz: tzinfo, after: datetime | None, spec: dict,
          closed: ClosedPredicate | None) -> Iterator[datetime]:
    """The rule's occurrences (naive UTC, strictly after `after`), its calendar's closed days applied."""
    name, policy = calendar_of(spec)
    if name is None:
        return iter_utc(rule, tz, after)
    if closed is None:
        raise ValueError(f"the recurrence names the calendar {name!r}: its closed days must be given")
    return iter_open(rule, tz, after, closed, policy == "next_open_day")


def _zone(name: str) -> tzinfo:
    try:
        return zone(name)
    except UserError as exc:
        raise RecurrenceError("time_zone", str(exc)) from None



def normalize(spec: dict, *, default_start: datetime, time_zone: str) -> dict:
    """Validate a recurrence object as in the job file; return its canonical form.

    default_start is the job's scheduled start (naive UTC, or aware) and is
    used when the object has no "start"; time_zone is the job's IANA zone.
    The result is JSON-serializable and holds "start" (naive wall time in
    the zone), either "pattern" + "every" + the pattern's options with every
    default filled in, or "rrule", and "end". Raises RecurrenceError naming
    the field, including for a recurrence that has no occurrence at all.
    """
    tz = _zone(time_zone)
    if isinstance(spec, dict) and spec.get("time_zone") not in (None, time_zone):
        raise RecurrenceError("recurrence.time_zone",
                    f"{spec['time_zone']!r} differs from the job's time zone {time_zone!r}")
    rule = parse(spec, tz, default_start)
    if rule.rrule is not None and not rrule_has_occurrence(rule):
        raise RecurrenceError("recurrence.rrule", "has no occurrence (within "
                                        f"{RRULE_HORIZON_YEARS} years of the start)")
    # Every pattern has occurrences, so this search ends at the first one, or
    # at the first one past the end.
    if next(iter_utc(rule, tz, None), None) is None:
        start = rule.start.isoformat(timespec="seconds")
        if rule.end[0] == "by":
            raise RecurrenceError("recurrence.end.by", f"{rule.end[1].isoformat()} leaves no "
                                             f"occurrence (the recurrence starts {start})")
        if rule.rrule_until is not None:
            raise RecurrenceError("recurrence.rrule", f"UNTIL leaves no occurrence (the "
                                            f"recurrence starts {start})")
        raise RecurrenceError("recurrence.every", "leaves no occurrence before the year 10000")
    return {**to_dict(rule), **_check_calendar(spec)}


def describe(spec: dict) -> str:
    """The sentence shown on the job, e.g. "Every month on the last Friday at
    22:00, 12 times" or "Every 10 minutes, no end date".

    Days and longer patterns say the time of day (it is part of the rule);
    minutes and hours do not (they step from the start, whatever the clock).
    The spec should be normalized (it needs its "start"). A calendar is named
    at the end: "..., skipping the closed days of PLANT".
    """
    text = sentence(parse(spec, None, None))
    name, policy = calendar_of(spec)
    if name is not None:
        text += (f", skipping the closed days of {name}" if policy == "skip"
                 else f", on the next open day of {name} when closed")
    return text


def warning(spec: dict) -> str | None:
    """A warning for the console about a legal but unwise recurrence, else None.

    The ERP warns against one-minute recurrences: its scheduler polls once a
    minute, and every run lands in the batch job history.
    """
    rule = parse(spec, None, None)
    if rule.rrule is not None:
        # FREQ=MINUTELY without INTERVAL or any BY part runs every minute too.
        names = {part.split("=")[0] for part in rule.rrule.split(";")}
        every_minute = "FREQ=MINUTELY" in rule.rrule.split(";") and not (
            names - {"FREQ", "WKST", "UNTIL"})
    else:
        every_minute = rule.pattern == "minutes" and rule.every == 1
    if every_minute:
        return ("A recurrence every minute adds 1,440 runs a day to the batch job "
                "history; consider a longer interval.")
    return None


def occurrences(spec: dict, time_zone: str, *, after: datetime | None = None,
                count: int = 10, closed: ClosedPredicate | None = None) -> list[datetime]:
    """Up to `count` occurrences as aware datetimes in time_zone.

    Strictly after `after` (aware, or naive UTC) if given, else from the
    start (the start itself only if it fits the pattern). Note: compare the
    results in UTC; Python compares datetimes sharing a zone by wall time.
    """
    tz = _zone(time_zone)
    rule = parse(spec, tz, None)
    found: list[datetime] = []
    if count <= 0:
        return found
    for at in _iter(rule, tz, None if after is None else as_utc(after), spec, closed):
        found.append(at.replace(tzinfo=UTC).astimezone(tz))
        if len(found) >= count:
            break
    return found


def next_run(spec: dict, time_zone: str, *, runs: int, ended: datetime, scheduled: datetime | None = None,
             started: datetime | None = None, closed: ClosedPredicate | None = None) -> datetime | None:
    """When a recurring job runs next, after a run: naive UTC, or None when the recurrence is over.

    The batch framework's rules (batch-framework.md, "Recurrence dialog"):
    only runs count, and a missed occurrence is made up by one run.

    * ``runs`` is how many runs the job has made for this recurrence, the one
      just over included: "end after N" is over once N runs are made, however
      many occurrences passed meanwhile without one.
    * An occurrence that fell due while the run ran (after ``started``, by
      ``ended``) is made up by one run, at once: the next start is the latest
      such occurrence, for all of them. Occurrences before the run started
      (missed while no batch server ran) are made up by the run itself.
    * Otherwise the next start is the first occurrence after ``ended`` (and
      after ``scheduled``, the occurrence the run was made for).

    Times are naive UTC or aware. With runs=0 and ended=now (started and
    scheduled left out): the first occurrence after now, for a recurrence
    set on a job that has run before.
    """
    tz = _zone(time_zone)
    rule = parse(spec, tz, None)
    if rule.end[0] == "after":
        if runs >= rule.end[1]:
            return None
        rule = replace(rule, end=("never",))  # the runs are counted above, not the occurrences
    until = as_utc(ended)
    if started is not None:
        missed = None
        for at in _iter(rule, tz, as_utc(started), spec, closed):
            if at > until:
                break
            missed = at
        if missed is not None:
            return missed
    after = until if scheduled is None else max(until, as_utc(scheduled))
    return next(_iter(rule, tz, after, spec, closed), None)


def next_occurrence(spec: dict, time_zone: str, after: datetime,
                    closed: ClosedPredicate | None = None) -> datetime | None:
    """The first occurrence strictly after `after` (naive UTC or aware), as
    naive UTC; None when the recurrence is over.

    Called after every run of a recurring job, so it never walks from the
    start: minutes and hours are computed arithmetically, calendar rules
    restart at the latest period boundary before `after`.
    """
    tz = _zone(time_zone)
    rule = parse(spec, tz, None)
    return next(_iter(rule, tz, as_utc(after), spec, closed), None)
