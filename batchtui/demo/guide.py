"""The task guide: "Create a batch job" with USMF, one step at a time.

The steps of the seed procedure, what to press for each, and how to tell from
the database that it is done. The guide follows one job: the newest job the
acting user created after the guide started. Each step's check is a pure
function of that job (and the user) over the models, so the console's side
panel only has to poll ``evaluate`` and draw what it returns; nothing here
knows about Textual.

Instructions mark keys and values to type with backticks (`Ctrl+N`); the
panel shows them as keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from peewee import fn

from .. import models as m
from ..errors import UserError
from ..timeutil import local, utcnow
from ..vocabulary import BatchStatus

#: The demo data company of the procedure.
DEMO_COMPANY = "USMF"
#: The status a job has once it was handed to the scheduler (step 8), or later.
RELEASED = frozenset(BatchStatus) - {BatchStatus.HOLD}


# -- what the database says about the followed job ------------------------------


def followed_job(user: str, since: datetime, after_id: int = 0) -> m.BatchJob | None:
    """The job the guide follows: the newest one ``user`` created at or after ``since``.

    ``after_id`` (the highest Job ID when the guide started) keeps the query a
    short walk over the newest rows however many jobs the table holds.
    """
    return (m.BatchJob.select()
            .where((m.BatchJob.id > after_id) & (m.BatchJob.created_by == user)
                   & (m.BatchJob.created >= since))
            .order_by(m.BatchJob.id.desc()).first())


def newest_job_id() -> int:
    return m.BatchJob.select(fn.MAX(m.BatchJob.id)).scalar() or 0


def job_created(job: m.BatchJob | None, user: str) -> bool:
    return job is not None


def has_recurrence(job: m.BatchJob | None, user: str) -> bool:
    return job is not None and bool(job.recurrence)


def alert_settings(job: m.BatchJob | None, user: str) -> m.JobAlert | None:
    if job is None:
        return None
    return m.JobAlert.get_or_none((m.JobAlert.job == job.id) & (m.JobAlert.user == user))


def has_alerts(job: m.BatchJob | None, user: str) -> bool:
    """The user asked to be alerted of at least one of Ended, Has an error, Is canceled."""
    row = alert_settings(job, user)
    return row is not None and bool(row.ended or row.error or row.canceled)


def task_count(job: m.BatchJob | None) -> int:
    if job is None:
        return 0
    return m.BatchTask.select(fn.COUNT(m.BatchTask.id)).where(m.BatchTask.job == job.id).scalar() or 0


def has_task(job: m.BatchJob | None, user: str) -> bool:
    return task_count(job) >= 1


def has_two_tasks(job: m.BatchJob | None, user: str) -> bool:
    return task_count(job) >= 2


def has_condition(job: m.BatchJob | None, user: str) -> bool:
    if job is None:
        return False
    return (m.BatchConstraint.select(m.BatchConstraint.id)
            .join(m.BatchTask, on=(m.BatchConstraint.task == m.BatchTask.id))
            .where(m.BatchTask.job == job.id).exists())


def has_failure_handling(job: m.BatchJob | None, user: str) -> bool:
    """Some task ignores its failure or is retried (Maximum retries above 0)."""
    if job is None:
        return False
    return (m.BatchTask.select(m.BatchTask.id)
            .where((m.BatchTask.job == job.id)
                   & ((m.BatchTask.ignore_failure == True) | (m.BatchTask.max_retries > 0)))  # noqa: E712
            .exists())


def last_run(job: m.BatchJob | None) -> m.JobRun | None:
    if job is None:
        return None
    return m.JobRun.select().where(m.JobRun.job == job.id).order_by(m.JobRun.run_no.desc()).first()


def is_released(job: m.BatchJob | None, user: str) -> bool:
    """Change status to Waiting was done: the job left Withhold (or has run already)."""
    if job is None:
        return False
    return BatchStatus(job.status) in RELEASED or last_run(job) is not None


def ended_run(job: m.BatchJob | None) -> m.JobRun | None:
    """The latest run of the job that is over."""
    if job is None:
        return None
    return (m.JobRun.select().where((m.JobRun.job == job.id) & m.JobRun.ended.is_null(False))
            .order_by(m.JobRun.run_no.desc()).first())


def job_alert(job: m.BatchJob | None, user: str) -> m.Alert | None:
    """The newest Action-center alert the user got for this job."""
    if job is None:
        return None
    return (m.Alert.select().where((m.Alert.job == job.id) & (m.Alert.user == user))
            .order_by(m.Alert.id.desc()).first())


def alert_expected(job: m.BatchJob | None, user: str, outcome: int) -> bool:
    """Whether the user's Alerts settings ask for an alert on a run ending with ``outcome``."""
    row = alert_settings(job, user)
    if row is None:
        return False
    if outcome == BatchStatus.FINISHED:
        return bool(row.ended)
    if outcome == BatchStatus.ERROR:
        return bool(row.error)
    if outcome == BatchStatus.CANCELED:
        return bool(row.canceled)
    return False


