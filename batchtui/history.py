"""The batch job history: reading a job's runs, cleaning up old ones, and runs
written after the fact (the demo's weeks of history, anything else that
brings runs from elsewhere).

The statuses are checked like every other status write: the rules decide
each run's outcome, and the job is changed by a compare-and-set on the
status it was read in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from peewee import fn

from . import events, jobfile
from . import models as m
from .actor import Actor
from .db import write
from .errors import NotAllowed, Refused
from .jobfile import FieldError, q
from .jobs import run_dict
from .rules import JOB_MOVES, job_outcome
from .status import get_job, task_status_for_run
from .timeutil import iso, utcnow
from .vocabulary import EVENT_OF, JOB_FINAL, RUNNING_JOB, TASK_FINAL, BatchStatus

RECORD = JOB_MOVES["record_history"]

PAST_ATTEMPT = frozenset({BatchStatus.ERROR, BatchStatus.FINISHED, BatchStatus.CANCELED})


def record_past_runs(job_id: int, runs: list[dict[str, Any]], now: datetime | None = None) -> list[int]:
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
    they have no delivery state (e-mail and notice null), so a batch server
    does not send old news.
    Returns the new runs' ids. Raises ValueError for a run that could not
    have happened, Refused while the job runs.
    """
    now = now or utcnow()
    if not runs:
        return []
    with write():
        job = get_job(job_id)
        current = BatchStatus(job.status)
        if not RECORD.allows(current):
            raise Refused(f"job {job_id} is {current.label}: its history cannot be written while it runs")
        tasks = {t.id: t for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.ignore_failure)
                 .where(m.BatchTask.job == job_id)}
        outcomes = _check_runs(job_id, runs, tasks, now)
        run_ids = _write_runs(job, runs, outcomes)
        _settle_job(job, current, runs, outcomes, run_ids, now)
    events.changed()
    return run_ids


def _check_runs(job_id: int, runs: list[dict[str, Any]], tasks: dict[int, Any], now: datetime) -> list[BatchStatus]:
    """Each run's outcome, after checking that it could have happened (ValueError if not)."""
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
        pairs = [(_check_task(where, t, tasks, started, ended), tasks[t["task_id"]].ignore_failure)
                 for t in run["tasks"]]
        expected = job_outcome(BatchStatus.EXECUTING, pairs)
        given = run.get("status")
        outcome = expected if given is None else BatchStatus(given)
        if outcome not in JOB_FINAL:
            raise ValueError(f"{where}: a run that is over is Ended, Error or Canceled, not {outcome.label}")
        if outcome != BatchStatus.CANCELED and outcome != expected:
            raise ValueError(f"{where}: its tasks make it {expected.label}, not {outcome.label}")
        outcomes.append(outcome)
    return outcomes


def _check_task(where: str, t: dict[str, Any], tasks: dict[int, Any], started: datetime,
                ended: datetime) -> BatchStatus:
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
    return status


def _write_runs(job: m.BatchJob, runs: list[dict[str, Any]], outcomes: list[BatchStatus]) -> list[int]:
    """The runs, their tasks' results and attempts, and the alerts they raised; returns the run ids."""
    job_id = job.id
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
    return run_ids


def _settle_job(job: m.BatchJob, current: int, runs: list[dict[str, Any]], outcomes: list[BatchStatus],
                run_ids: list[int], now: datetime) -> None:
    """The job and its tasks as after its last run (a compare-and-set on the status it was read in)."""
    job_id = job.id
    last, outcome = runs[-1], outcomes[-1]
    for t in last["tasks"]:
        tried = t["attempts"]
        m.BatchTask.update(
            status=int(t["status"]), retries_used=t.get("retries_used", max(0, len(tried) - 1)),
            attempts=len(tried), server=tried[-1].get("server", "") if tried else None,
            attempt=None, not_before=None,
        ).where(m.BatchTask.id == t["task_id"]).execute()
    changes: dict[str, Any] = {"status": outcome}
    recurrence_runs = job.recurrence_runs + len(runs)
    if job.recurrence and outcome != BatchStatus.CANCELED:
        from . import recurrence
        from .calendars import closed_days_for

        nxt = recurrence.next_run(job.recurrence, job.time_zone, runs=recurrence_runs, ended=last["ended"],
                                  scheduled=last["scheduled"], started=last["started"],
                                  closed=closed_days_for(job.recurrence, missing_open=True))
        if nxt is not None:
            changes = {"status": BatchStatus.WAITING, "scheduled_start": nxt}
    done = (m.BatchJob.update(run_count=job.run_count + len(runs), recurrence_runs=recurrence_runs,
                              current_run=run_ids[-1], modified=now, version=m.BatchJob.version + 1, **changes)
            .where((m.BatchJob.id == job_id) & (m.BatchJob.status == current)).execute())
    if not done:
        raise Refused(f"job {job_id} changed status meanwhile; try again")


