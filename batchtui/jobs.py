"""The job service: creating, editing, importing, exporting and copying batch jobs.

Both the command line and the console go through these functions, so a rule
(who may change a job, what a valid task is, when a job can no longer be
edited) lives in one place. Nothing here imports Textual.

Every change runs in one `db.write()` transaction and checks that the acting
user may manage the job. A job that is Executing or Canceling cannot be
edited, nor can its tasks, conditions or alerts... except that anyone may
set their own alerts on any job (the ERP's Alerts dialog is per user).
Statuses are only ever set through `status`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from peewee import JOIN

from . import audit, events, jobfile
from . import models as m
from . import status as st
from .actor import Actor
from .db import write
from .errors import Conflict, NotFound, Refused, UserError
from .jobfile import FieldError, q
from .recipients import RecipientRefused
from .rules import JOB_MOVES, initial_job_status
from .timeutil import iso, local, machine_zone, utcnow
from .vocabulary import BatchStatus, ConditionStatus, ConditionType, Priority

EDIT = JOB_MOVES["edit"]

__all__ = [
    "create_job", "update_job", "set_job", "set_recurrence", "set_alert", "add_task", "update_task",
    "delete_task", "add_condition", "delete_condition", "import_jobs", "export_job", "copy_job",
    "list_jobs", "task_key_for", "iso_scheduled", "run_dict",
]


class _Unset:
    def __repr__(self) -> str:
        return "_UNSET"


_UNSET: Any = _Unset()

TASK_FIELDS = ("description", "class_name", "params", "company", "batch_group", "ignore_failure",
               "max_retries", "condition_type", "key", "time_limit")


# -- helpers -------------------------------------------------------------------


def _label(job: m.BatchJob) -> str:
    return f"{job.id} {q(job.description)}"


def _task_label(task: m.BatchTask) -> str:
    return q(task.key)


def _check_mail(actor: Actor, user: str, email: bool, *, job: str, field: str) -> None:
    """An alert that asks for e-mail names an address the site mails to (recipients.py)."""
    if email:
        try:
            actor.recipients.address(user)
        except RecipientRefused as exc:
            raise FieldError(str(exc), job=job, field=field) from None


def _get_task(task_id: int) -> m.BatchTask:
    task = m.BatchTask.get_or_none(m.BatchTask.id == task_id) if m.storable_id(task_id) else None
    if task is None:
        raise NotFound(f"task {task_id}: no such batch task")
    return task


def _editable(job: m.BatchJob, actor: Actor, version: int | None = None, **changes: Any) -> None:
    """Change a job that the actor may manage and that is not running (the "edit" move).

    A compare-and-set on its status (and on ``version`` when the caller read
    one): the job's version moves on for any change to it or its tasks,
    conditions, recurrence; on PostgreSQL its row stays locked until the
    transaction commits, so no batch server starts a run in between.
    """
    st.check_can_manage(job, actor)
    current = BatchStatus(job.status)
    if not EDIT.allows(current):
        raise Refused(
            f"job {_label(job)} is {current.label}: it cannot be changed while it runs "
            "(cancel it, or wait until it is over)"
        )
    query = m.BatchJob.update(modified=utcnow(), version=m.BatchJob.version + 1, **changes).where(
        (m.BatchJob.id == job.id) & (m.BatchJob.status == job.status))
    if version is not None:
        query = query.where(m.BatchJob.version == int(version))
    if query.execute() != 1:
        raise Conflict(_stale(job.id))


def _stale_task(task_id: int) -> str:
    return f"task {task_id} was changed since you read it (by another user); re-read it and make your change again"


def _stale(job_id: int) -> str:
    return (f"job {job_id} was changed since you read it (by a batch server or another user); "
            "re-read it and make your change again")


def _company(company_id: str, *, default: str | None = None, job=None, task=None, field="company") -> str:
    """The company must exist; the default company exists on every database."""
    company_id = jobfile.check_company_id(company_id, job=job, task=task, field=field)
    if m.Company.get_or_none(m.Company.id == company_id) is not None:
        return company_id
    if default is not None and company_id == default:
        m.Company.get_or_create(id=company_id, defaults={"name": ""})
        return company_id
    known = [c.id for c in m.Company.select(m.Company.id).order_by(m.Company.id).limit(20)]
    hint = f" (companies: {', '.join(known)})" if known else ""
    raise FieldError(f"unknown company {q(company_id)}{hint}", job=job, task=task, field=field)


def _group(name: str, *, job=None, task=None, field="batch_group") -> str:
    name = jobfile.check_group_name(name, job=job, task=task, field=field)
    if m.BatchGroup.get_or_none(m.BatchGroup.name == name) is None:
        raise FieldError(f"unknown batch group {q(name)} (see `batchtui group list`)",
                         job=job, task=task, field=field)
    return name


def _period(name: Any, *, job=None) -> str | None:
    """An active period that exists, or None for "" / None (no period)."""
    if name is None or name == "":
        return None
    if not isinstance(name, str) or m.ActivePeriod.get_or_none(m.ActivePeriod.name == name) is None:
        known = [p.name for p in m.ActivePeriod.select(m.ActivePeriod.name).order_by(m.ActivePeriod.name).limit(20)]
        hint = f" (active periods: {', '.join(known)})" if known else " (there are none: see `batchtui period add`)"
        raise FieldError(f"unknown active period {q(name)}{hint}", job=job, field="active_period")
    return name


def _period_changes(job: m.BatchJob, name: Any, label: str) -> dict[str, Any]:
    """A new active period; an occurrence the old one held back goes back to its own time."""
    changes: dict[str, Any] = {"active_period": _period(name, job=label)}
    if job.deferred_from is not None and changes["active_period"] != job.active_period:
        changes["scheduled_start"] = job.deferred_from
        changes["deferred_from"] = None
    return changes


def _start(value, time_zone: str, *, job=None) -> datetime:
    if value is None:
        return utcnow()
    return jobfile.check_time(value, time_zone, job=job, field="scheduled_start")


def _new_task_status(job: m.BatchJob) -> BatchStatus:
    """A new task takes its job's status while the job is Withhold or Waiting;
    added to a job whose run is over, it waits in Withhold for the next run."""
    current = BatchStatus(job.status)
    if current in (BatchStatus.HOLD, BatchStatus.WAITING):
        return current
    return BatchStatus.HOLD


def _unique_key(job_id: int, wanted: str, exclude: int | None = None) -> str:
    taken = {t.key for t in m.BatchTask.select(m.BatchTask.key, m.BatchTask.id)
             .where(m.BatchTask.job == job_id) if t.id != exclude}
    if wanted not in taken:
        return wanted
    n = 2
    while True:
        suffix = f" ({n})"
        candidate = wanted[: jobfile.MAX_KEY - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        n += 1


def _key_taken(job_id: int, key: str, exclude: int | None = None) -> bool:
    query = m.BatchTask.select().where((m.BatchTask.job == job_id) & (m.BatchTask.key == key))
    if exclude is not None:
        query = query.where(m.BatchTask.id != exclude)
    return query.exists()


def _notify() -> None:
    """Wake the batch servers (the console's, and on PostgreSQL the others)."""
    events.changed()


def iso_scheduled(value: datetime | None, tz: str) -> str | None:
    """A planned time (a scheduled start, an occurrence): whole seconds unless it has a fraction.

    Measured times (started, ended) always carry milliseconds (timeutil.iso).
    """
    if value is None:
        return None
    if value.microsecond:
        return iso(value, tz)
    return local(value, tz).isoformat(timespec="seconds")


def _job_values(job: m.BatchJob) -> dict[str, Any]:
    """The job form's fields as the audit trail shows them (the job file's names and values)."""
    return {"description": job.description, "company": job.company_id,
            "scheduled_start": iso_scheduled(job.scheduled_start, job.time_zone), "time_zone": job.time_zone,
            "priority": Priority(job.priority).cli, "active_period": job.active_period,
            "late_after": job.late_after}


def _task_values(task: m.BatchTask) -> dict[str, Any]:
    """The task form's fields as the audit trail shows them."""
    return {"key": task.key, "description": task.description, "class": task.class_name,
            "params": task.params or {}, "company": task.company_id, "batch_group": task.batch_group,
            "ignore_failure": task.ignore_failure, "max_retries": task.max_retries,
            "condition_type": ConditionType(task.condition_type).cli, "time_limit": task.time_limit}


def _alert_flags(row: m.JobAlert | None) -> list[str] | None:
    if row is None:
        return None
    return [name for name in ("ended", "error", "canceled", "popup", "email", "notify", "late") if getattr(row, name)]


def _condition_value(row: m.BatchConstraint) -> dict[str, str]:
    parent = m.BatchTask.get_or_none(m.BatchTask.id == row.parent_id)
    return {"task": parent.key if parent is not None else str(row.parent_id),
            "status": ConditionStatus(row.expected).cli}


def task_key_for(task_id: int) -> str:
    return _get_task(task_id).key


# -- jobs ----------------------------------------------------------------------


def create_job(*, actor: Actor, description, company=None, scheduled_start=None, time_zone=None,
               priority="normal", status="withhold", active_period=None, late_after=None) -> m.BatchJob:
    """A new batch job (the Batch jobs form's New); it starts in Withhold unless asked otherwise."""
    description = jobfile.check_description(description)
    label = q(description)
    time_zone = machine_zone() if time_zone is None else jobfile.check_time_zone(time_zone, job=label)
    start = _start(scheduled_start, time_zone, job=label)
    prio = jobfile.check_priority(priority, job=label)
    late = None if late_after is None else jobfile.check_seconds(late_after, job=label, field="late_after")
    if isinstance(status, BatchStatus):
        status = status.cli
    try:
        initial = initial_job_status(status)
    except ValueError:
        initial = jobfile.check_file_status(status, job=label)
    now = utcnow()
    with write():
        company = _company(actor.default_company if company is None else company, default=actor.default_company,
                           job=label)
        job = m.BatchJob.create(
            description=description, company=company, scheduled_start=start, time_zone=time_zone,
            status=initial, priority=int(prio), recurrence=None, recurrence_text="",
            created_by=actor.user, run_by=actor.user, created=now, modified=now, version=1,
            active_period=_period(active_period, job=label), late_after=late,
        )
        audit.record(actor, job.id, "created", None, None, description)
    if initial == BatchStatus.WAITING:
        _notify()
    return st.get_job(job.id)


def update_job(job_id, *, actor: Actor, version: int, description=_UNSET, company=_UNSET,
               scheduled_start=_UNSET, time_zone=_UNSET, priority=_UNSET, active_period=_UNSET,
               late_after=_UNSET) -> m.BatchJob:
    """Save the job form; refused if someone else saved the job since `version` was read."""
    with write():
        job = st.get_job(job_id)
        st.check_can_manage(job, actor)
        if int(version) != job.version:
            raise Conflict(_stale(job_id))
        label = _label(job)
        changes: dict[str, Any] = {}
        if description is not _UNSET:
            changes["description"] = jobfile.check_description(description, job=label)
        zone_name = job.time_zone
        if time_zone is not _UNSET:
            zone_name = jobfile.check_time_zone(time_zone, job=label)
            changes["time_zone"] = zone_name
        if scheduled_start is not _UNSET:
            changes["scheduled_start"] = _start(scheduled_start, zone_name, job=label)
        if priority is not _UNSET:
            changes["priority"] = int(jobfile.check_priority(priority, job=label))
        if company is not _UNSET:
            changes["company"] = _company(company, default=actor.default_company, job=label)
        if active_period is not _UNSET and (active_period or None) != job.active_period:
            changes.update(_period_changes(job, active_period, label))
        if late_after is not _UNSET:
            changes["late_after"] = (None if late_after is None
                                     else jobfile.check_seconds(late_after, job=label, field="late_after"))
        if "scheduled_start" in changes and "deferred_from" not in changes:
            changes["deferred_from"] = None
        _editable(job, actor, version, **changes)
        audit.record_changes(actor, job.id, "changed", _job_values(job), _job_values(st.get_job(job_id)))
    _notify()
    return st.get_job(job_id)


def set_job(job_id: int, *, actor: Actor, if_version: int | None = None, description: Any = _UNSET,
            scheduled_start: Any = _UNSET, priority: Any = _UNSET, company: Any = _UNSET,
            active_period: Any = _UNSET) -> m.BatchJob:
    """`batchtui job set`: change fields of a job that is not Executing or Canceling.

    With if_version, only while the job is still at that version (a script's
    compare-and-set: "job 7 was changed since version 3" otherwise). The
    checks are update_job's; the write is the "edit" move, guarded by the
    status and the version, whose row count says whether it won.
    """
    with write():
        job = st.get_job(job_id)
        st.check_can_manage(job, actor)
        if if_version is not None and job.version != int(if_version):
            raise Conflict(f"job {job_id} was changed since version {int(if_version)}")
        label = _label(job)
        changes: dict[str, Any] = {}
        if description is not _UNSET:
            changes["description"] = jobfile.check_description(description, job=label)
        if scheduled_start is not _UNSET:
            changes["scheduled_start"] = _start(scheduled_start, job.time_zone, job=label)
        if priority is not _UNSET:
            changes["priority"] = int(jobfile.check_priority(priority, job=label))
        if company is not _UNSET:
            changes["company"] = _company(company, default=actor.default_company, job=label)
        if active_period is not _UNSET:
            changes.update(_period_changes(job, active_period, label))
        if "scheduled_start" in changes and "deferred_from" not in changes:
            changes["deferred_from"] = None
        if not changes:
            raise UserError(f"job {label}: nothing to change")
        try:
            _editable(job, actor, job.version, **changes)
        except Conflict:
            if if_version is None:
                raise
            raise Conflict(f"job {job_id} was changed since version {int(if_version)}") from None
        audit.record_changes(actor, job.id, "changed", _job_values(job), _job_values(st.get_job(job_id)))
    _notify()
    return st.get_job(job_id)


def set_recurrence(job_id, spec: dict | None, *, actor: Actor) -> m.BatchJob:
    """Save the Recurrence dialog: the pattern, its sentence, and the job's next start.

    The job's scheduled start becomes the recurrence's first occurrence (the
    dialog's range start is the job's start); for a job that has run before,
    the first occurrence still to come. None removes the recurrence.
    """
    with write():
        job = st.get_job(job_id)
        changes: dict[str, Any]
        if spec is None:
            changes = {"recurrence": None, "recurrence_text": "", "recurrence_runs": 0}
        else:
            if isinstance(spec, dict):
                spec = {k: v for k, v in spec.items() if k != "text"}
            norm, text, first = jobfile.normalize_recurrence(spec, job.scheduled_start, job.time_zone,
                                                             job=_label(job))
            now = utcnow()
            if job.run_count and first < now:
                # A job that has run before is not run again for occurrences that
                # passed before this change: its next start is the next one to come
                # (and "end after N" counts the runs from here, not those occurrences).
                from . import recurrence
                from .calendars import closed_days_for

                first = recurrence.next_run(norm, job.time_zone, runs=0, ended=now,
                                            closed=closed_days_for(norm)) or first
            changes = {"recurrence": norm, "recurrence_text": text[:300], "scheduled_start": first,
                       "recurrence_runs": 0}
        _editable(job, actor, **changes)
        if job.recurrence != changes["recurrence"]:  # saved again unchanged: nothing to record
            audit.record(actor, job.id, "recurrence", "recurrence", job.recurrence_text or None,
                         changes["recurrence_text"] or None)
    _notify()
    return st.get_job(job_id)


def set_alert(job_id, *, actor: Actor, alert_user, ended=False, error=False, canceled=False, popup=False,
              email=False, notify=False, late=False) -> m.JobAlert:
    """Save the Alerts dialog for one user of one job; saving again replaces it.

    Anyone may subscribe themselves to any job; setting another user's
    alerts takes the right to manage the job.
    """
    with write():
        job = st.get_job(job_id)
        label = _label(job)
        alert_user = jobfile.check_user(alert_user, job=label, field="alerts.user")
        if alert_user != actor.user:
            st.check_can_manage(job, actor)
        flags = {}
        for name, value in (("ended", ended), ("error", error), ("canceled", canceled),
                            ("popup", popup), ("email", email), ("notify", notify),
                            ("late", late)):
            flags[name] = jobfile.check_bool(value, job=label, field=f"alerts.{name}")
        _check_mail(actor, alert_user, flags["email"], job=label, field="alerts.user")
        before = m.JobAlert.get_or_none((m.JobAlert.job == job_id) & (m.JobAlert.user == alert_user))
        m.JobAlert.delete().where((m.JobAlert.job == job_id) & (m.JobAlert.user == alert_user)).execute()
        row = m.JobAlert.create(job=job_id, user=alert_user, **flags)
        if _alert_flags(before) != _alert_flags(row):
            audit.record(actor, job.id, "alerts", alert_user, _alert_flags(before), _alert_flags(row))
    return row


# -- tasks ---------------------------------------------------------------------


def add_task(job_id, *, actor: Actor, description, class_name, params=None, company=None, batch_group="",
             ignore_failure=False, max_retries=0, condition_type="all", key=None,
             time_limit=None) -> m.BatchTask:
    """A new task of a job (the Batch tasks form's New)."""
    with write():
        job = st.get_job(job_id)
        _editable(job, actor)
        label = _label(job)
        description = jobfile.check_description(description, job=label)
        tlabel = q(description if key is None else key)
        if key is None:
            key = _unique_key(job.id, description)
        else:
            key = jobfile.check_key(key, job=label, task=tlabel)
            if _key_taken(job.id, key):
                raise FieldError(f"the job has a task with the key {q(key)} already", job=label,
                                 task=tlabel, field="key")
        tlabel = q(key)
        class_name, params = jobfile.check_class_params(class_name, {} if params is None else params,
                                                        job=label, task=tlabel)
        company = _company(job.company_id if company is None else company, job=label, task=tlabel)
        batch_group = _group("" if batch_group is None else batch_group, job=label, task=tlabel)
        ignore_failure = jobfile.check_bool(ignore_failure, job=label, task=tlabel, field="ignore_failure")
        max_retries = jobfile.check_max_retries(max_retries, job=label, task=tlabel)
        ctype = jobfile.check_condition_type(condition_type, job=label, task=tlabel)
        limit = (None if time_limit is None
                 else jobfile.check_seconds(time_limit, job=label, task=tlabel, field="time_limit"))
        task = m.BatchTask.create(
            job=job.id, key=key, description=description, company=company, class_name=class_name,
            params=params, batch_group=batch_group, status=_new_task_status(job),
            ignore_failure=ignore_failure, max_retries=max_retries, condition_type=int(ctype), version=1,
            time_limit=limit,
        )
        audit.record(actor, job.id, "task_added", key, None, {"description": description, "class": class_name})
    return _get_task(task.id)


def update_task(task_id, *, actor: Actor, version: int, **fields) -> m.BatchTask:
    """Save the task form; refused if the task was saved by someone else since `version`."""
    unknown = [f for f in fields if f not in TASK_FIELDS]
    if unknown:
        raise UserError(f"task {task_id}: unknown field {unknown[0]!r} (fields: {', '.join(TASK_FIELDS)})")
    with write():
        task = _get_task(task_id)
        job = st.get_job(task.job_id)
        _editable(job, actor)
        if int(version) != task.version:
            raise Conflict(_stale_task(task_id))
        label, tlabel = _label(job), _task_label(task)
        changes: dict[str, Any] = {}
        if "description" in fields:
            changes["description"] = jobfile.check_description(fields["description"], job=label, task=tlabel)
        if "key" in fields and fields["key"] is not None:
            key = jobfile.check_key(fields["key"], job=label, task=tlabel)
            if key != task.key and _key_taken(job.id, key, exclude=task.id):
                raise FieldError(f"the job has a task with the key {q(key)} already", job=label,
                                 task=tlabel, field="key")
            changes["key"] = key
        if "class_name" in fields or "params" in fields:
            class_name = fields.get("class_name", task.class_name)
            params = fields.get("params", task.params)
            class_name, params = jobfile.check_class_params(
                class_name, {} if params is None else params, job=label, task=tlabel)
            changes["class_name"], changes["params"] = class_name, params
        if "company" in fields:
            value = fields["company"]
            changes["company"] = _company(job.company_id if value is None else value, job=label, task=tlabel)
        if "batch_group" in fields:
            value = fields["batch_group"]
            changes["batch_group"] = _group("" if value is None else value, job=label, task=tlabel)
        if "ignore_failure" in fields:
            changes["ignore_failure"] = jobfile.check_bool(fields["ignore_failure"], job=label, task=tlabel,
                                                           field="ignore_failure")
        if "max_retries" in fields:
            changes["max_retries"] = jobfile.check_max_retries(fields["max_retries"], job=label, task=tlabel)
        if "condition_type" in fields:
            changes["condition_type"] = int(jobfile.check_condition_type(fields["condition_type"], job=label,
                                                                         task=tlabel))
        if "time_limit" in fields:
            value = fields["time_limit"]
            changes["time_limit"] = (None if value is None
                                     else jobfile.check_seconds(value, job=label, task=tlabel, field="time_limit"))
        changes["version"] = m.BatchTask.version + 1
        done = m.BatchTask.update(**changes).where(
            (m.BatchTask.id == task_id) & (m.BatchTask.version == task.version)).execute()
        if not done:
            raise Conflict(_stale_task(task_id))
        audit.record_changes(actor, job.id, "task_changed", _task_values(task), _task_values(_get_task(task_id)),
                             prefix=f"{task.key}.")
    return _get_task(task_id)


def delete_task(task_id, *, actor: Actor) -> None:
    """Delete a task; the conditions on it and its own go with it."""
    with write():
        task = _get_task(task_id)
        job = st.get_job(task.job_id)
        _editable(job, actor)
        audit.record(actor, job.id, "task_deleted", task.key, {"description": task.description,
                                                               "class": task.class_name}, None)
        m.BatchTask.delete().where(m.BatchTask.id == task_id).execute()


def add_condition(task_id, *, actor: Actor, parent_id, expected="ended") -> m.BatchConstraint:
    """A row of the Has conditions grid: the task waits for its parent to reach `expected`."""
    with write():
        task = _get_task(task_id)
        job = st.get_job(task.job_id)
        _editable(job, actor)
        label, tlabel = _label(job), _task_label(task)
        field = "conditions.task"
        expected = jobfile.check_condition_status(expected, job=label, task=tlabel, field="conditions.status")
        parent = m.BatchTask.get_or_none(m.BatchTask.id == parent_id) if m.storable_id(parent_id) else None
        if parent is None or parent.job_id != job.id:
            raise FieldError(f"no task {parent_id} in this job", job=label, task=tlabel, field=field)
        if parent.id == task.id:
            raise FieldError("a task cannot depend on itself", job=label, task=tlabel, field=field)
        exists = m.BatchConstraint.select().where(
            (m.BatchConstraint.task == task.id) & (m.BatchConstraint.parent == parent.id)).exists()
        if exists:
            raise FieldError(f"the task has a condition on task {q(parent.key)} already", job=label,
                             task=tlabel, field=field)
        graph = _condition_graph(job.id)
        graph.setdefault(task.id, []).append(parent.id)
        cycle = jobfile.find_cycle(graph)
        if cycle:
            keys = {t.id: t.key for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.key)
                    .where(m.BatchTask.job == job.id)}
            raise FieldError("conditions would form a cycle: " + " -> ".join(q(keys[i]) for i in cycle),
                             job=label, task=tlabel, field=field)
        row = m.BatchConstraint.create(task=task.id, parent=parent.id, expected=int(expected))
        audit.record(actor, job.id, "condition_added", task.key, None,
                     {"task": parent.key, "status": ConditionStatus(expected).cli})
    return row


