"""Alerts (the Action center): list, read, mark read, delete.

An alert belongs to the user it was raised for: every function here takes
the acting ``Actor`` and sees only that user's alerts. Nobody, a batch job
manager included, lists, reads, marks or deletes another user's alerts; an
alert ID of someone else's is answered as if it did not exist.

The batch server raises alerts (``status.py``) and e-mails them
(``engine/mail.py``); ``batchtui alerts`` and the Action center show them.
Nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peewee import Expression, fn

from . import models as m
from .actor import Actor
from .db import write
from .errors import NotFound
from .timeutil import machine_zone

__all__ = ["AlertInfo", "count_alerts", "delete_alerts", "get_alert", "list_alerts", "mark_read"]


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """One alert. `created` is naive UTC, as stored; `time_zone` is its job's
    zone (the machine's once the job is deleted), to show `created` in."""

    id: int
    job_id: int | None
    event: str  # ended, error, canceled, late
    message: str
    created: datetime
    read: bool
    time_zone: str
    email: str | None = None  # its e-mail: None (not asked), pending, sent, failed (engine/delivery.py)
    notify: str | None = None  # its chat/webhook notice, the same states
    email_error: str | None = None  # the last error of each, while pending or once failed
    notify_error: str | None = None


def _mine(actor: Actor, unread_only: bool = False) -> Expression:
    where = m.Alert.user == actor.user
    if unread_only:
        where &= m.Alert.read == False  # noqa: E712 - a peewee expression
    return where


def _infos(rows: Sequence[Any]) -> list[AlertInfo]:
    job_ids = list({r.job_id for r in rows if r.job_id is not None})
    zones: dict[int, str] = {}
    if job_ids:
        query = m.BatchJob.select(m.BatchJob.id, m.BatchJob.time_zone).where(m.BatchJob.id << job_ids)
        zones = {int(j.id): str(j.time_zone) for j in query}
    default_zone = machine_zone()
    return [AlertInfo(id=int(r.id), job_id=r.job_id, event=str(r.event), message=str(r.message),
                      created=r.created, read=bool(r.read), time_zone=zones.get(r.job_id, default_zone),
                      email=_state(r.email_state), notify=_state(r.notify_state),
                      email_error=_text(r.email_error), notify_error=_text(r.notify_error))
            for r in rows]


def _state(value: Any) -> str | None:
    """A delivery state as shown: None, pending, sent or failed (anything else written by hand: failed)."""
    if value is None:
        return None
    return value if value in ("pending", "sent", "failed") else "failed"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def list_alerts(actor: Actor, *, unread_only: bool = True, limit: int | None = None, offset: int = 0,
                newest_first: bool = False) -> list[AlertInfo]:
    """The actor's alerts (unread ones only unless asked), oldest first unless newest_first
    (by the time raised: a row written by hand or restored may have an id out of time order)."""
    order = (m.Alert.created.desc(), m.Alert.id.desc()) if newest_first else (m.Alert.id,)
    query = m.Alert.select().where(_mine(actor, unread_only)).order_by(*order)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return _infos(list(query))


def count_alerts(actor: Actor, *, unread_only: bool = True) -> int:
    return int(m.Alert.select(fn.COUNT(m.Alert.id)).where(_mine(actor, unread_only)).scalar() or 0)


def get_alert(actor: Actor, alert_id: int) -> AlertInfo:
    row = m.Alert.get_or_none((m.Alert.id == alert_id) & _mine(actor))
    if row is None:
        raise NotFound(f"alert {alert_id}: no such alert for user {actor.user!r}")
    return _infos([row])[0]


def _owned(actor: Actor, alert_ids: Iterable[int]) -> list[int]:
    """The IDs, all of them the actor's; otherwise NotFound naming the first that is not."""
    wanted = sorted({int(i) for i in alert_ids})
    if not wanted:
        return []
    found = {int(a.id) for a in m.Alert.select(m.Alert.id).where((m.Alert.id << wanted) & _mine(actor))}
    missing = [i for i in wanted if i not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise NotFound(f"alert {missing[0]}{more}: no such alert for user {actor.user!r}")
    return wanted


def mark_read(actor: Actor, alert_ids: Iterable[int] | None = None) -> int:
    """Mark the actor's alerts read: those IDs, or every unread one (None). How many changed.

    An ID that is not one of the actor's alerts refuses the whole call.
    """
    with write():
        if alert_ids is None:
            where = _mine(actor, unread_only=True)
        else:
            ids = _owned(actor, alert_ids)
            if not ids:
                return 0
            where = (m.Alert.id << ids) & _mine(actor, unread_only=True)
        return int(m.Alert.update(read=True).where(where).execute())


def delete_alerts(actor: Actor, alert_ids: Iterable[int]) -> int:
    """Delete the actor's alerts with these IDs; one that is not the actor's refuses the whole call."""
    with write():
        ids = _owned(actor, alert_ids)
        if not ids:
            return 0
        return int(m.Alert.delete().where((m.Alert.id << ids) & _mine(actor)).execute())
