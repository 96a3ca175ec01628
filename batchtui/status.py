"""The status machine: statuses, allowed transitions and the job outcome.

Every status write in batchtui goes through this module: the engine, the
command line and the console call it; nothing else assigns a status.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from peewee import PostgresqlDatabase, __exception_wrapper__

from . import models as m
from .errors import NotAllowed, NotFound, Refused
from .timeutil import utcnow


from .vocabulary import (  # noqa: F401  (moving to vocabulary)
    ACTIVE_TASK, EVENT_OF, JOB_FINAL, RUNNING_JOB, TASK_FINAL, BatchStatus, ConditionStatus, ConditionType,
    Priority,
)


def evaluate_conditions(condition_type: int, pairs) -> bool | None:
    """Whether a dependent task can run, from (expected, parent status) pairs.

    True: run it now. False: it can never run (Didn't run). None: wait.
    A task with no conditions is ready at once.
    """
    pairs = list(pairs)
    if not pairs:
        return True
    met = [ConditionStatus(e).met_by(p) for e, p in pairs]
    dead = [p in TASK_FINAL and not m for (e, p), m in zip(pairs, met)]
    if condition_type == ConditionType.ANY:
        if any(met):
            return True
        if all(dead):
            return False
        return None
    if any(dead):
        return False
    if all(met):
        return True
    return None


# ---------------------------------------------------------------------------
# Transitions. Each function runs in its own write transaction (db.write()),
# or inside the caller's when one is open, and guards every change with a
# compare-and-set on the status it read, so two processes never both win.
# ---------------------------------------------------------------------------

def _write():
    from .db import write

    return write()


def _pg() -> bool:
    # Called for every statement of the batch server: no import, one isinstance.
    return isinstance(m.database.obj, PostgresqlDatabase)


def get_job(job_id: int) -> m.BatchJob:
    job = m.BatchJob.get_or_none(m.BatchJob.id == job_id)
    if job is None:
        raise NotFound(f"job {job_id}: no such batch job")
    return job


def check_can_manage(job: m.BatchJob, user: str, managers) -> None:
    """Only the job's owner or a batch job manager may change, cancel or delete it."""
    if user == job.created_by:
        return
    if managers is not None and ("*" in managers or user in managers):
        return
    raise NotAllowed(
        f"job {job.id}: user {user!r} may not change it (only its owner "
        f"{job.created_by!r} or a batch job manager may)"
    )


def initial_job_status(requested: str | None) -> BatchStatus:
    """A new job starts in Withhold unless the file asks for Waiting."""
    if requested in (None, "withhold"):
        return BatchStatus.HOLD
    if requested == "waiting":
        return BatchStatus.WAITING
    raise ValueError(requested)


def _bump(job_id: int, **changes) -> int:
    changes.setdefault("modified", utcnow())
    changes["version"] = m.BatchJob.version + 1
    return m.BatchJob.update(**changes).where(m.BatchJob.id == job_id).execute()


def set_job_status(job_id: int, target: BatchStatus, user: str, managers=None) -> m.BatchJob:
    """Change status: Withhold (stop) or Waiting (go)."""
    target = BatchStatus(target)
    if target not in (BatchStatus.HOLD, BatchStatus.WAITING):
        raise Refused(f"job {job_id}: status can be changed by hand to Withhold or Waiting only")
    with _write():
        job = get_job(job_id)
        check_can_manage(job, user, managers)
        current = BatchStatus(job.status)
        if current in RUNNING_JOB:
            raise Refused(
                f"job {job_id} is {current.label}: it cannot be set to {target.label} "
                "while it runs (cancel it first)"
            )
        if current != target:
            changed = (
                m.BatchJob.update(status=target, modified=utcnow(), version=m.BatchJob.version + 1)
                .where((m.BatchJob.id == job_id) & (m.BatchJob.status == current))
                .execute()
            )
            if not changed:
                raise Refused(f"job {job_id} changed status meanwhile; try again")
            if current in (BatchStatus.HOLD, BatchStatus.WAITING) or current in JOB_FINAL:
                m.BatchTask.update(status=target).where(m.BatchTask.job == job_id).execute()
    _notify()
    return get_job(job_id)


def cancel_job(job_id: int, user: str, managers=None) -> m.BatchJob:
    """Change status to Canceling: nothing new starts, running tasks are stopped."""
    with _write():
        job = get_job(job_id)
        check_can_manage(job, user, managers)
        current = BatchStatus(job.status)
        if current in (BatchStatus.HOLD, BatchStatus.WAITING):
            m.BatchJob.update(status=BatchStatus.CANCELED, modified=utcnow(),
                              version=m.BatchJob.version + 1).where(
                (m.BatchJob.id == job_id) & (m.BatchJob.status == current)).execute()
            m.BatchTask.update(status=BatchStatus.CANCELED).where(m.BatchTask.job == job_id).execute()
        elif current == BatchStatus.EXECUTING:
            _bump(job_id, status=BatchStatus.CANCELLING)
            m.BatchTask.update(status=BatchStatus.NOT_RUN).where(
                (m.BatchTask.job == job_id)
                & (m.BatchTask.status << [BatchStatus.WAITING, BatchStatus.READY])).execute()
            m.BatchTask.update(status=BatchStatus.CANCELLING).where(
                (m.BatchTask.job == job_id) & (m.BatchTask.status == BatchStatus.EXECUTING)).execute()
            _complete_if_done(job_id, utcnow())
        elif current == BatchStatus.CANCELLING:
            raise Refused(f"job {job_id} is already Canceling")
        else:
            raise Refused(f"job {job_id} is {current.label}: there is nothing to cancel")
    _notify()
    return get_job(job_id)


def delete_job(job_id: int, user: str, managers=None) -> None:
    with _write():
        job = get_job(job_id)
        check_can_manage(job, user, managers)
        current = BatchStatus(job.status)
        if current in RUNNING_JOB:
            raise Refused(f"job {job_id} is {current.label}: cancel it before deleting it")
        m.BatchJob.delete().where(m.BatchJob.id == job_id).execute()


# -- the batch server's side -------------------------------------------------


def retry_delay(retry: int, base: float) -> float:
    """Wait base x 2^(n-1) before retry n, capped at 300 s; base 0 retries at once."""
    if base <= 0:
        return 0.0
    return min(300.0, base * (2 ** (retry - 1)))


# The batch server's hot path is written in plain SQL: building the same
# statements through the ORM cost ten times the database work itself. The
# statements use "?" placeholders; _sql() turns them into PostgreSQL's.

_SQL_CACHE: dict[str, str] = {}

_ACTIVE = ",".join(str(int(s)) for s in ACTIVE_TASK)
# Plain ints for the statement parameters of the hot path (an IntEnum member
# goes through int() for every row otherwise).
_WAITING, _READY, _EXECUTING = int(BatchStatus.WAITING), int(BatchStatus.READY), int(BatchStatus.EXECUTING)
_CANCELLING, _CANCELED = int(BatchStatus.CANCELLING), int(BatchStatus.CANCELED)
_FINISHED, _ERROR = int(BatchStatus.FINISHED), int(BatchStatus.ERROR)
_RUNNING_TASK = (_EXECUTING, _CANCELLING)


def _sql(text: str) -> str:
    if not _pg():
        return text
    out = _SQL_CACHE.get(text)
    if out is None:
        out = _SQL_CACHE[text] = text.replace("?", "%s")
    return out


def _x(text: str, params=()):
    # The driver's cursor straight away (peewee's execute_sql adds query
    # logging and hooks the batch server does not use), with peewee's
    # exception types all the same.
    with __exception_wrapper__:
        cursor = m.database.obj.cursor()
        cursor.execute(_sql(text), params)
    return cursor


def _many(text: str, rows: list) -> int:
    """executemany; returns how many rows it changed."""
    if not rows:
        return 0
    with __exception_wrapper__:
        cursor = m.database.obj.cursor()
        cursor.executemany(_sql(text), rows)
    return cursor.rowcount


_MARKED: dict[tuple[str, int], str] = {}


def _marked(template: str, n: int) -> str:
    """template with "{in}" replaced by n placeholders, made once per (template, n).

    The same string object every time: its hash is kept, and the driver's
    statement cache (keyed by the text) finds it at once.
    """
    key = (template, n)
    out = _MARKED.get(key)
    if out is None:
        out = _MARKED[key] = template.replace("{in}", ",".join("?" * n))
    return out


def _when(value: datetime | None):
    """A time as a statement parameter.

    On SQLite the text db._adapt_datetime would make of it, made here once
    for a time that many rows share (the round's "now") rather than by the
    driver for every row.
    """
    if value is None or _pg():
        return value
    return value.isoformat(" ", "microseconds")


def _in(values) -> str:
    return ",".join("?" * len(values))


def _chunks(values, size: int = 500):
    values = list(values)
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _dt(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _insert_ids(text: str, table: str, rows: list[tuple]) -> list[int]:
    """Insert rows (the statement's first column is the id) and return their ids.

    SQLite: the write lock is held (BEGIN IMMEDIATE), so the ids after the
    current maximum are ours to give, in one executemany. PostgreSQL: each
    row takes its id from the sequence (RETURNING).
    """
    if not rows:
        return []
    if _pg():
        columns = text[text.index("(") + 1:text.index(")")].split(", ")[1:]
        values = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) RETURNING id"
        return [_x(sql, row).fetchone()[0] for row in rows]
    first = _x(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0]
    ids = list(range(first, first + len(rows)))
    _many(text, [(i, *row) for i, row in zip(ids, rows)])
    return ids


def _many_exactly(text: str, rows: list) -> None:
    """executemany of compare-and-set updates that must all apply (rows are locked)."""
    _exactly(_many(text, rows), len(rows))


def _exactly(changed: int, expected: int) -> None:
    if changed != expected:
        raise RuntimeError(f"{changed} of {expected} rows changed meanwhile; the round is retried")


def start_due_jobs(server: str, now: datetime | None = None, limit: int = 256) -> list[int]:
    """Start the runs of Waiting jobs whose time has come, highest priority first.

    Set-based: a few statements however many jobs start, none per job (the
    run rows are copied from the jobs, the jobs point at them in SQL).
    """
    now = now or utcnow()
    with _write():
        started = _due_jobs(now, limit)
        at = _when(now)
        for ids in _chunks(started):
            marks = _in(ids)
            _x("INSERT INTO job_run (job_id, run_no, scheduled, started, status, server) "
               f"SELECT id, run_count + 1, scheduled_start, ?, {int(BatchStatus.EXECUTING)}, ? "
               f"FROM batch_job WHERE id IN ({marks})", (at, server, *ids))
            # A SET expression sees the row as it was: run_count + 1 is the new
            # run's number. "+status": by id only (SQLite would otherwise walk
            # the status index over every Waiting job).
            _exactly(_x(
                f"UPDATE batch_job SET status = {int(BatchStatus.EXECUTING)}, run_count = run_count + 1, "
                "modified = ?, current_run = (SELECT r.id FROM job_run r WHERE r.job_id = batch_job.id "
                "AND r.run_no = batch_job.run_count + 1) "
                f"WHERE id IN ({marks}) AND +status = {int(BatchStatus.WAITING)}", (at, *ids)).rowcount, len(ids))
            # Every task starts the run Waiting, carrying its job's priority and
            # start so that claiming Ready tasks walks one index in order.
            # A task without conditions is Ready at once, the others wait.
            _x(
                "UPDATE batch_task SET status = CASE WHEN EXISTS "
                "(SELECT 1 FROM batch_constraint c WHERE c.task_id = batch_task.id) THEN ? ELSE ? END, "
                "retries_used = 0, attempts = 0, not_before = NULL, server = NULL, attempt = NULL, "
                "job_priority = (SELECT j.priority FROM batch_job j WHERE j.id = batch_task.job_id), "
                "job_start = (SELECT j.scheduled_start FROM batch_job j WHERE j.id = batch_task.job_id) "
                f"WHERE job_id IN ({marks})",
                (int(BatchStatus.WAITING), int(BatchStatus.READY), *ids),
            )
            empty = [r[0] for r in _x(
                f"SELECT j.id FROM batch_job j WHERE j.id IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM batch_task t WHERE t.job_id = j.id)", ids)]
            if empty:
                _finalize(empty, now)
    return started


def _due_jobs(now: datetime, limit: int) -> list[int]:
    """The Waiting jobs due by now, highest priority first, then by start (locked on PostgreSQL).

    One priority at a time, each an index range (db._migration_3): a single
    ORDER BY priority, start would read and sort every due job, or walk every
    Waiting job of a higher priority that is not due yet.
    """
    waiting = int(BatchStatus.WAITING)
    # SQLite's planner, without statistics, prefers the (status, start) index.
    jobs = "batch_job" if _pg() else "batch_job INDEXED BY batch_job_due"
    at = _when(now)
    out: list[int] = []
    priority = None
    while len(out) < limit:
        below = "" if priority is None else f" AND priority < {int(priority)}"
        row = _x(f"SELECT priority FROM {jobs} WHERE status = {waiting}{below} "
                 "ORDER BY priority DESC LIMIT 1").fetchone()
        if row is None:
            break
        priority = row[0]
        out += [r[0] for r in _x(
            f"SELECT id FROM {jobs} WHERE status = {waiting} AND priority = ? AND scheduled_start <= ? "
            "ORDER BY scheduled_start, id LIMIT ?" + (" FOR UPDATE SKIP LOCKED" if _pg() else ""),
            (priority, at, limit - len(out)))]
    return out


def next_due(now: datetime | None = None) -> datetime | None:
    """When the next Waiting job or pending retry becomes due (for the server's timer)."""
    job = _x("SELECT MIN(scheduled_start) FROM batch_job WHERE status = ?",
             (int(BatchStatus.WAITING),)).fetchone()[0]
    retry = _x("SELECT MIN(not_before) FROM batch_task WHERE status = ? AND not_before IS NOT NULL",
               (int(BatchStatus.READY),)).fetchone()[0]
    times = [_dt(t) for t in (job, retry) if t is not None]
    return min(times) if times else None


def served_groups(server: str) -> list[str]:
    """The batch groups a server runs: those mapped to it, and the Empty group
    unless the Empty group is mapped to particular servers."""
    mapped = [g for (g,) in m.BatchGroupServer.select(m.BatchGroupServer.group)
              .where(m.BatchGroupServer.server == server).tuples()]
    empty_mapped = m.BatchGroupServer.select().where(m.BatchGroupServer.group == "").exists()
    groups = set(mapped)
    if not empty_mapped:
        groups.add("")
    return sorted(groups)


@dataclass(slots=True)
class Claimed:
    """A task attempt handed to a worker thread."""

    task_id: int
    attempt_id: int
    attempt: int
    job_id: int
    run_id: int
    class_name: str
    params: dict
    company: str
    run_by: str
    description: str = ""


def claim_ready_tasks(server: str, groups: list[str], limit: int, now: datetime | None = None) -> list[Claimed]:
    """Move up to limit Ready tasks of the given groups to Executing for this server.

    Highest job priority first, then the job's scheduled start, then task ID.
    """
    if limit <= 0 or not groups:
        return []
    now = now or utcnow()
    at = _when(now)
    with _write():
        rows = _x(_marked(_CLAIM_PG if _pg() else _CLAIM, len(groups)), (at, *groups, limit)).fetchall()
        if not rows:
            return []
        attempt_ids = _insert_ids(
            "INSERT INTO task_attempt (id, run_id, task_id, attempt, status, started, server, log) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", "task_attempt",
            [(r[8], r[0], r[4] + 1, _EXECUTING, at, server, "") for r in rows],
        )
        _many_exactly(
            "UPDATE batch_task SET status = ?, server = ?, attempt = ?, attempts = ? WHERE id = ? AND status = ?",
            [(_EXECUTING, server, aid, r[4] + 1, r[0], _READY) for aid, r in zip(attempt_ids, rows)],
        )
    return [Claimed(tid, attempt_id, attempts + 1, job_id, run_id, class_name, _params(params), company, run_by,
                    description)
            for attempt_id, (tid, class_name, params, company, attempts, description, job_id, run_by, run_id)
            in zip(attempt_ids, rows)]


_CLAIM = (
    "SELECT t.id, t.class_name, t.params, t.company_id, t.attempts, t.description, t.job_id, "
    "j.run_by, j.current_run FROM batch_task t JOIN batch_job j ON j.id = t.job_id "
    # The literal status lets the planner use the partial index.
    f"WHERE t.status = {int(BatchStatus.READY)} AND (t.not_before IS NULL OR t.not_before <= ?) "
    "AND t.batch_group IN ({in}) "
    "ORDER BY t.job_priority DESC, t.job_start, t.id LIMIT ?")
_CLAIM_PG = _CLAIM + " FOR UPDATE OF t SKIP LOCKED"


def _params(text) -> dict:
    return _json.loads(text) if text and text != "{}" else {}


@dataclass(slots=True)
class Outcome:
    """What a worker reports when an attempt is over."""

    task_id: int
    attempt_id: int
    result: str  # "ended", "error", "canceled", "handback"
    log: str = ""
    ended: datetime | None = None


def finish_attempts(outcomes: list[Outcome], retry_base: float = 5.0, now: datetime | None = None,
                    finish_runs: bool = True) -> set[int]:
    """Record finished attempts, retry or settle their tasks, advance their jobs.

    One transaction for the whole batch. Returns the ids of the jobs touched.
    finish_runs=False leaves finishing the runs of those jobs to the caller
    (finish_if_settled): the batch server does it in batches.
    """
    now = now or utcnow()
    jobs: set[int] = set()
    if not outcomes:
        return jobs
    with _write():
        tasks = _tasks_ending([o.task_id for o in outcomes])
        close, settle, retry, handback = [], [], [], []
        finished: list[int] = []  # settled tasks that have dependents
        for o in outcomes:
            ended = _when(o.ended or now)
            row = tasks.get(o.task_id)
            if row is None or row[3] != o.attempt_id or row[2] not in _RUNNING_TASK:
                # Taken back meanwhile (its server was declared dead): keep the log only.
                close.append((None, ended, o.log, o.attempt_id))
                continue
            tid, job_id, current, _, retries_used, max_retries, job_status, dependents = row
            jobs.add(job_id)
            if o.result == "handback":
                # Handed back by a stopping server: not a failure, no retry used up.
                close.append((_CANCELED, ended, o.log, o.attempt_id))
                new = _CANCELED if current == _CANCELLING else _READY
                handback.append((new, tid, current))
            elif current == _CANCELLING or o.result == "canceled":
                close.append((_CANCELED, ended, o.log, o.attempt_id))
                new = _CANCELED
                settle.append((new, tid, current))
            elif o.result == "ended":
                close.append((_FINISHED, ended, o.log, o.attempt_id))
                new = _FINISHED
                settle.append((new, tid, current))
            else:
                close.append((_ERROR, ended, o.log, o.attempt_id))
                if retries_used < max_retries and job_status == _EXECUTING:
                    delay = retry_delay(retries_used + 1, retry_base)
                    retry.append(((now + timedelta(seconds=delay)) if delay else None, tid, current))
                    new = _READY
                else:
                    new = _ERROR
                    settle.append((new, tid, current))
            if dependents and new in TASK_FINAL:
                finished.append(tid)
        _many("UPDATE task_attempt SET status = COALESCE(?, status), ended = ?, log = log || ? WHERE id = ?",
              close)
        _many("UPDATE batch_task SET status = ?, attempt = NULL WHERE id = ? AND status = ?", settle)
        _many("UPDATE batch_task SET status = ?, server = NULL, attempt = NULL WHERE id = ? AND status = ?",
              handback)
        _many(f"UPDATE batch_task SET status = {int(BatchStatus.READY)}, retries_used = retries_used + 1, "
              "not_before = ?, server = NULL, attempt = NULL WHERE id = ? AND status = ?", retry)
        advance_jobs(finished, jobs if finish_runs else (), now)
    return jobs


_TASKS_ENDING = (
    "SELECT t.id, t.job_id, t.status, t.attempt, t.retries_used, t.max_retries, j.status, "
    "EXISTS (SELECT 1 FROM batch_constraint c WHERE c.parent_id = t.id) "
    "FROM batch_task t JOIN batch_job j ON j.id = t.job_id WHERE t.id IN ({in})")


def _tasks_ending(task_ids: list[int]) -> dict[int, tuple]:
    """What finish_attempts needs of each task: its row, its job's status, whether it has dependents."""
    tasks = {}
    for ids in _chunks(task_ids):
        for row in _x(_marked(_TASKS_ENDING, len(ids)), ids):
            tasks[row[0]] = row
    return tasks


def canceling_tasks(task_ids) -> set[int]:
    """Which of these running tasks an operator has asked to cancel."""
    out: set[int] = set()
    for ids in _chunks(task_ids):
        out.update(r[0] for r in _x(f"SELECT id FROM batch_task WHERE id IN ({_in(ids)}) AND status = ?",
                                    (*ids, int(BatchStatus.CANCELLING))))
    return out


def append_log(attempt_id: int, text: str) -> None:
    """Write log lines of a running attempt so that they show while it runs."""
    if text:
        _x("UPDATE task_attempt SET log = log || ? WHERE id = ?", (text, attempt_id))


def report_progress(attempt_id: int, fraction: float, text: str | None = None) -> None:
    """Progress of a running attempt, as its batch class reports it (0..1)."""
    _x("UPDATE task_attempt SET progress = ?, progress_text = ? WHERE id = ?",
       (max(0.0, min(1.0, float(fraction))), (str(text)[:200] if text else None), attempt_id))


def advance_jobs(finished_tasks: list[int], jobs, now: datetime) -> None:
    """Evaluate the conditions of the dependents of tasks that just settled.

    Dependents whose conditions are met become Ready; those that can never be
    met become Didn't run, which settles them in turn. Then every job with
    nothing left to do has its run finished.
    """
    frontier = list(finished_tasks)
    while frontier:
        dependents: set[int] = set()
        for ids in _chunks(frontier):
            dependents.update(r[0] for r in _x(
                f"SELECT task_id FROM batch_constraint WHERE parent_id IN ({_in(ids)})", ids))
        frontier = []
        if not dependents:
            break
        waiting: dict[int, int] = {}
        for ids in _chunks(dependents):
            waiting.update(_x(f"SELECT id, condition_type FROM batch_task WHERE id IN ({_in(ids)}) "
                              "AND status = ?", (*ids, int(BatchStatus.WAITING))).fetchall())
        if not waiting:
            break
        pairs: dict[int, list[tuple[int, int]]] = {tid: [] for tid in waiting}
        for ids in _chunks(waiting):
            for tid, expected, parent_status in _x(
                    "SELECT c.task_id, c.expected, p.status FROM batch_constraint c "
                    f"JOIN batch_task p ON p.id = c.parent_id WHERE c.task_id IN ({_in(ids)})", ids):
                pairs[tid].append((expected, parent_status))
        ready = [t for t, ctype in waiting.items() if evaluate_conditions(ctype, pairs[t]) is True]
        dead = [t for t, ctype in waiting.items() if evaluate_conditions(ctype, pairs[t]) is False]
        for ids in _chunks(ready):
            _x(f"UPDATE batch_task SET status = ? WHERE id IN ({_in(ids)}) AND status = ?",
               (int(BatchStatus.READY), *ids, int(BatchStatus.WAITING)))
        for ids in _chunks(dead):
            _x(f"UPDATE batch_task SET status = ? WHERE id IN ({_in(ids)}) AND status = ?",
               (int(BatchStatus.NOT_RUN), *ids, int(BatchStatus.WAITING)))
        frontier = dead
    if jobs:
        _finalize(jobs, now)


def _complete_if_done(job_id: int, now: datetime) -> None:
    advance_jobs([], [job_id], now)


def finish_if_settled(job_ids, now: datetime | None = None) -> None:
    """Finish the runs of these jobs if nothing of them is left to do.

    On PostgreSQL a batch server calls it after each round's commit for the
    jobs it touched: two servers that settle a job's last tasks at the same
    moment each see the other's task still running inside their own
    transaction, so neither finishes the run there; after both commits, at
    least one of them sees it settled here.
    """
    if job_ids:
        with _write():
            advance_jobs([], list(job_ids), now or utcnow())


def finish_settled_runs(now: datetime | None = None) -> int:
    """Finish runs whose tasks are all settled but which are still Executing.

    A safety net, run by every batch server with its heartbeat: whatever
    left a run so (a crash between two transactions, a race this code did not
    foresee), the run is finished rather than Executing for ever.
    """
    now = now or utcnow()
    with _write():
        stuck = [r[0] for r in _x(
            f"SELECT j.id FROM batch_job j WHERE j.status IN ({int(BatchStatus.EXECUTING)}, "
            f"{int(BatchStatus.CANCELLING)}) AND NOT EXISTS "
            f"(SELECT 1 FROM batch_task t WHERE t.job_id = j.id AND t.status IN ({_ACTIVE}))"
            + (" FOR UPDATE OF j SKIP LOCKED" if _pg() else ""))]
        if stuck:
            _finalize(stuck, now)
    return len(stuck)


def job_outcome(job_status: int, tasks) -> BatchStatus:
    """Canceled when canceled; Error when a task failed without Ignore task failure; else Ended."""
    if job_status in (BatchStatus.CANCELLING, BatchStatus.CANCELED):
        return BatchStatus.CANCELED
    for status, ignore in tasks:
        if status == BatchStatus.ERROR and not ignore:
            return BatchStatus.ERROR
    return BatchStatus.FINISHED


def _finalize(job_ids, now: datetime) -> None:
    """Finish the runs of those of these jobs whose tasks are all settled.

    One row per job comes back, with what decides the run's outcome (a task
    in Error without Ignore task failure) and whether anyone subscribed to
    its alerts; the run's task snapshot is copied in SQL.
    """
    rows = []
    for ids in _chunks(job_ids):
        # By id only: with a status term SQLite may pick the status index and
        # scan every Executing job.
        # On PostgreSQL the rows are locked; a job another server is finishing
        # right now is skipped (that server finishes it).
        rows += [r for r in _x(
            "SELECT j.id, j.status, j.current_run, j.recurrence, j.time_zone, j.scheduled_start, j.run_count, "
            "j.description, EXISTS (SELECT 1 FROM batch_task t WHERE t.job_id = j.id "
            f"AND t.status = {int(BatchStatus.ERROR)} AND NOT t.ignore_failure), "
            "EXISTS (SELECT 1 FROM job_alert a WHERE a.job_id = j.id) "
            f"FROM batch_job j WHERE j.id IN ({_in(ids)}) AND NOT EXISTS "
            f"(SELECT 1 FROM batch_task t WHERE t.job_id = j.id AND t.status IN ({_ACTIVE}))"
            + (" FOR UPDATE OF j SKIP LOCKED" if _pg() else ""), ids,
        ).fetchall() if r[1] in RUNNING_JOB]
    if not rows:
        return
    at = _when(now)
    subscriptions = _subscriptions([r[0] for r in rows if r[9]])
    run_updates, snapshots, ended, rescheduled, alerts = [], [], [], [], []
    for job_id, status, run_id, rec, tz_name, scheduled, run_count, description, failed, _ in rows:
        outcome = _run_outcome(status, failed)
        next_start = _next_start(rec, tz_name, scheduled, outcome, now) if rec else None
        if next_start is None:
            ended.append((int(outcome), at, job_id, status))
        else:
            rescheduled.append((int(BatchStatus.WAITING), at, _when(next_start), job_id, status))
        if run_id is None:
            continue
        run_updates.append((int(outcome), at, run_id))
        snapshots.append(job_id)
        if job_id in subscriptions:
            alerts += _alerts(job_id, run_id, run_count, description, outcome, subscriptions[job_id], now)
    _many("UPDATE job_run SET status = ?, ended = ? WHERE id = ?", run_updates)
    for ids in _chunks(snapshots):
        _x("INSERT INTO run_task (run_id, task_id, status, retries_used) "
           "SELECT j.current_run, t.id, t.status, t.retries_used FROM batch_task t "
           f"JOIN batch_job j ON j.id = t.job_id WHERE t.job_id IN ({_in(ids)})", ids)
    # The start is written only when it moves: each column written is an
    # index entry rewritten (batch_job has two on scheduled_start).
    _many("UPDATE batch_job SET status = ?, modified = ? WHERE id = ? AND status = ?", ended)
    _many("UPDATE batch_job SET status = ?, modified = ?, scheduled_start = ? WHERE id = ? AND status = ?",
          rescheduled)
    if alerts:
        m.Alert.insert_many(alerts).execute()


def _run_outcome(job_status: int, failed: bool) -> BatchStatus:
    """job_outcome, with "a task failed without Ignore task failure" worked out by the caller."""
    if job_status in (BatchStatus.CANCELLING, BatchStatus.CANCELED):
        return BatchStatus.CANCELED
    return BatchStatus.ERROR if failed else BatchStatus.FINISHED


def _next_start(rec, tz_name: str, scheduled, outcome: BatchStatus, now: datetime) -> datetime | None:
    """When a recurring job runs next (None: it does not, the job keeps the run's outcome)."""
    if not rec or outcome == BatchStatus.CANCELED:
        return None
    from . import recurrence

    spec = _json.loads(rec) if isinstance(rec, str) else rec
    return recurrence.next_occurrence(spec, tz_name, max(now, _dt(scheduled)))


def _subscriptions(job_ids: list[int]) -> dict[int, list[tuple]]:
    """The alert settings of these jobs: job id -> [(user, ended, error, canceled, popup, email)]."""
    out: dict[int, list] = {}
    for ids in _chunks(job_ids):
        for job_id, user, *flags in _x(
                'SELECT job_id, "user", ended, error, canceled, popup, email FROM job_alert '
                f"WHERE job_id IN ({_in(ids)})", ids):
            out.setdefault(job_id, []).append((user, *(bool(f) for f in flags)))
    return out


def _alerts(job_id: int, run_id: int, run_count: int, description: str, outcome: BatchStatus,
            subscriptions, now: datetime) -> list[dict]:
    """The Action-center alerts a run's end raises, one per subscriber of that event."""
    event = EVENT_OF[outcome]
    out = []
    for user, ended, error, canceled, popup, email in subscriptions:
        if {"ended": ended, "error": error, "canceled": canceled}[event]:
            out.append({
                "user": user, "job": job_id, "run": run_id, "event": event,
                "message": f"Batch job {job_id} '{description}' {outcome.label.lower()} (run {run_count}).",
                "created": now, "read": False, "popup": popup, "email": email,
            })
    return out


def take_back(server: str, reason: str, retry_base: float = 5.0, now: datetime | None = None) -> int:
    """Settle the tasks a dead or restarted server left Executing.

    Each one's attempt ends in Error with the reason in its log; the task is
    retried if it has retries left, else it is in Error (Canceled if it was
    being canceled). Returns how many tasks were taken back.
    """
    now = now or utcnow()
    with _write():
        left = list(m.BatchTask.select(m.BatchTask.id, m.BatchTask.attempt).where(
            (m.BatchTask.server == server)
            & (m.BatchTask.status << [BatchStatus.EXECUTING, BatchStatus.CANCELLING])))
        if not left:
            return 0
        outcomes = [Outcome(t.id, t.attempt, "error", log=f"{reason}\n", ended=now) for t in left]
        finish_attempts(outcomes, retry_base=retry_base, now=now)
    return len(left)


def task_status_for_run(run: m.JobRun) -> dict[int, int]:
    """Task statuses in a run: the live ones for the current run, the snapshot after."""
    if run.ended is None:
        return {t.id: t.status for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.status)
                .where(m.BatchTask.job == run.job_id)}
    return {r.task_id: r.status for r in m.RunTask.select().where(m.RunTask.run == run.id)}


