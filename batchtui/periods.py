"""Active periods for batch jobs (System administration > Setup > Active periods for batch jobs).

The command line (`batchtui period`) and the console's Active periods form
both use it. Only batch job managers add or delete a period; a period that
jobs name cannot be deleted. The rule of when a period is open is in
controls.py; the engine holds a due job back while its period is closed.
"""

from __future__ import annotations

from . import models as m
from .actor import Actor
from .controls import ControlError, Period, hhmm, make_period
from .db import write
from .errors import NotAllowed, NotFound, Refused, UserError
from .validators import q

__all__ = ["add_period", "check_manager", "delete_period", "period_names", "period_rows", "check_period_name"]


def check_manager(actor: Actor, what: str) -> None:
    """Settings of the batch framework are for batch job managers only."""
    if not actor.is_manager:
        raise NotAllowed(f"user {actor.user!r} may not {what}: only a batch job manager may")


def check_period_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"active period {field}: a name is required")
    if name != name.strip() or len(name) > 40 or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UserError(f"active period {q(name)}: a name is 1 to 40 characters, without control characters "
                        "or spaces at either end")
    return name


def _row(p: m.ActivePeriod, used: dict[str, int]) -> dict:
    period = make_period(p.name, p.start, p.end, p.weekdays, p.start_date, p.end_date)
    return {"name": p.name, "description": p.description, "from": hhmm(period.start), "to": hhmm(period.end),
            "days": list(period.weekdays), "start_date": p.start_date, "end_date": p.end_date,
            "text": period.text, "jobs": used.get(p.name, 0)}


def period_rows() -> list[dict]:
    """Every active period, by name, with how many jobs name it."""
    from peewee import fn

    used = {name: int(n) for name, n in m.tuples(
        m.BatchJob.select(m.BatchJob.active_period, fn.COUNT(m.BatchJob.id))
        .where(m.BatchJob.active_period.is_null(False)).group_by(m.BatchJob.active_period))}
    return [_row(p, used) for p in m.ActivePeriod.select().order_by(m.ActivePeriod.name)]


def period_names() -> list[str]:
    return [name for (name,) in m.tuples(m.ActivePeriod.select(m.ActivePeriod.name).order_by(m.ActivePeriod.name))]


def add_period(name: str, *, actor: Actor, start: str, end: str, days: str | list[str] | None = None,
               start_date: str | None = None, end_date: str | None = None, description: str = "",
               replace: bool = False) -> Period:
    """Add an active period (replace=True: or change the one of that name)."""
    check_manager(actor, "change active periods")
    name = check_period_name(name)
    try:
        period = make_period(name, start, end, days, start_date, end_date)
    except ControlError as exc:
        raise UserError(f"active period {q(name)}: {exc}") from None
    if not isinstance(description, str) or len(description) > 200:
        raise UserError(f"active period {q(name)}: description: at most 200 characters")
    values = {"description": description, "start": hhmm(period.start), "end": hhmm(period.end),
              "weekdays": ",".join(period.weekdays),
              "start_date": period.start_date.isoformat() if period.start_date else None,
              "end_date": period.end_date.isoformat() if period.end_date else None}
    with write():
        exists = m.ActivePeriod.get_or_none(m.ActivePeriod.name == name) is not None
        if exists and not replace:
            raise UserError(f"active period {q(name)} exists already")
        if exists:
            m.ActivePeriod.update(**values).where(m.ActivePeriod.name == name).execute()
        else:
            m.ActivePeriod.create(name=name, **values)
    return period


def delete_period(name: str, *, actor: Actor) -> None:
    """Delete an active period that no job names."""
    check_manager(actor, "change active periods")
    with write():
        if m.ActivePeriod.get_or_none(m.ActivePeriod.name == name) is None:
            raise NotFound(f"active period {q(name)}: no such active period")
        users = [j for (j,) in m.tuples(m.BatchJob.select(m.BatchJob.id).where(m.BatchJob.active_period == name)
                                         .order_by(m.BatchJob.id).limit(21))]
        if users:
            shown = ", ".join(str(j) for j in users[:20]) + (", ..." if len(users) > 20 else "")
            raise Refused(f"active period {q(name)} is used by job{'s' if len(users) > 1 else ''} {shown}: "
                          "clear their active period first")
        m.ActivePeriod.delete().where(m.ActivePeriod.name == name).execute()
