"""Calendars of closed days (System administration > Setup > Calendars).

A calendar names closed days: listed dates, weekends (Saturday and Sunday),
and the public holidays of a country (and subdivision) from the holidays
package. A recurrence that names one skips its closed days or moves them to
the next open day (recurrence/closed.py). The command line (`batchtui
calendar`) and the console's Calendars form both use this module.

Calendars are setup data, like batch groups and active periods: only batch
job managers add, change or delete one (one edit moves every job that names
it; on PostgreSQL the step 8 guard says the same). A calendar that a
recurrence names cannot be deleted. When a calendar changes, a Waiting job
that names it and whose next start is now on a closed day gets its next
start from the changed calendar at once (an audited change by the manager);
the others follow it from their next occurrence.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from peewee import SQL, NodeList, Value

from . import events
from . import models as m
from .actor import Actor
from .db import write
from .errors import NotFound, Refused, UserError
from .periods import check_manager
from .recurrence import calendar_of
from .recurrence.closed import ClosedDays
from .validators import q

__all__ = ["add_calendar", "delete_calendar", "calendar_rows", "calendar_names", "closed_dates", "closed_days",
           "closed_days_for", "check_calendar_name", "MAX_SHOW_DAYS"]

MAX_NAME = 40
MAX_DATES = 5000
MAX_SHOW_DAYS = 3660  # `calendar show`: ten years at most


def check_calendar_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UserError("calendar name: a name is required")
    if name != name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise UserError(f"calendar {q(name)}: a name is 1 to {MAX_NAME} characters, without control characters "
                        "or spaces at either end")
    return name


def _date(value: object, what: str) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            if len(value.strip()) == 10:
                return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise UserError(f"{what}: {q(str(value))} is not a date (YYYY-MM-DD)")


def _dates(values: object, name: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, (list, tuple)):
        raise UserError(f"calendar {q(name)}: dates: expected a list of dates")
    if len(values) > MAX_DATES:
        raise UserError(f"calendar {q(name)}: dates: at most {MAX_DATES} dates")
    return sorted({_date(v, f"calendar {q(name)}: dates").isoformat() for v in values})


def _codes(name: str, country: object, subdiv: object) -> tuple[str | None, str | None]:
    if country in (None, ""):
        if subdiv not in (None, ""):
            raise UserError(f"calendar {q(name)}: --subdiv needs --country")
        return None, None
    if not isinstance(country, str) or not (2 <= len(country.strip()) <= 3) or not country.strip().isalpha():
        raise UserError(f"calendar {q(name)}: country: {q(str(country))} is not a country code (e.g. US, DE, GB)")
    code = country.strip().upper()
    sub = None
    if subdiv not in (None, ""):
        if not isinstance(subdiv, str) or len(subdiv.strip()) > 16 or not subdiv.strip().isprintable():
            raise UserError(f"calendar {q(name)}: subdivision: {q(str(subdiv))} is not a subdivision code")
        sub = subdiv.strip()
        import holidays  # the codes as the package spells them: TX, ENG, also Augsburg

        known = holidays.list_supported_countries().get(code, [])
        sub = next((k for k in known if k.upper() == sub.upper()), sub)
    try:
        ClosedDays(country=code, subdiv=sub)
    except ValueError as exc:
        raise UserError(f"calendar {q(name)}: {exc}") from None
    return code, sub


def _uses() -> dict[str, list[int]]:
    """The jobs whose recurrence names each calendar, by ID."""
    used: dict[str, list[int]] = {}
    query = (m.BatchJob.select(m.BatchJob.id, m.BatchJob.recurrence)
             .where(NodeList((m.BatchJob.recurrence, SQL("LIKE"), Value('%"calendar"%', converter=False))))
             .order_by(m.BatchJob.id))
    for job_id, recurrence in m.tuples(query):
        spec = json.loads(recurrence) if isinstance(recurrence, str) else recurrence
        name, _ = calendar_of(spec or {})
        if name is not None:
            used.setdefault(name, []).append(job_id)
    return used


def _row(c: m.ClosedCalendar, used: dict[str, list[int]]) -> dict[str, Any]:
    return {"name": c.name, "description": c.description, "dates": list(c.dates or []), "weekends": c.weekends,
            "country": c.country, "subdiv": c.subdiv, "jobs": used.get(c.name, [])}


def calendar_rows() -> list[dict[str, Any]]:
    """Every calendar, by name, with the jobs whose recurrence names it."""
    used = _uses()
    return [_row(c, used) for c in m.ClosedCalendar.select().order_by(m.ClosedCalendar.name)]


def calendar_names() -> list[str]:
    return [n for (n,) in m.tuples(m.ClosedCalendar.select(m.ClosedCalendar.name).order_by(m.ClosedCalendar.name))]


def add_calendar(name: str, *, actor: Actor, dates: object = None, weekends: bool = False, country: object = None,
                 subdiv: object = None, description: str = "", replace: bool = False) -> dict[str, Any]:
    """Add a calendar (replace=True: or change the one of that name); batch job managers only."""
    check_manager(actor, "change calendars")
    name = check_calendar_name(name)
    if not isinstance(description, str) or len(description) > 200 or not description.isprintable():
        raise UserError(f"calendar {q(name)}: description: at most 200 characters, without control characters")
    values = {"description": description, "dates": _dates(dates, name), "weekends": bool(weekends)}
    values["country"], values["subdiv"] = _codes(name, country, subdiv)
    with write():
        exists = m.ClosedCalendar.get_or_none(m.ClosedCalendar.name == name) is not None
        if exists and not replace:
            raise UserError(f"calendar {q(name)} exists already")
        if exists:
            m.ClosedCalendar.update(**values).where(m.ClosedCalendar.name == name).execute()
            moved = _move_waiting_jobs(name, actor)
        else:
            m.ClosedCalendar.create(name=name, **values)
            moved = []
    if moved:
        events.changed()
    return {"name": name, **values}


def _move_waiting_jobs(name: str, actor: Actor) -> list[int]:
    """After a calendar changed: a Waiting job naming it whose next start fell on a day now closed
    gets the next start the calendar gives (skipped or moved), in the same transaction, recorded
    in its audit trail as the manager's change. Returns the jobs moved."""
    from . import audit, recurrence
    from .jobs import iso_scheduled
    from .recurrence.occurrence import utc_to_wall
    from .timeutil import utcnow, zone
    from .vocabulary import BatchStatus

    closed = closed_days(name)
    moved = []
    for job_id in _uses().get(name, []):
        job = m.BatchJob.get_or_none(m.BatchJob.id == job_id)
        if job is None or job.status != BatchStatus.WAITING or job.deferred_from is not None:
            continue
        if not closed(utc_to_wall(job.scheduled_start, zone(job.time_zone)).date()):
            continue
        nxt = recurrence.next_occurrence(job.recurrence, job.time_zone,
                                         job.scheduled_start - timedelta(microseconds=1), closed=closed)
        if nxt is None or nxt == job.scheduled_start:
            continue
        done = (m.BatchJob.update(scheduled_start=nxt, modified=utcnow(), version=m.BatchJob.version + 1)
                .where((m.BatchJob.id == job.id) & (m.BatchJob.status == int(BatchStatus.WAITING))
                       & (m.BatchJob.scheduled_start == job.scheduled_start)).execute())
        if done:
            audit.record(actor, job.id, "changed", "scheduled_start", iso_scheduled(job.scheduled_start, job.time_zone),
                         iso_scheduled(nxt, job.time_zone))
            moved.append(job.id)
    return moved


