"""Putting benchmark jobs straight into the tables, fast.

The benchmarks measure the batch server and the console, not the job
service: jobs, tasks and history go in with multi-row inserts through the
database driver (``executemany``) inside one transaction, before any clock
starts. Columns not given take the model's default, so a new column with a
default needs no change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from peewee import AutoField, fn

from batchtui import models as m
from batchtui.db import is_postgres, open_database, write
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus, ConditionStatus, ConditionType

CHUNK = 5000


def open_db(url: str):
    """Open (and migrate) the database of url; make sure the companies used here exist."""
    db = open_database(url)
    with write():
        for cid, name in (("DAT", "Default company"), ("USMF", "Contoso Entertainment System USA")):
            m.Company.get_or_create(id=cid, defaults={"name": name})
    return db


def _defaults(model, given: Iterable[str]) -> tuple[dict, dict[str, object]]:
    """The model's fields by name, and the database values of the defaults of those not given.

    A field with neither a value given nor a default nor NULL allowed is an error."""
    named = set(given)
    fields = {f.name: f for f in model._meta.sorted_fields}
    constants: dict[str, object] = {}
    for name, f in fields.items():
        if name in named or isinstance(f, AutoField):
            continue
        if f.default is not None:
            constants[name] = f.db_value(f.default() if callable(f.default) else f.default)
        elif not f.null:
            raise ValueError(f"{model.__name__}.{name} needs a value")
    return fields, constants


def insert_rows(model, rows: Sequence[dict], chunk: int = CHUNK) -> None:
    """INSERT rows (dicts by field name, all with the same keys) with executemany."""
    if not rows:
        return
    given = list(rows[0].keys())
    fields, constants = _defaults(model, given)
    db = m.database
    names = given + list(constants)
    columns = ", ".join(f'"{fields[n].column_name}"' for n in names)  # SQLite and PostgreSQL quoting
    marks = ", ".join([db.param] * len(names))
    sql = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks})'
    convert = [fields[n].db_value for n in given]
    tail = tuple(constants.values())
    with write():
        cursor = db.cursor()
        for start in range(0, len(rows), chunk):
            batch = [tuple(c(row[n]) for c, n in zip(convert, given, strict=True)) + tail
                     for row in rows[start:start + chunk]]
            cursor.executemany(sql, batch)


def insert_select(model, exprs: dict[str, str], tail_sql: str) -> None:
    """INSERT INTO model (the fields of exprs, then every other field with a default) SELECT ... tail_sql.

    exprs maps a field name to an SQL expression over the FROM clause in tail_sql; the
    fields not named take their model default (as parameters), like insert_rows. For
    millions of rows the database makes them itself: no Python object per row.
    """
    fields, constants = _defaults(model, exprs)
    db = m.database
    columns = ", ".join(f'"{fields[n].column_name}"' for n in list(exprs) + list(constants))
    values = ", ".join(list(exprs.values()) + [db.param] * len(constants))
    with write():
        db.execute_sql(f'INSERT INTO "{model._meta.table_name}" ({columns}) SELECT {values} {tail_sql}',
                       tuple(constants.values()))


def next_ids(model, count: int) -> range:
    """Ids for rows inserted with explicit ids (so tasks can name their job)."""
    first = (model.select(fn.MAX(model.id)).scalar() or 0) + 1
    return range(first, first + count)


def sync_sequence(model) -> None:
    """After explicit ids on PostgreSQL, move the id sequence past them."""
    if is_postgres():
        table = model._meta.table_name
        m.database.execute_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


def job_row(job_id: int, due: datetime, status: int, description: str, now: datetime,
            company: str = "DAT", **extra) -> dict:
    row = dict(id=job_id, description=description, company=company, scheduled_start=due, time_zone="UTC",
               status=status, created_by="bench", run_by="bench", created=now, modified=now)
    row.update(extra)
    return row


def task_row(task_id: int, job_id: int, key: str, status: int, class_name: str = "Noop",
             params: dict | None = None, company: str = "DAT", **extra) -> dict:
    row = dict(id=task_id, job=job_id, key=key, description=key, company=company, class_name=class_name,
               params=params or {}, status=status)
    row.update(extra)
    return row


def add_jobs(due: Iterable[datetime], tasks_per_job: int = 1, class_name: str = "Noop",
             params: dict | None = None, status: int = BatchStatus.WAITING,
             description: str = "bench job") -> list[int]:
    """One job per due time, each with tasks_per_job independent tasks. Returns the job ids."""
    due = list(due)
    now = utcnow()
    job_ids = list(next_ids(m.BatchJob, len(due)))
    task_ids = iter(next_ids(m.BatchTask, len(due) * tasks_per_job))
    jobs = [job_row(jid, when, status, f"{description} {jid}", now) for jid, when in zip(job_ids, due, strict=True)]
    tasks = [task_row(next(task_ids), jid, f"t{i + 1}", status, class_name, params)
             for jid in job_ids for i in range(tasks_per_job)]
    insert_rows(m.BatchJob, jobs)
    insert_rows(m.BatchTask, tasks)
    sync_sequence(m.BatchJob)
    sync_sequence(m.BatchTask)
    return job_ids


def add_job_with_conditions(tasks: list[dict], due: datetime | None = None,
                            status: int = BatchStatus.WAITING) -> tuple[int, dict[str, int]]:
    """One job whose tasks have conditions.

    tasks: [{"key": "b", "after": ["a"], "class_name": "Noop", "params": {}, "max_retries": 0}];
    every condition expects its parent to have Ended, and all must be met (All).
    Returns the job id and the task ids by key.
    """
    now = utcnow()
    (job_id,) = next_ids(m.BatchJob, 1)
    ids = dict(zip((t["key"] for t in tasks), next_ids(m.BatchTask, len(tasks)), strict=True))
    insert_rows(m.BatchJob, [job_row(job_id, due or now, status, "bench job with conditions", now)])
    insert_rows(m.BatchTask, [
        task_row(ids[t["key"]], job_id, t["key"], status, t.get("class_name", "Noop"), t.get("params"),
                 max_retries=t.get("max_retries", 0), condition_type=int(ConditionType.ALL))
        for t in tasks])
    insert_rows(m.BatchConstraint, [
        dict(task=ids[t["key"]], parent=ids[parent], expected=int(ConditionStatus.ENDED))
        for t in tasks for parent in t.get("after", [])])
    sync_sequence(m.BatchJob)
    sync_sequence(m.BatchTask)
    return job_id, ids
