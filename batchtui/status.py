"""The status machine: statuses, allowed transitions and the job outcome.

Every status write in batchtui goes through this module: the engine, the
command line and the console call it; nothing else assigns a status.
"""

from __future__ import annotations

from enum import IntEnum


class BatchStatus(IntEnum):
    HOLD = 0
    WAITING = 1
    EXECUTING = 2
    ERROR = 3
    FINISHED = 4
    READY = 5
    NOT_RUN = 6
    CANCELLING = 7
    CANCELED = 8

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def cli(self) -> str:
        return _CLI[self]

    @classmethod
    def from_cli(cls, text: str) -> "BatchStatus":
        for status, name in _CLI.items():
            if name == text:
                return status
        raise ValueError(text)


_LABELS = {
    BatchStatus.HOLD: "Withhold",
    BatchStatus.WAITING: "Waiting",
    BatchStatus.EXECUTING: "Executing",
    BatchStatus.ERROR: "Error",
    BatchStatus.FINISHED: "Ended",
    BatchStatus.READY: "Ready",
    BatchStatus.NOT_RUN: "Didn't run",
    BatchStatus.CANCELLING: "Canceling",
    BatchStatus.CANCELED: "Canceled",
}

_CLI = {
    BatchStatus.HOLD: "withhold",
    BatchStatus.WAITING: "waiting",
    BatchStatus.EXECUTING: "executing",
    BatchStatus.ERROR: "error",
    BatchStatus.FINISHED: "ended",
    BatchStatus.READY: "ready",
    BatchStatus.NOT_RUN: "didnt_run",
    BatchStatus.CANCELLING: "canceling",
    BatchStatus.CANCELED: "canceled",
}

#: Task statuses after which a task will not change again in this run.
TASK_FINAL = frozenset({BatchStatus.FINISHED, BatchStatus.ERROR, BatchStatus.NOT_RUN, BatchStatus.CANCELED})
#: Job statuses of a run that is over.
JOB_FINAL = frozenset({BatchStatus.FINISHED, BatchStatus.ERROR, BatchStatus.CANCELED})


class ConditionStatus(IntEnum):
    """The expected status of a parent task in a condition row."""

    ENDED = 0
    ERROR = 1
    ENDED_OR_ERROR = 2

    @property
    def label(self) -> str:
        return {0: "Ended", 1: "Error", 2: "Ended or error"}[int(self)]

    @property
    def cli(self) -> str:
        return {0: "ended", 1: "error", 2: "ended_or_error"}[int(self)]

    @classmethod
    def from_cli(cls, text: str) -> "ConditionStatus":
        for c in cls:
            if c.cli == text:
                return c
        raise ValueError(text)

    def met_by(self, parent: int) -> bool:
        if self is ConditionStatus.ENDED:
            return parent == BatchStatus.FINISHED
        if self is ConditionStatus.ERROR:
            return parent == BatchStatus.ERROR
        return parent in (BatchStatus.FINISHED, BatchStatus.ERROR)


class ConditionType(IntEnum):
    ALL = 0
    ANY = 1

    @property
    def label(self) -> str:
        return "All" if self is ConditionType.ALL else "Any"

    @property
    def cli(self) -> str:
        return "all" if self is ConditionType.ALL else "any"