def _condition_graph(job_id: int) -> dict[int, list[int]]:
    graph: dict[int, list[int]] = {t.id: [] for t in m.BatchTask.select(m.BatchTask.id)
                                   .where(m.BatchTask.job == job_id).order_by(m.BatchTask.id)}
    for c in (m.BatchConstraint.select(m.BatchConstraint.task, m.BatchConstraint.parent)
              .join(m.BatchTask, on=(m.BatchConstraint.task == m.BatchTask.id))
              .where(m.BatchTask.job == job_id).order_by(m.BatchConstraint.id)):
        graph.setdefault(c.task_id, []).append(c.parent_id)
    return graph


def delete_condition(condition_id, *, actor: Actor) -> None:
    with write():
        row = (m.BatchConstraint.get_or_none(m.BatchConstraint.id == condition_id)
               if m.storable_id(condition_id) else None)
        if row is None:
            raise NotFound(f"condition {condition_id}: no such condition")
        task = _get_task(row.task_id)
        job = st.get_job(task.job_id)
        _editable(job, actor)
        audit.record(actor, job.id, "condition_deleted", task.key, _condition_value(row), None)
        m.BatchConstraint.delete().where(m.BatchConstraint.id == condition_id).execute()


# -- job files -------------------------------------------------------------------


def import_jobs(data, *, actor: Actor) -> list[dict]:
    """Create the jobs of a job file (text or parsed JSON), all of them or none.

    Returns [{"id": N, "tasks": {"KEY": TASK_ID, ...}}, ...] in file order.
    """
    if isinstance(data, (str, bytes)):
        data = jobfile.load_text(data)
    specs = jobfile.parse_jobs(data)
    for spec in specs:
        for i, a in enumerate(spec.alerts):
            _check_mail(actor, a.user, a.email, job=spec.label, field=f"alerts[{i}].user")
    now = utcnow()
    created: list[dict] = []
    default_company = actor.default_company
    with write():
        for spec in specs:
            company = _company(default_company if spec.company is None else spec.company, default=default_company,
                               job=spec.label)
            for t in spec.tasks:
                t.company = _company(company if t.company is None else t.company, job=spec.label,
                                     task=q(t.key))
                _group(t.batch_group, job=spec.label, task=q(t.key))
            job = m.BatchJob.create(
                description=spec.description, company=company, scheduled_start=spec.scheduled_start,
                time_zone=spec.time_zone, status=int(spec.status), priority=int(spec.priority),
                recurrence=spec.recurrence, recurrence_text=spec.recurrence_text[:300],
                created_by=actor.user, run_by=actor.user, created=now, modified=now, version=1,
                active_period=_period(spec.active_period, job=spec.label), late_after=spec.late_after,
            )
            ids: dict[str, int] = {}
            for t in spec.tasks:
                ids[t.key] = m.BatchTask.create(
                    job=job.id, key=t.key, description=t.description, company=t.company,
                    class_name=t.class_name, params=t.params, batch_group=t.batch_group,
                    status=int(spec.status), ignore_failure=t.ignore_failure, max_retries=t.max_retries,
                    condition_type=int(t.condition_type), version=1, time_limit=t.time_limit,
                ).id
            for t in spec.tasks:
                for c in t.conditions:
                    m.BatchConstraint.create(task=ids[t.key], parent=ids[c.task], expected=int(c.status))
            for a in spec.alerts:
                m.JobAlert.create(job=job.id, user=a.user, ended=a.ended, error=a.error,
                                  canceled=a.canceled, popup=a.popup, email=a.email, notify=a.notify, late=a.late)
            audit.record(actor, job.id, "created", None, None, spec.description)
            created.append({"id": job.id, "tasks": ids})
    if any(s.status == BatchStatus.WAITING for s in specs):
        _notify()
    return created


