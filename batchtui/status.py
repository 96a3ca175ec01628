"""The operator's status transitions: Change status, Cancel, Delete.

The console, the command line and imports call these; the batch server's own
moves live in the engine store. Each one is a compare-and-set built from the
rules' move table (``rules.JOB_MOVES``): the job's row changes only if its
status is still the one read, and a row count of zero is refused ("changed
meanwhile") with nothing written. On PostgreSQL the job's row stays locked
by that update until the transaction commits, so a batch server cannot start
or finish the run in between the job's change and its tasks'.
"""

from __future__ import annotations

from typing import Any

from . import audit, events
from . import models as m
from .actor import Actor
from .db import retried
from .errors import NotFound, Refused
from .rules import JOB_MOVES, TASK_MOVES, Move
from .timeutil import utcnow
from .vocabulary import BatchStatus


def get_job(job_id: int) -> m.BatchJob:
    job = m.BatchJob.get_or_none(m.BatchJob.id == job_id) if m.storable_id(job_id) else None
    if job is None:
        raise NotFound(f"job {job_id}: no such batch job")
    return job


def check_can_manage(job: m.BatchJob, actor: Actor) -> None:
    """Only the job's owner or a batch job manager may change, cancel or delete it."""
    actor.check_may_manage(job.id, job.created_by)


def move_job(job_id: int, move: Move, current: int, **changes: Any) -> BatchStatus:
    """Apply one move of the table to a job read in status ``current``.

    A compare-and-set on (id, status); the version always moves on. Raises
    Refused, with nothing written, when the table does not allow the move
    from ``current`` or the job is no longer in it. Returns the new status.
    """
    if not move.allows(current):
        raise Refused(f"job {job_id} is {BatchStatus(current).label}: cannot {move.name.replace('_', ' ')} it")
    target = move.result(current)
    values: dict[str, Any] = {"modified": utcnow(), "version": m.BatchJob.version + 1, **changes}
    if target != current:
        values["status"] = int(target)
    changed = (m.BatchJob.update(**values)
               .where((m.BatchJob.id == job_id) & (m.BatchJob.status == int(current)))
               .execute())
    if changed != 1:
        raise Refused(f"job {job_id} changed status meanwhile (a batch server or another user); try again")
    return target


def move_tasks(job_id: int, move: Move, only: Any = None) -> int:
    """Apply a task move to the tasks of a job whose row this transaction holds (see move_job)."""
    query = m.BatchTask.update(status=int(move.target)) if move.target is not None else None
    if query is None:
        raise ValueError(f"{move.name} keeps the status: not a move of tasks")
    sources = move.sources if only is None else move.sources & set(only)
    return int(query.where((m.BatchTask.job == job_id)
                           & m.BatchTask.status.in_([int(s) for s in sources])).execute())


def set_job_status(job_id: int, target: BatchStatus, actor: Actor) -> m.BatchJob:
    """Change status: Withhold (stop) or Waiting (go)."""
    target = BatchStatus(target)
    moves = {BatchStatus.HOLD: JOB_MOVES["withhold"], BatchStatus.WAITING: JOB_MOVES["wait"]}
    if target not in moves:
        raise Refused(f"job {job_id}: status can be changed by hand to Withhold or Waiting only")
    move = moves[target]

    def step() -> None:
        job = get_job(job_id)
        check_can_manage(job, actor)
        current = BatchStatus(job.status)
        if not move.allows(current):
            raise Refused(
                f"job {job_id} is {current.label}: it cannot be set to {target.label} "
                "while it runs (cancel it first)"
            )
        if current != target:
            move_job(job_id, move, current)
            audit.record(actor, job_id, "status", "status", current.cli, target.cli)
            # Its tasks follow (none of them runs: the job is idle and its row is ours).
            follow = TASK_MOVES["follow_job"]
            m.BatchTask.update(status=int(target)).where(
                (m.BatchTask.job == job_id) & m.BatchTask.status.in_([int(s) for s in follow.sources])).execute()

    retried(step)
    events.changed()
    return get_job(job_id)


def cancel_job(job_id: int, actor: Actor) -> m.BatchJob:
    """Cancel: a job that is not running ends Canceled; a running one goes to
    Canceling, nothing new starts and its running tasks are stopped."""
    from .engine.store import EngineStore

    def step() -> None:
        job = get_job(job_id)
        check_can_manage(job, actor)
        current = BatchStatus(job.status)
        if current == BatchStatus.CANCELLING:
            raise Refused(f"job {job_id} is already Canceling")
        # A pending run now or rerun is canceled with the job (it would start the job again).
        if JOB_MOVES["cancel_idle"].allows(current):
            new = move_job(job_id, JOB_MOVES["cancel_idle"], current, run_request=None)
            audit.record(actor, job_id, "canceled", "status", current.cli, new.cli)
            move_tasks(job_id, TASK_MOVES["cancel_idle"])
        elif JOB_MOVES["cancel_running"].allows(current):
            new = move_job(job_id, JOB_MOVES["cancel_running"], current, run_request=None)
            audit.record(actor, job_id, "canceled", "status", current.cli, new.cli)
            move_tasks(job_id, TASK_MOVES["cancel_pending"])
            move_tasks(job_id, TASK_MOVES["cancel_executing"])
            EngineStore().advance_jobs([], [job_id], utcnow())
        else:
            raise Refused(f"job {job_id} is {current.label}: there is nothing to cancel")

    retried(step)
    events.changed()
    return get_job(job_id)