class Priority(IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3
    RESERVED = 4

    @property
    def label(self) -> str:
        return {0: "Low", 1: "Normal", 2: "High", 3: "Critical", 4: "Reserved capacity"}[int(self)]

    @property
    def cli(self) -> str:
        return self.name.lower()

    @classmethod
    def from_cli(cls, text: str) -> "Priority":
        for p in cls:
            if p.cli == text:
                return p
        raise ValueError(text)


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

import json as _json  # noqa: E402
from dataclasses import dataclass, field as _field  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402

from peewee import fn  # noqa: E402

from . import models as m  # noqa: E402
from .errors import NotAllowed, NotFound, Refused  # noqa: E402
from .timeutil import utcnow  # noqa: E402

ACTIVE_TASK = (BatchStatus.WAITING, BatchStatus.READY, BatchStatus.EXECUTING, BatchStatus.CANCELLING)
RUNNING_JOB = (BatchStatus.EXECUTING, BatchStatus.CANCELLING)

EVENT_OF = {BatchStatus.FINISHED: "ended", BatchStatus.ERROR: "error", BatchStatus.CANCELED: "canceled"}


def _write():
    from .db import write

    return write()


def _pg() -> bool:
    from .db import is_postgres

    return is_postgres()


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


def _lock(query):
    """FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's write lock covers it."""
    if _pg():
        return query.for_update("FOR UPDATE SKIP LOCKED")
    return query


def start_due_jobs(server: str, now: datetime | None = None, limit: int = 64) -> list[int]:
    """Start the runs of Waiting jobs whose time has come, highest priority first."""
    now = now or utcnow()
    started: list[int] = []
    with _write():
        due = _lock(
            m.BatchJob.select(m.BatchJob.id, m.BatchJob.scheduled_start, m.BatchJob.run_count)
            .where((m.BatchJob.status == BatchStatus.WAITING) & (m.BatchJob.scheduled_start <= now))
            .order_by(m.BatchJob.priority.desc(), m.BatchJob.scheduled_start, m.BatchJob.id)
            .limit(limit)
        )
        for job in list(due):
            run_no = job.run_count + 1
            run_id = m.JobRun.insert(
                job=job.id, run_no=run_no, scheduled=job.scheduled_start, started=now,
                status=BatchStatus.EXECUTING, server=server,
            ).execute()
            claimed = (
                m.BatchJob.update(status=BatchStatus.EXECUTING, current_run=run_id, run_count=run_no,
                                  modified=now)
                .where((m.BatchJob.id == job.id) & (m.BatchJob.status == BatchStatus.WAITING))
                .execute()
            )
            if not claimed:
                m.JobRun.delete().where(m.JobRun.id == run_id).execute()
                continue
            m.BatchTask.update(
                status=BatchStatus.WAITING, retries_used=0, attempts=0, not_before=None,
                server=None, attempt=None,
            ).where(m.BatchTask.job == job.id).execute()
            has_conditions = m.BatchConstraint.select(m.BatchConstraint.task)
            m.BatchTask.update(status=BatchStatus.READY).where(
                (m.BatchTask.job == job.id) & (m.BatchTask.id.not_in(has_conditions))).execute()
            _complete_if_done(job.id, now)
            started.append(job.id)
    return started


def next_due(now: datetime | None = None) -> datetime | None:
    """When the next Waiting job or pending retry becomes due (for the server's timer)."""
    job = (m.BatchJob.select(fn.MIN(m.BatchJob.scheduled_start))
           .where(m.BatchJob.status == BatchStatus.WAITING).scalar())
    retry = (m.BatchTask.select(fn.MIN(m.BatchTask.not_before))
             .where((m.BatchTask.status == BatchStatus.READY) & m.BatchTask.not_before.is_null(False))
             .scalar())
    times = [_as_dt(t) for t in (job, retry) if t is not None]
    return min(times) if times else None


def _as_dt(value) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


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


@dataclass
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
    extra: dict = _field(default_factory=dict)


def claim_ready_tasks(server: str, groups: list[str], limit: int, now: datetime | None = None) -> list[Claimed]:
    """Move up to limit Ready tasks of the given groups to Executing for this server."""
    if limit <= 0:
        return []
    now = now or utcnow()
    out: list[Claimed] = []
    with _write():
        rows = _lock(
            m.BatchTask.select(
                m.BatchTask.id, m.BatchTask.class_name, m.BatchTask.params, m.BatchTask.company,
                m.BatchTask.attempts, m.BatchTask.description, m.BatchTask.job,
                m.BatchJob.run_by, m.BatchJob.current_run,
            )
            .join(m.BatchJob, on=(m.BatchTask.job == m.BatchJob.id))
            .where(
                (m.BatchTask.status == BatchStatus.READY)
                & (m.BatchTask.not_before.is_null() | (m.BatchTask.not_before <= now))
                & (m.BatchTask.batch_group << groups)
                & (m.BatchJob.status == BatchStatus.EXECUTING)
            )
            .order_by(m.BatchJob.priority.desc(), m.BatchJob.scheduled_start, m.BatchTask.id)
            .limit(limit)
        )
        if _pg():
            rows = rows.for_update("FOR UPDATE OF t1 SKIP LOCKED")
        for t in rows.objects():
            attempt_no = t.attempts + 1
            attempt_id = m.TaskAttempt.insert(
                run=t.current_run, task=t.id, attempt=attempt_no, status=BatchStatus.EXECUTING,
                started=now, server=server, log="",
            ).execute()
            claimed = (
                m.BatchTask.update(status=BatchStatus.EXECUTING, server=server, attempt=attempt_id,
                                   attempts=attempt_no)
                .where((m.BatchTask.id == t.id) & (m.BatchTask.status == BatchStatus.READY))
                .execute()
            )
            if not claimed:
                m.TaskAttempt.delete().where(m.TaskAttempt.id == attempt_id).execute()
                continue
            out.append(Claimed(
                task_id=t.id, attempt_id=attempt_id, attempt=attempt_no, job_id=t.job_id,
                run_id=t.current_run, class_name=t.class_name, params=t.params or {},
                company=t.company_id, run_by=t.run_by, description=t.description,
            ))
    return out


@dataclass
class Outcome:
    """What a worker reports when an attempt is over."""

    task_id: int
    attempt_id: int
    result: str  # "ended", "error", "canceled", "handback"
    log: str = ""
    ended: datetime | None = None


def finish_attempts(outcomes: list[Outcome], retry_base: float = 5.0, now: datetime | None = None) -> set[int]:
    """Record finished attempts, retry or settle their tasks, advance their jobs.

    Returns the ids of the jobs touched. One transaction for the whole batch.
    """
    now = now or utcnow()
    jobs: set[int] = set()
    if not outcomes:
        return jobs
    with _write():
        ids = [o.task_id for o in outcomes]
        tasks = {t.id: t for t in m.BatchTask.select(
            m.BatchTask.id, m.BatchTask.job, m.BatchTask.status, m.BatchTask.attempt,
            m.BatchTask.retries_used, m.BatchTask.max_retries,
        ).where(m.BatchTask.id << ids)}
        job_status = {j.id: j.status for j in m.BatchJob.select(m.BatchJob.id, m.BatchJob.status)
                      .where(m.BatchJob.id << list({t.job_id for t in tasks.values()}))}
        finished: dict[int, list[int]] = {}
        for o in outcomes:
            t = tasks.get(o.task_id)
            ended = o.ended or now
            if t is None or t.attempt != o.attempt_id or t.status not in (
                    BatchStatus.EXECUTING, BatchStatus.CANCELLING):
                # Taken back meanwhile (server declared dead): keep the log only.
                _close_attempt(o.attempt_id, None, o.log, ended)
                continue
            current = BatchStatus(t.status)
            if o.result == "handback":
                _close_attempt(o.attempt_id, BatchStatus.CANCELED, o.log, ended)
                new = BatchStatus.CANCELED if current == BatchStatus.CANCELLING else BatchStatus.READY
                # Handed back, not failed: no retry is used up.
                m.BatchTask.update(status=new, server=None, attempt=None).where(
                    (m.BatchTask.id == t.id) & (m.BatchTask.status == current)).execute()
            elif current == BatchStatus.CANCELLING or o.result == "canceled":
                _close_attempt(o.attempt_id, BatchStatus.CANCELED, o.log, ended)
                new = BatchStatus.CANCELED
                _settle(t.id, current, new)
            elif o.result == "ended":
                _close_attempt(o.attempt_id, BatchStatus.FINISHED, o.log, ended)
                new = BatchStatus.FINISHED
                _settle(t.id, current, new)
            else:
                _close_attempt(o.attempt_id, BatchStatus.ERROR, o.log, ended)
                if t.retries_used < t.max_retries and job_status.get(t.job_id) == BatchStatus.EXECUTING:
                    delay = retry_delay(t.retries_used + 1, retry_base)
                    m.BatchTask.update(
                        status=BatchStatus.READY, retries_used=m.BatchTask.retries_used + 1,
                        not_before=(now + timedelta(seconds=delay)) if delay else None,
                        server=None, attempt=None,
                    ).where((m.BatchTask.id == t.id) & (m.BatchTask.status == current)).execute()
                    new = BatchStatus.READY
                else:
                    new = BatchStatus.ERROR
                    _settle(t.id, current, new)
            jobs.add(t.job_id)
            if new in TASK_FINAL:
                finished.setdefault(t.job_id, []).append(t.id)
        for job_id in jobs:
            advance_job(job_id, finished.get(job_id, []), now)
    return jobs


def _settle(task_id: int, current: int, new: int) -> None:
    m.BatchTask.update(status=new, attempt=None).where(
        (m.BatchTask.id == task_id) & (m.BatchTask.status == current)).execute()


def _close_attempt(attempt_id: int, status, log: str, ended: datetime) -> None:
    changes = {m.TaskAttempt.ended: ended}
    if status is not None:
        changes[m.TaskAttempt.status] = status
    if log:
        changes[m.TaskAttempt.log] = fn.COALESCE(m.TaskAttempt.log, "").concat(log)
    m.TaskAttempt.update(changes).where(m.TaskAttempt.id == attempt_id).execute()


def append_log(attempt_id: int, text: str) -> None:
    """Write log lines of a running attempt so that they show while it runs."""
    if text:
        m.TaskAttempt.update(log=fn.COALESCE(m.TaskAttempt.log, "").concat(text)).where(
            m.TaskAttempt.id == attempt_id).execute()


def report_progress(attempt_id: int, fraction: float, text: str | None = None) -> None:
    """Progress of a running attempt, as its batch class reports it (0..1)."""
    m.TaskAttempt.update(progress=max(0.0, min(1.0, float(fraction))),
                         progress_text=(text or None) and str(text)[:200]).where(
        m.TaskAttempt.id == attempt_id).execute()


def advance_job(job_id: int, finished_tasks: list[int], now: datetime) -> None:
    """Evaluate the conditions of the dependents of tasks that just settled.

    Dependents whose conditions are met become Ready; those that can never be
    met become Didn't run, which settles them in turn. Then, if nothing of
    the run is left to do, the run is over.
    """
    frontier = list(finished_tasks)
    while frontier:
        dependents = {c.task_id for c in m.BatchConstraint.select(m.BatchConstraint.task)
                      .where(m.BatchConstraint.parent << frontier)}
        frontier = []
        if not dependents:
            break
        waiting = {t.id: t.condition_type for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.condition_type)
                   .where((m.BatchTask.id << list(dependents)) & (m.BatchTask.status == BatchStatus.WAITING))}
        if not waiting:
            break
        Parent = m.BatchTask.alias()
        pairs: dict[int, list[tuple[int, int]]] = {tid: [] for tid in waiting}
        for c in (m.BatchConstraint.select(m.BatchConstraint.task, m.BatchConstraint.expected, Parent.status)
                  .join(Parent, on=(m.BatchConstraint.parent == Parent.id))
                  .where(m.BatchConstraint.task << list(waiting)).objects()):
            pairs[c.task_id].append((c.expected, c.status))
        ready, dead = [], []
        for tid, ctype in waiting.items():
            verdict = evaluate_conditions(ctype, pairs[tid])
            if verdict is True:
                ready.append(tid)
            elif verdict is False:
                dead.append(tid)
        if ready:
            m.BatchTask.update(status=BatchStatus.READY).where(
                (m.BatchTask.id << ready) & (m.BatchTask.status == BatchStatus.WAITING)).execute()
        if dead:
            m.BatchTask.update(status=BatchStatus.NOT_RUN).where(
                (m.BatchTask.id << dead) & (m.BatchTask.status == BatchStatus.WAITING)).execute()
            frontier = dead
    _complete_if_done(job_id, now)


