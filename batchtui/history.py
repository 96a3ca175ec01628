"""Runs written into a job's history after the fact: the demo's weeks of history,
and anything else that brings runs from elsewhere.

The statuses are checked like every other status write: the rules decide
each run's outcome, and the job is changed by a compare-and-set on the
status it was read in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from . import events
from . import models as m
from .db import write
from .errors import Refused
from .rules import JOB_MOVES, job_outcome
from .status import get_job
from .timeutil import utcnow
from .vocabulary import EVENT_OF, JOB_FINAL, TASK_FINAL, BatchStatus

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
    they count as mailed, so a batch server does not e-mail old news.
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


def _past_chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