# -- wake-ups --------------------------------------------------------------

_listeners: list = []


def add_listener(callback) -> None:
    """Called (with no arguments) after a status change made in this process."""
    _listeners.append(callback)


def remove_listener(callback) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


def _notify() -> None:
    for cb in list(_listeners):
        try:
            cb()
        except Exception:
            pass
    try:
        pg_notify()
    except Exception:
        pass


NOTIFY_CHANNEL = "batchtui"


def pg_notify() -> None:
    """Wake the batch servers of other processes (PostgreSQL LISTEN/NOTIFY)."""
    if _pg():
        m.database.execute_sql(f"NOTIFY {NOTIFY_CHANNEL}")


# -- history written after the fact (demo data, imports) ---------------------------

PAST_ATTEMPT = frozenset({BatchStatus.ERROR, BatchStatus.FINISHED, BatchStatus.CANCELED})


def record_past_runs(job_id: int, runs: list[dict], now: datetime | None = None) -> list[int]:
    """Write runs of a job that are over into its history, as a batch server would have.

    For the demo data (weeks of history) and anything else that brings runs
    from elsewhere; the statuses are checked here like every other status
    write. Each run, oldest first::

        {"scheduled": dt, "started": dt, "ended": dt, "server": "AOS1",
         "status": BatchStatus.ERROR,          # optional: worked out from the tasks
         "tasks": [{"task_id": 31, "status": BatchStatus.FINISHED,
                    "retries_used": 1,           # optional: attempts - 1
                    "attempts": [{"status": ..., "started": dt, "ended": dt,
                                  "server": "AOS2", "log": "..."}]}]}

    Times are naive UTC and must be over by `now`. Afterwards the job stands
    as after its last run: its tasks keep their statuses of that run, and
    the job takes the run's outcome or, when it recurs and the run was not
    canceled, goes back to Waiting at its next occurrence (as finalize_run
    does). Alerts are raised for the job's subscribers at each run's end;
    they count as mailed, so a batch server does not e-mail old news.
    Returns the new runs' ids. Raises ValueError for a run that could not
    have happened, Refused while the job runs.
    """
    now = now or utcnow()
    if not runs:
        return []
    with _write():
        job = get_job(job_id)
        current = BatchStatus(job.status)
        if current in RUNNING_JOB:
            raise Refused(f"job {job_id} is {current.label}: its history cannot be written while it runs")
        tasks = {t.id: t for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.ignore_failure)
                 .where(m.BatchTask.job == job_id)}
        previous_start = None
        outcomes: list[BatchStatus] = []
        for i, run in enumerate(runs):
            where = f"job {job_id}, past run #{i + 1}"
            started, ended = run["started"], run["ended"]
            if not (started <= ended <= now):
                raise ValueError(f"{where}: needs started <= ended <= now")
            if previous_start is not None and started < previous_start:
                raise ValueError(f"{where}: runs must be given oldest first")
            previous_start = started
            pairs = []
            for t in run["tasks"]:
                if t["task_id"] not in tasks:
                    raise ValueError(f"{where}: task {t['task_id']} is not a task of the job")
                status = BatchStatus(t["status"])
                if status not in TASK_FINAL:
                    raise ValueError(f"{where}: task {t['task_id']} cannot be {status.label} in a run that is over")
                for a in t["attempts"]:
                    if BatchStatus(a["status"]) not in PAST_ATTEMPT:
                        raise ValueError(f"{where}: an attempt cannot end {BatchStatus(a['status']).label}")
                    if not (started <= a["started"] <= a["ended"] <= ended):
                        raise ValueError(f"{where}: task {t['task_id']}'s attempts must lie within the run")
                if status == BatchStatus.NOT_RUN and t["attempts"]:
                    raise ValueError(f"{where}: task {t['task_id']} did not run but has attempts")
                pairs.append((status, tasks[t["task_id"]].ignore_failure))
            expected = job_outcome(BatchStatus.EXECUTING, pairs)
            given = run.get("status")
            outcome = expected if given is None else BatchStatus(given)
            if outcome not in JOB_FINAL:
                raise ValueError(f"{where}: a run that is over is Ended, Error or Canceled, not {outcome.label}")
            if outcome != BatchStatus.CANCELED and outcome != expected:
                raise ValueError(f"{where}: its tasks make it {expected.label}, not {outcome.label}")
            outcomes.append(outcome)

        first_no = job.run_count + 1
        rows = [{"job": job_id, "run_no": first_no + i, "scheduled": run["scheduled"], "started": run["started"],
                 "ended": run["ended"], "status": int(outcomes[i]), "server": run.get("server", "")}
                for i, run in enumerate(runs)]
        for chunk in _past_chunks(rows, 100):
            m.JobRun.insert_many(chunk).execute()
        ids = {r.run_no: r.id for r in m.JobRun.select(m.JobRun.id, m.JobRun.run_no)
               .where((m.JobRun.job == job_id) & (m.JobRun.run_no >= first_no))}
        run_ids = [ids[first_no + i] for i in range(len(runs))]
        results, attempts, alerts = [], [], []
        subs = list(m.JobAlert.select().where(m.JobAlert.job == job_id))
        for i, run in enumerate(runs):
            run_id = run_ids[i]
            for t in run["tasks"]:
                results.append({"run": run_id, "task": t["task_id"], "status": int(t["status"]),
                                "retries_used": t.get("retries_used", max(0, len(t["attempts"]) - 1))})
                for n, a in enumerate(t["attempts"], start=1):
                    attempts.append({"run": run_id, "task": t["task_id"], "attempt": n, "status": int(a["status"]),
                                     "started": a["started"], "ended": a["ended"], "server": a.get("server", ""),
                                     "log": a.get("log", "")})
            event = EVENT_OF[outcomes[i]]
            for sub in subs:
                if getattr(sub, event):
                    alerts.append({
                        "user": sub.user, "job": job_id, "run": run_id, "event": event,
                        "message": f"Batch job {job_id} '{job.description}' {outcomes[i].label.lower()}"
                                   f" (run {first_no + i}).",
                        "created": run["ended"], "read": False, "popup": sub.popup, "email": sub.email,
                        "mailed": True,
                    })
        for model, batch in ((m.RunTask, results), (m.TaskAttempt, attempts), (m.Alert, alerts)):
            for chunk in _past_chunks(batch, 100):
                model.insert_many(chunk).execute()

        last, outcome = runs[-1], outcomes[-1]
        for t in last["tasks"]:
            tried = t["attempts"]
            m.BatchTask.update(
                status=int(t["status"]), retries_used=t.get("retries_used", max(0, len(tried) - 1)),
                attempts=len(tried), server=tried[-1].get("server", "") if tried else None,
                attempt=None, not_before=None,
            ).where(m.BatchTask.id == t["task_id"]).execute()
        changes = {"status": outcome}
        if job.recurrence and outcome != BatchStatus.CANCELED:
            from . import recurrence

            nxt = recurrence.next_occurrence(job.recurrence, job.time_zone, max(last["ended"], last["scheduled"]))
            if nxt is not None:
                changes = {"status": BatchStatus.WAITING, "scheduled_start": nxt}
        done = (m.BatchJob.update(run_count=job.run_count + len(runs), current_run=run_ids[-1], modified=now,
                                  version=m.BatchJob.version + 1, **changes)
                .where((m.BatchJob.id == job_id) & (m.BatchJob.status == current)).execute())
        if not done:
            raise Refused(f"job {job_id} changed status meanwhile; try again")
    _notify()
    return run_ids


def _past_chunks(rows: list, size: int):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