def run_dict(run: m.JobRun | None, tz: str) -> dict | None:
    if run is None:
        return None
    return {"run": run.run_no, "status": BatchStatus(run.status).cli, "scheduled": iso_scheduled(run.scheduled, tz),
            "started": iso(run.started, tz), "ended": iso(run.ended, tz), "server": run.server}


def seconds_json(value: float | None) -> float | int | None:
    """Seconds as a job file writes them: a whole number as one (30, not 30.0)."""
    return None if value is None else (int(value) if value == int(value) else value)


def export_job(job_id) -> dict:
    """The job as a job file object, plus its run-time fields (id, status, last run, task ids,
    each task's waiting reason)."""
    from .waiting import job_reasons

    job = st.get_job(job_id)
    tz = job.time_zone
    tasks = list(m.BatchTask.select().where(m.BatchTask.job == job.id).order_by(m.BatchTask.id))
    reasons = job_reasons(job, tasks)
    keys = {t.id: t.key for t in tasks}
    conditions: dict[int, list[dict]] = {t.id: [] for t in tasks}
    for c in (m.BatchConstraint.select().where(m.BatchConstraint.task << list(keys))
              .order_by(m.BatchConstraint.id)):
        conditions[c.task_id].append({"task": keys[c.parent_id], "status": ConditionStatus(c.expected).cli})
    last = (m.JobRun.select().where(m.JobRun.job == job.id).order_by(m.JobRun.run_no.desc()).first())
    recurrence = None
    if job.recurrence is not None:
        recurrence = dict(job.recurrence)
        recurrence["text"] = job.recurrence_text
    alerts = [{"user": a.user, "ended": a.ended, "error": a.error, "canceled": a.canceled,
               "popup": a.popup, "email": a.email, "notify": a.notify, "late": a.late}
              for a in m.JobAlert.select().where(m.JobAlert.job == job.id).order_by(m.JobAlert.user)]
    return {
        "id": job.id,
        "description": job.description,
        "company": job.company_id,
        "scheduled_start": iso_scheduled(job.scheduled_start, tz),
        "time_zone": tz,
        "status": BatchStatus(job.status).cli,
        "priority": Priority(job.priority).cli,
        "active_period": job.active_period,
        "late_after": seconds_json(job.late_after),
        "recurrence": recurrence,
        "alerts": alerts,
        "created_by": job.created_by,
        "run_by": job.run_by,
        "version": job.version,
        "last_run": run_dict(last, tz),
        "tasks": [
            {
                "id": t.id,
                "key": t.key,
                "description": t.description,
                "class": t.class_name,
                "params": t.params or {},
                "company": t.company_id,
                "batch_group": t.batch_group,
                "ignore_failure": t.ignore_failure,
                "max_retries": t.max_retries,
                "time_limit": seconds_json(t.time_limit),
                "condition_type": ConditionType(t.condition_type).cli,
                "conditions": conditions[t.id],
                "status": BatchStatus(t.status).cli,
                "retries_used": t.retries_used,
                "waiting_reason": reasons[t.id],
                "kept": t.kept,
            }
            for t in tasks
        ],
    }