def delete_job(job_id: int, actor: Actor) -> None:
    """Delete a job that is not running, with its tasks and history (foreign keys cascade); its
    audit trail stays (audit.py)."""
    move = JOB_MOVES["delete"]

    def step() -> None:
        job = get_job(job_id)
        check_can_manage(job, actor)
        current = BatchStatus(job.status)
        if not move.allows(current):
            raise Refused(f"job {job_id} is {current.label}: cancel it before deleting it")
        # Before the delete, in its transaction: on PostgreSQL the audit guard checks the job's owner.
        audit.record(actor, job_id, "deleted", None, job.description, None)
        deleted = m.BatchJob.delete().where(
            (m.BatchJob.id == job_id) & m.BatchJob.status.in_([int(s) for s in move.sources])).execute()
        if deleted != 1:
            raise Refused(f"job {job_id} changed status meanwhile (a batch server or another user); try again")

    retried(step)


def task_status_for_run(run: m.JobRun) -> dict[int, int]:
    """Task statuses in a run: the live ones for the current run, the snapshot after."""
    if run.ended is None:
        return {t.id: t.status for t in m.BatchTask.select(m.BatchTask.id, m.BatchTask.status)
                .where(m.BatchTask.job == run.job_id)}
    return {r.task_id: r.status for r in m.RunTask.select().where(m.RunTask.run == run.id)}



# -- run now, rerun from the failed tasks (issue 14) ----------------------------------------

RUN_REQUESTS = {"run": "a run now", "rerun": "a rerun"}


def run_now(job_id: int, actor: Actor) -> m.BatchJob:
    """Run now: one run of the job as soon as a batch server sees it (within its poll interval).

    Refused for a job that is Executing or Canceling. The job's scheduled
    start and recurrence do not move, and a Withhold or Waiting job is back in
    that status after the run (engine/store.py, start_requested_runs). The
    request is the job row's run_request, written by a compare-and-set.
    The audit trail's run_now entry is written in the same transaction.
    """
    return _request_run(job_id, actor, "run")


def rerun_job(job_id: int, actor: Actor) -> m.BatchJob:
    """Rerun from the failed tasks, for a job whose last run ended Error or Canceled.

    The new run keeps the tasks that Ended in the last run and runs the
    others again. Two operators asking at once get one rerun: the request is
    a compare-and-set on the job's row (its status, its run count, and no
    request pending), and the second one is refused.
    The audit trail's rerun entry is written in the same transaction.
    """
    return _request_run(job_id, actor, "rerun")


def _request_run(job_id: int, actor: Actor, kind: str) -> m.BatchJob:
    move = JOB_MOVES["request_run"]
    what = RUN_REQUESTS[kind]

    def step() -> None:
        job = get_job(job_id)
        check_can_manage(job, actor)
        current = BatchStatus(job.status)
        if not move.allows(current):
            raise Refused(f"job {job_id} is {current.label}: {what} is refused while it runs")
        if job.run_request is not None:
            raise Refused(f"job {job_id} has {RUN_REQUESTS.get(job.run_request, 'a run')} requested already: "
                          "a batch server starts it shortly")
        if kind == "rerun":
            last = (m.JobRun.select().where(m.JobRun.job == job_id).order_by(m.JobRun.run_no.desc()).first())
            if last is None:
                raise Refused(f"job {job_id} has not run yet: there is no run to rerun")
            if last.ended is None or last.status not in (BatchStatus.ERROR, BatchStatus.CANCELED):
                raise Refused(f"job {job_id}: its last run (run {last.run_no}) ended "
                              f"{BatchStatus(last.status).label}; a rerun is for a run that ended Error or Canceled")
        changed = (m.BatchJob.update(run_request=kind, modified=utcnow(), version=m.BatchJob.version + 1)
                   .where((m.BatchJob.id == job_id) & (m.BatchJob.status == int(current))
                          & (m.BatchJob.run_count == job.run_count) & m.BatchJob.run_request.is_null())
                   .execute())
        if changed != 1:
            raise Refused(f"job {job_id} changed meanwhile (a batch server or another user): "
                          f"{what} was not requested; look at it again")
        audit.record(actor, job_id, "run_now" if kind == "run" else "rerun", None, None,
                     None if kind == "run" else {"run": job.run_count})

    retried(step)
    events.changed()
    return get_job(job_id)
