"""The audit trail: who changed what on a job, when, and from what to what.

Every change an operator makes (console, command line, import) to a job,
its tasks, conditions, recurrence and alerts, and every status change,
cancel, run-now, rerun and delete, is recorded by ``record`` in the same
transaction as the change itself: a change that is refused (a failed
compare-and-set, a validation error) rolls back and leaves no entry. The
rows have no foreign key to the job, so the trail stays after the job is
deleted (its last entry is ``deleted``).

On PostgreSQL the database says who and when (migrations/v8: the guard sets
``user`` to ``current_user`` and refuses updates and deletes), so no role
can write an entry in another's name or rewrite the trail. On SQLite the
file is private to its owner, as everywhere else.

``old`` and ``new`` are JSON values (text, numbers, booleans, lists, None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import models as m
from .actor import Actor
from .timeutil import iso, utcnow

ACTIONS = ("created", "changed", "status", "canceled", "run_now", "rerun", "task_added", "task_changed",
           "task_deleted", "condition_added", "condition_deleted", "recurrence", "alerts", "deleted")

MAX_FIELD = 300

__all__ = ["ACTIONS", "record", "record_changes", "entries"]


def _plain(value: Any) -> Any:
    """A value as JSON can hold it; anything else (a datetime, an enum) as its text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def record(actor: Actor | str, job_id: int, action: str, field: str | None = None, old: Any = None,
           new: Any = None) -> None:
    """Add one entry to job_id's trail, inside the caller's write transaction.

    actor is the acting Actor (or a user name); on PostgreSQL the database
    writes current_user whatever it says. Raises ValueError for an action
    not in ACTIONS and RuntimeError outside a transaction (an entry must
    commit or roll back with its change).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if not m.database.in_transaction():
        raise RuntimeError("audit.record runs inside the transaction of the change it records")
    user = actor if isinstance(actor, str) else actor.user
    m.JobAudit.insert(job_id=int(job_id), at=utcnow(), user=user, action=action,
                      field=None if field is None else field[:MAX_FIELD], old=_plain(old),
                      new=_plain(new)).execute()


def record_changes(actor: Actor | str, job_id: int, action: str, before: Mapping[str, Any],
                   after: Mapping[str, Any], prefix: str = "") -> int:
    """One entry per field of `after` whose value differs from `before`; returns how many."""
    count = 0
    for name, new in after.items():
        old = before.get(name)
        if _plain(old) != _plain(new):
            record(actor, job_id, action, prefix + name, old, new)
            count += 1
    return count


def entries(job_id: int) -> list[dict]:
    """A job's trail, oldest first: {"at", "user", "action", "field", "old", "new"}; works for a deleted job."""
    rows = m.JobAudit.select().where(m.JobAudit.job_id == int(job_id)).order_by(m.JobAudit.id) \
        if m.storable_id(job_id) else []
    return [{"at": iso(r.at), "user": r.user, "action": r.action, "field": r.field, "old": r.old,
             "new": r.new} for r in rows]


def count(job_id: int) -> int:
    """How many entries a job's trail has (the console's paged grid)."""
    return m.JobAudit.select().where(m.JobAudit.job_id == int(job_id)).count() if m.storable_id(job_id) else 0


def page(job_id: int, offset: int, limit: int) -> list[m.JobAudit]:
    """Entries of a job's trail, oldest first, from offset (one index range: job_id, id)."""
    if not m.storable_id(job_id):
        return []
    return list(m.JobAudit.select().where(m.JobAudit.job_id == int(job_id)).order_by(m.JobAudit.id)
                .offset(offset).limit(limit))


def shown(value: Any) -> str:
    """An entry's value on one line: text as it is, anything else as compact JSON, None as -."""
    import json

    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