def copy_job(job_id, *, actor: Actor, description=None, start=None, company=None, keep_recurrence=True,
             keep_alerts=True) -> m.BatchJob:
    """Copy batch job: tasks, conditions, alerts and recurrence come along; the copy is Withhold.

    The copy belongs to (and runs as) the user who makes it. With `start`,
    the copy's recurrence starts there too. As in the ERP's Copy dialog, the
    copy may go to another `company` (the job's, and its tasks' that ran in the
    job's company), and leave out the recurrence or the alerts.
    """
    now = utcnow()
    with write():
        job = st.get_job(job_id)
        label = _label(job)
        new_description = job.description if description is None else jobfile.check_description(
            description, job=label)
        new_company = job.company_id
        if company is not None and company != job.company_id:
            new_company = _company(company, job=label)
        scheduled = job.scheduled_start
        recurrence: Any = job.recurrence if keep_recurrence else None
        text: Any = job.recurrence_text if keep_recurrence else ""
        if start is not None:
            scheduled = jobfile.check_time(start, job.time_zone, job=label, field="scheduled_start")
            if recurrence is not None:
                spec = {k: v for k, v in recurrence.items() if k not in ("start", "text")}
                recurrence, text, scheduled = jobfile.normalize_recurrence(spec, scheduled, job.time_zone,
                                                                           job=label)
        copy = m.BatchJob.create(
            description=new_description, company=new_company, scheduled_start=scheduled,
            time_zone=job.time_zone, status=int(BatchStatus.HOLD), priority=job.priority,
            recurrence=recurrence, recurrence_text=text, created_by=actor.user, run_by=actor.user,
            created=now, modified=now, version=1, active_period=job.active_period, late_after=job.late_after,
        )
        ids: dict[int, int] = {}
        for t in m.BatchTask.select().where(m.BatchTask.job == job.id).order_by(m.BatchTask.id):
            ids[t.id] = m.BatchTask.create(
                job=copy.id, key=t.key, description=t.description,
                company=new_company if t.company_id == job.company_id else t.company_id,
                class_name=t.class_name, params=t.params, batch_group=t.batch_group,
                status=int(BatchStatus.HOLD), ignore_failure=t.ignore_failure, max_retries=t.max_retries,
                condition_type=t.condition_type, version=1, time_limit=t.time_limit,
            ).id
        for c in (m.BatchConstraint.select().where(m.BatchConstraint.task << list(ids))
                  .order_by(m.BatchConstraint.id)):
            m.BatchConstraint.create(task=ids[c.task_id], parent=ids[c.parent_id], expected=c.expected)
        alerts = m.JobAlert.select().where(m.JobAlert.job == job.id) if keep_alerts else []
        for a in alerts:
            _check_mail(actor, a.user, a.email, job=label, field="alerts.user")
            m.JobAlert.create(job=copy.id, user=a.user, ended=a.ended, error=a.error, canceled=a.canceled,
                              popup=a.popup, email=a.email, notify=a.notify, late=a.late)
        audit.record(actor, copy.id, "created", "copy_of", None, job.id)
    return st.get_job(copy.id)