def ran_and_alerted(job: m.BatchJob | None, user: str) -> bool:
    """A run of the job is over and the alert for it reached the user.

    When the user's Alerts settings do not ask for an alert on that outcome
    (say only Has an error, and the job ended), none will come: the run being
    over is the end of the walk-through then.
    """
    run = ended_run(job)
    if run is None:
        return False
    alert = job_alert(job, user)
    if alert is not None and (alert.run_id is None or alert.run_id == run.id):
        return True
    return not alert_expected(job, user, run.status)


# -- the steps -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    #: What to do, one line each; keys and values to type in `backticks`.
    instructions: tuple[str, ...]
    #: Said when the check turns true.
    done_text: str
    check: Callable[[m.BatchJob | None, str], bool] = field(repr=False)


STEPS: tuple[Step, ...] = (
    Step(1, "Create the batch job", (
        "On the Batch jobs page press `Ctrl+N` (New).",
        "Job description: a name, e.g. `USMF invoicing`",
        "Scheduled start: keep now (or type a date and time).",
        "Company: choose `USMF` (`Tab` to it, `Enter`).",
        "Press `Ctrl+S` to save. It starts in Withhold.",
    ), "Batch job saved.", job_created),
    Step(2, "Create a recurrence", (
        "`Esc` back to the grid, your new job selected.",
        "Press `r` (Batch job > Recurrence).",
        "Range and pattern, e.g. every `1` day; End after `1` occurrence runs it once.",
        "Press `Ctrl+S` (OK).",
    ), "Recurrence saved.", has_recurrence),
    Step(3, "Add alerts", (
        "Press `a` (Batch job > Alerts).",
        "Tick Ended and Has an error (`Space`, `Tab` to move).",
        "Tick Show pop-up.",
        "Press `Ctrl+S` (OK).",
    ), "Alerts saved.", has_alerts),
    Step(4, "Add a task", (
        "Press `Enter` (View tasks), then `Ctrl+N`.",
        "Description: e.g. `Post sales invoices`.",
        "Company accounts: `USMF`.",
        "Class name: `Enter`, type e.g. `SalesInvoicePosting`, `Enter`.",
        "Batch group: leave it empty (the Empty batch group runs on every server, the "
        "console's own too; FIN, INV, MRP and WF wait for AOS1 and AOS2, which are stopped).",
        "Press `Ctrl+S` to save the task.",
    ), "Task saved.", has_task),
    Step(5, "Add a second task", (
        "Press `Ctrl+N` again.",
        "Description: e.g. `Transfer to general ledger`.",
        "Class name: e.g. `SubledgerTransfer`.",
        "Press `Ctrl+S`.",
    ), "Second task saved.", has_two_tasks),
    Step(6, "Add a condition", (
        "`Esc` to the tasks grid; select the second task.",
        "Press `3` (Has conditions), then `Ctrl+N`.",
        "Parent task ID: `Enter`, choose the first task.",
        "Expected status: Ended.",
        "Press `Ctrl+S` to save the condition.",
    ), "Condition saved: the second task waits for the first.", has_condition),
    Step(7, "Handle task failures", (
        "`Esc` to the tasks grid, select a task, `Enter` to edit.",
        "`Tab` to Ignore task failure, `Space` to tick it,",
        "or set Maximum retries (no more than `5`).",
        "Press `Ctrl+S`.",
    ), "Failure handling saved.", has_failure_handling),
    Step(8, "Change status to Waiting", (
        "`Esc` (twice from a field) back to Batch jobs, your job selected.",
        "Press `t` (Functions > Change status).",
        "Choose Waiting (go); Withhold is stop.",
        "Press `Ctrl+S` (OK).",
    ), "The job is handed to the batch server.", is_released),
    Step(9, "Watch it run", (
        "The batch server picks the job up at its scheduled start.",
        "Watch its status below and in the grid.",
        "When it ends, the alert pops up; `F4` opens the Action center.",
    ), "The run is over.", ran_and_alerted),
)