def delete_calendar(name: str, *, actor: Actor) -> None:
    """Delete a calendar that no recurrence names."""
    check_manager(actor, "change calendars")
    with write():
        if m.ClosedCalendar.get_or_none(m.ClosedCalendar.name == name) is None:
            raise NotFound(f"calendar {q(name)}: no such calendar")
        users = _uses().get(name, [])
        if users:
            shown = ", ".join(str(j) for j in users[:20]) + (", ..." if len(users) > 20 else "")
            raise Refused(f"calendar {q(name)} is used by the recurrence of job{'s' if len(users) > 1 else ''} "
                          f"{shown}: change their recurrence first")
        m.ClosedCalendar.delete().where(m.ClosedCalendar.name == name).execute()


def closed_days(name: str) -> ClosedDays:
    """A calendar's closed days; raises NotFound for an unknown calendar."""
    row = m.ClosedCalendar.get_or_none(m.ClosedCalendar.name == name) if isinstance(name, str) else None
    if row is None:
        known = calendar_names()[:20]
        hint = f" (calendars: {', '.join(known)})" if known else " (there are none: see `batchtui calendar add`)"
        raise NotFound(f"calendar {q(str(name))}: no such calendar{hint}")
    try:
        return ClosedDays((date.fromisoformat(d) for d in row.dates or []), bool(row.weekends), row.country or None,
                          row.subdiv or None)
    except ValueError as exc:  # a row written by hand with a bad code or date
        raise UserError(f"calendar {q(name)}: {exc}") from None


def closed_days_for(spec: dict | None, *, missing_open: bool = False) -> ClosedDays | None:
    """The closed days of the calendar a recurrence names, None if it names none.

    missing_open: a calendar that is gone (deleted by hand) counts as closing nothing
    instead of raising, for the batch server, which must go on.
    """
    name, _ = calendar_of(spec or {})
    if name is None:
        return None
    try:
        return closed_days(name)
    except UserError:
        if missing_open:
            return ClosedDays()
        raise


def closed_dates(name: str, start: object, end: object) -> list[str]:
    """`calendar show`: the closed dates from start to end (inclusive), as YYYY-MM-DD."""
    closed = closed_days(name)
    first, last = _date(start, "--from"), _date(end, "--to")
    if last < first:
        raise UserError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
    if (last - first).days > MAX_SHOW_DAYS:
        raise UserError(f"--from and --to are at most {MAX_SHOW_DAYS} days apart")
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)
            if closed(first + timedelta(days=n))]