def _past_chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


# -- reading and cleaning up ---------------------------------------------------------


def job_history(job_id) -> list[dict]:
    """The job's runs, newest first, each with its tasks and every attempt with its log.

    All of it in memory: for a job with large logs, ``stream_job_history`` instead.
    """
    return [_materialized(run) for run in stream_job_history(job_id)]


def _materialized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _materialized(v) for k, v in value.items()}
    if isinstance(value, (list, Iterator)):
        return [_materialized(v) for v in value]
    return value


#: How much log text is read from the database at once (a log larger than this is read alone).
LOG_BATCH_CHARS = 1 << 20


def stream_job_history(job_id, last: int | None = None) -> Iterator[dict]:
    """The job's runs as ``job_history`` gives them, made one at a time.

    Each run is a dict whose "tasks" is a list, and each task's "attempts" an
    iterator: an attempt's log is read from the database only when that
    attempt is reached, a batch of at most LOG_BATCH_CHARS at a time (or one
    larger log alone), so a job with gigabytes of logs takes the memory of
    its largest log, not of all of them. Consume it in order (runs, their
    tasks, their attempts). Raises NotFound at once for an unknown job. With
    ``last``, only the newest ``last`` runs.
    """
    job = get_job(job_id)
    tz = job.time_zone
    tasks = list(m.tuples(m.BatchTask.select(m.BatchTask.id, m.BatchTask.key, m.BatchTask.description,
                                             m.BatchTask.retries_used, m.BatchTask.kept)
                          .where(m.BatchTask.job == job.id).order_by(m.BatchTask.id)))
    query = m.JobRun.select().where(m.JobRun.job == job.id).order_by(m.JobRun.run_no.desc())
    runs = list(query if last is None else query.limit(int(last)))
    return (_run_history(run, tasks, tz) for run in runs)


def _run_history(run: m.JobRun, tasks: list[tuple[Any, ...]], tz: str) -> dict:
    statuses = task_status_for_run(run)
    retries = {}
    kept: dict[int, bool] = {}
    if run.ended is not None:
        for r in m.RunTask.select().where(m.RunTask.run == run.id):
            retries[r.task_id] = r.retries_used
            kept[r.task_id] = bool(r.kept)
    # The attempts of the run without their logs: (id, task, attempt, status, started, ended, server, length).
    attempts: dict[int, list[tuple[Any, ...]]] = {}
    a = m.TaskAttempt
    for found in m.tuples(a.select(a.id, a.task, a.attempt, a.status, a.started, a.ended, a.server,
                                   fn.LENGTH(a.log).coerce(False))
                          .where((a.run == run.id) & a.ran_or_runs()).order_by(a.attempt, a.id)):
        attempts.setdefault(found[1], []).append(found)
    logs = _LogReader([at for tid, *_ in tasks if tid in statuses for at in attempts.get(tid, [])])
    row = run_dict(run, tz)
    assert row is not None  # a run, so a row
    row["requested"] = run.requested  # "run" (run now), "rerun", or null: an occurrence
    row["tasks"] = [
        {"id": tid, "key": key, "description": description, "status": BatchStatus(statuses[tid]).cli,
         "retries_used": retries.get(tid, retries_used) if run.ended is not None else retries_used,
         # A rerun kept its Ended status from the run before: no attempt in this run.
         "kept": kept.get(tid, False) if run.ended is not None else bool(task_kept),
         "attempts": _attempts(attempts.get(tid, []), logs, tz)}
        for tid, key, description, retries_used, task_kept in tasks
        if tid in statuses  # else added after this run
    ]
    return row