# -- progress --------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What the panel shows: which steps are done, the current one, the job's live state."""

    job_id: int | None
    job_description: str
    done: tuple[bool, ...]
    live: tuple[str, ...] = ()
    note: str = ""

    @property
    def current(self) -> Step | None:
        """The first step not done yet; None when the walk-through is over."""
        for step, ok in zip(STEPS, self.done, strict=True):
            if not ok:
                return step
        return None

    @property
    def finished(self) -> bool:
        return all(self.done)

    @property
    def done_count(self) -> int:
        return sum(self.done)


def live_state(job: m.BatchJob | None, user: str) -> tuple[tuple[str, ...], str]:
    """The job's status, its tasks, its latest run and alert, in a few short lines; and a note."""
    if job is None:
        return (), ""
    lines = [f"Status: {BatchStatus(job.status).label}"]
    if job.status == BatchStatus.WAITING:
        try:
            start = local(job.scheduled_start, job.time_zone)
            lines[0] += f", next start {start:%Y-%m-%d %H:%M}"
        except (UserError, ValueError, OverflowError):  # an unknown zone: the status says enough
            pass
    counts: dict[str, int] = {}
    executing = []
    for task in m.BatchTask.select(m.BatchTask.id, m.BatchTask.status).where(m.BatchTask.job == job.id):
        label = BatchStatus(task.status).label
        counts[label] = counts.get(label, 0) + 1
        if task.status == BatchStatus.EXECUTING:
            executing.append(task.id)
    if counts:
        lines.append("Tasks: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())))
    if executing:
        progress = (m.TaskAttempt.select(m.TaskAttempt.progress)
                    .where(m.TaskAttempt.task.in_(executing) & m.TaskAttempt.ended.is_null()
                           & m.TaskAttempt.progress.is_null(False))
                    .order_by(m.TaskAttempt.id.desc()).first())
        if progress is not None and progress.progress is not None:
            lines.append(f"Progress: {int(round(progress.progress * 100))}%")
    note = ""
    run = last_run(job)
    if run is not None:
        if run.ended is None:
            lines.append(f"Run {run.run_no}: running")
        else:
            lines.append(f"Run {run.run_no}: {BatchStatus(run.status).label}")
            alert = job_alert(job, user)
            if alert is not None:
                lines.append(f"Alert: {alert.message}")
            elif not alert_expected(job, user, run.status):
                note = (f"No alert: your Alerts settings do not ask for one when the job "
                        f"is {BatchStatus(run.status).label.lower()}.")
    elif job.status == BatchStatus.WAITING and job.scheduled_start > utcnow():
        note = "Waiting for its scheduled start; to see it run now, set Scheduled start to now."
    return tuple(lines), note


def dead_group_note(job: m.BatchJob) -> str:
    """A task of the job in a batch group that no live batch server serves would wait for ever:
    say so while it can still be changed, and how."""
    from ..validators import q
    from ..waiting import WaitingContext

    groups = sorted({t.batch_group for t in m.BatchTask.select(m.BatchTask.batch_group)
                     .where(m.BatchTask.job == job.id)})
    if not groups:
        return ""
    served = WaitingContext.read().servers_of
    dead = [g for g in groups if not served.get(g)]
    if not dead:
        return ""
    return (f"No running batch server serves batch group {q(dead[0])}: its tasks would wait. Clear the "
            "task's Batch group (the Empty batch group runs here), or add this console's server to the "
            "group in Batch groups.")


@dataclass
class GuideSession:
    """One walk-through: the acting user and when it started (the job it follows is newer)."""

    user: str
    since: datetime = field(default_factory=utcnow)
    after_id: int = 0

    @classmethod
    def start(cls, user: str) -> GuideSession:
        """A walk-through starting now: only jobs created from here on are followed."""
        return cls(user, utcnow(), newest_job_id())

    def job(self) -> m.BatchJob | None:
        return followed_job(self.user, self.since, self.after_id)

    def evaluate(self) -> Progress:
        # One read transaction: on SQLite every query below sees the same
        # snapshot, so a batch server's commit in between cannot pair the
        # job's old status with its run's new one ("Executing", "Run 1: Ended").
        with m.database.atomic():
            return self._evaluate()

    def _evaluate(self) -> Progress:
        job = self.job()
        done = tuple(bool(step.check(job, self.user)) for step in STEPS)
        live, note = live_state(job, self.user) if done[0] else ((), "")
        if job is not None and not note and job.company_id != DEMO_COMPANY and not done[3]:
            note = (f"Job {job.id} is in company {job.company_id}; the procedure uses "
                    f"{DEMO_COMPANY}: choose it in Company and press Ctrl+S.")
        if job is not None and not note:
            note = dead_group_note(job)
        return Progress(job.id if job else None, job.description if job else "", done, live, note)