def _complete_if_done(job_id: int, now: datetime) -> bool:
    """Finish the job's run when none of its tasks can run any more."""
    job = m.BatchJob.get_or_none(m.BatchJob.id == job_id)
    if job is None or job.status not in RUNNING_JOB:
        return False
    busy = m.BatchTask.select(m.BatchTask.id).where(
        (m.BatchTask.job == job_id) & (m.BatchTask.status << list(ACTIVE_TASK))).limit(1).exists()
    if busy:
        if job.status == BatchStatus.CANCELLING:
            return False
        # Tasks left Waiting with no way forward (e.g. conditions on tasks that
        # never settle) are caught by the condition evaluation; nothing to do.
        return False
    finalize_run(job, now)
    return True


def job_outcome(job_status: int, tasks) -> BatchStatus:
    """Canceled when canceled; Error when a task failed without Ignore task failure; else Ended."""
    if job_status in (BatchStatus.CANCELLING, BatchStatus.CANCELED):
        return BatchStatus.CANCELED
    for status, ignore in tasks:
        if status == BatchStatus.ERROR and not ignore:
            return BatchStatus.ERROR
    return BatchStatus.FINISHED


def finalize_run(job: m.BatchJob, now: datetime) -> BatchStatus:
    tasks = list(m.BatchTask.select(m.BatchTask.id, m.BatchTask.status, m.BatchTask.ignore_failure,
                                    m.BatchTask.retries_used).where(m.BatchTask.job == job.id))
    outcome = job_outcome(job.status, [(t.status, t.ignore_failure) for t in tasks])
    run_id = job.current_run
    if run_id is not None:
        m.JobRun.update(status=outcome, ended=now).where(m.JobRun.id == run_id).execute()
        if tasks:
            m.RunTask.insert_many(
                [{"run": run_id, "task": t.id, "status": t.status, "retries_used": t.retries_used}
                 for t in tasks]
            ).on_conflict_ignore().execute()
    new_status = outcome
    changes = {}
    if job.recurrence and outcome != BatchStatus.CANCELED:
        from . import recurrence

        after = max(now, job.scheduled_start)
        nxt = recurrence.next_occurrence(job.recurrence, job.time_zone, after)
        if nxt is not None:
            new_status = BatchStatus.WAITING
            changes["scheduled_start"] = nxt
    m.BatchJob.update(status=new_status, modified=now, **changes).where(
        (m.BatchJob.id == job.id) & (m.BatchJob.status == job.status)).execute()
    if run_id is not None:
        raise_alerts(job, run_id, outcome, now)
    return outcome


def raise_alerts(job: m.BatchJob, run_id: int, outcome: BatchStatus, now: datetime) -> None:
    event = EVENT_OF[outcome]
    rows = []
    for sub in m.JobAlert.select().where(m.JobAlert.job == job.id):
        if getattr(sub, event):
            rows.append({
                "user": sub.user, "job": job.id, "run": run_id, "event": event,
                "message": f"Batch job {job.id} '{job.description}' {outcome.label.lower()}"
                           f" (run {job.run_count}).",
                "created": now, "read": False, "popup": sub.popup, "email": sub.email,
            })
    if rows:
        m.Alert.insert_many(rows).execute()


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