# -- history and lists -------------------------------------------------------------


def list_jobs_query(status=None, *, company=None, user=None, limit=None) -> Any:
    """The one query of list_jobs (validated filters); its plan is checked by a test."""
    j, r = m.BatchJob, m.JobRun
    query = (j.select(j.id, j.status, j.scheduled_start, j.time_zone, j.description, j.company, j.created_by,
                      r.status.alias("last_status"))
             .join(r, JOIN.LEFT_OUTER, on=((r.job == j.id) & (r.run_no == j.run_count)))
             .order_by(j.id))
    if status is not None:
        if not isinstance(status, BatchStatus):
            try:
                status = BatchStatus.from_cli(status)
            except ValueError:
                raise FieldError(f"{q(status)} is not one of {', '.join(s.cli for s in BatchStatus)}",
                                 field="status") from None
        query = query.where(j.status == int(status))
    if company is not None:
        query = query.where(j.company == jobfile.check_company_id(company, field="company"))
    if user is not None:
        query = query.where(j.created_by == jobfile.check_user(user, field="user"))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise FieldError(f"expected a whole number of at least 1, got {q(str(limit))}", field="limit")
        query = query.limit(limit)
    return query


def list_jobs(status=None, *, company=None, user=None, limit=None) -> list[dict]:
    """`job list --json`: id, status, scheduled_start, description, company, created_by, next_run,
    last_run_status; by job ID, the first `limit` of them.

    One query whatever the number of jobs: the last run is joined by (job, run number), the
    job's run count being its last run's number; ``--company`` and ``--user`` read the
    (company, id) and (created_by, id) indexes (migrations/v8). next_run is the scheduled
    start of a Waiting job (the time its next run is due), None otherwise.
    """
    query = list_jobs_query(status, company=company, user=user, limit=limit)
    rows = []
    for job_id, st_, start, tz, description, company_id, created_by, last_status in m.tuples(query):
        rows.append({"id": job_id, "status": BatchStatus(st_).cli, "scheduled_start": iso_scheduled(start, tz),
                     "description": description, "company": company_id, "created_by": created_by,
                     "next_run": iso_scheduled(start, tz) if st_ == BatchStatus.WAITING else None,
                     "last_run_status": None if last_status is None else BatchStatus(last_status).cli})
    return rows