def _attempts(rows: list[tuple[Any, ...]], logs: _LogReader, tz: str) -> Iterator[dict]:
    for attempt_id, _, attempt, status, started, ended, server, _ in rows:
        yield {"attempt": attempt, "status": BatchStatus(status).cli, "started": iso(started, tz),
               "ended": iso(ended, tz), "server": server, "log": logs.log(attempt_id)}


class _LogReader:
    """The logs of a run's attempts, read in the order they are asked for, a batch at a time."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._order = [(r[0], r[7] or 0) for r in rows]  # (attempt id, length of its log), in output order
        self._next = 0
        self._read: dict[int, str] = {}

    def log(self, attempt_id: int) -> str:
        if attempt_id not in self._read:
            self._read_from(attempt_id)
        return self._read.pop(attempt_id, "") or ""

    def _read_from(self, attempt_id: int) -> None:
        self._read.clear()
        while self._next < len(self._order) and self._order[self._next][0] != attempt_id:
            self._next += 1  # asked out of order: what lies before is skipped
        batch: list[int] = []
        size = 0
        while self._next < len(self._order):
            aid, length = self._order[self._next]
            if batch and size + length > LOG_BATCH_CHARS:
                break
            batch.append(aid)
            size += length
            self._next += 1
        if attempt_id not in batch:  # not one of this run's attempts in order: read it alone
            batch = [attempt_id]
        for aid, log in m.tuples(m.TaskAttempt.select(m.TaskAttempt.id, m.TaskAttempt.log)
                                 .where(m.TaskAttempt.id << batch)):
            self._read[aid] = log


def cleanup_history(*, older_than_days, statuses=None, company=None, user=None, actor: Actor | None = None,
                    dry_run: bool = False) -> int:
    """Batch job history clean-up: delete runs that ended more than `older_than_days` ago.

    Filters: the run's final status (ended, error, canceled), the job's
    company, the job's creator. With `actor` (the command line and the console
    pass it), a user who is not a batch job manager cleans up their own jobs only.
    Returns how many runs were deleted (their attempts and logs go with them); with
    ``dry_run``, how many would be, deleting nothing (the console asks first).
    """
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)) \
            or older_than_days != older_than_days or older_than_days < 0:
        raise FieldError(f"{older_than_days!r} is not a number of days (0 or more)", field="older_than")
    final = {s.cli: s for s in JOB_FINAL}
    codes = None
    if statuses:
        codes = []
        for s in statuses:
            if isinstance(s, BatchStatus):
                s = s.cli
            if s not in final:
                raise FieldError(f"{q(s)} is not the status of a run that is over "
                                 f"(one of {', '.join(sorted(final))})", field="status")
            codes.append(int(final[s]))
    if actor is not None and not actor.is_manager:
        if user is not None and user != actor.user:
            raise NotAllowed(f"user {actor.user!r} may clean up the history of their own jobs only "
                             "(a batch job manager may clean up anyone's)")
        user = actor.user
    cutoff = utcnow() - timedelta(days=min(float(older_than_days), 100_000.0))
    with write():
        if company is not None:
            company = jobfile.check_company_id(company, field="company")
            if m.Company.get_or_none(m.Company.id == company) is None:
                raise FieldError(f"unknown company {q(company)}", field="company")
        jobs = m.BatchJob.select(m.BatchJob.id)
        if company is not None:
            jobs = jobs.where(m.BatchJob.company == company)
        if user is not None:
            jobs = jobs.where(m.BatchJob.created_by == user)
        query = m.JobRun.select(m.JobRun.id).where(
            m.JobRun.ended.is_null(False) & (m.JobRun.ended < cutoff) & (m.JobRun.job << jobs))
        if codes is not None:
            query = query.where(m.JobRun.status << codes)
        ids = [r.id for r in query]
        if dry_run:
            return len(ids)
        # Runs still current for a job (a run is over but the job points at it) are
        # history all the same: only the pointer goes.
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            m.Alert.update(run=None).where(m.Alert.run << part).execute()
            m.RunTask.delete().where(m.RunTask.run << part).execute()
            m.TaskAttempt.delete().where(m.TaskAttempt.run << part).execute()
            m.BatchJob.update(current_run=None).where(
                (m.BatchJob.current_run << part) & ~(m.BatchJob.status << list(RUNNING_JOB))).execute()
            m.JobRun.delete().where(m.JobRun.id << part).execute()
    return len(ids)
