"""What the Batch tasks form reads: a job's tasks, a task's conditions, its latest attempt's log.

Read on the UI thread when a form opens, and in a worker thread on a live
refresh (``PagedGrid.reload_in_background``): plain functions of their ids.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ... import models as m
from ...vocabulary import BatchStatus
from ...waiting import job_reasons
from ..format import TIME as SECONDS
from ..format import condition_label, status_label, status_style, yes_no, zoned
from ..progress import attempt_fraction, bar, task_progress
from ..safe_text import one_line, safe, visible
from ..widgets.paged_grid import Column, GridRow

TASK_COLUMNS = [
    Column("id", "Task ID", 7, align="right"),
    Column("description", "Description", 13, flex=True),
    Column("company", "Company", 8),
    Column("class", "Class name", 10, flex=True),
    Column("group", "Batch group", 11),
    Column("status", "Status", 10, essential=True),
    # A running task's progress; a task held back by a scheduling control says why (waiting.py).
    Column("progress", "Progress / waiting", 11, flex=True, essential=True),
    Column("ignore", "Ignore failure", 14),
    Column("retries", "Max retries", 11, align="right"),
    Column("used", "Retries used", 12, align="right"),
]
CONDITION_COLUMNS = [
    Column("parent", "Task ID", 7, align="right"),
    Column("description", "Description", 20, flex=True),
    Column("expected", "Expected status", 15),
    Column("now", "Parent status", 13),
]


def task_rows(job_id: int) -> list[GridRow]:
    """The job's tasks, with the progress of those running."""
    tasks: list[Any] = list(m.BatchTask.select().where(m.BatchTask.job == job_id).order_by(m.BatchTask.id))
    running = task_progress(t.id for t in tasks if t.status == BatchStatus.EXECUTING)
    job = m.BatchJob.get_or_none(m.BatchJob.id == job_id)
    reasons = job_reasons(job, tasks) if job is not None and any(
        t.status in (BatchStatus.READY, BatchStatus.WAITING) for t in tasks) else {}
    rows = []
    for t in tasks:
        done = running.get(t.id)
        if done is None and t.status == BatchStatus.EXECUTING:
            done = (0.0, None)  # started, nothing reported yet
        rows.append(GridRow(t.id, [
            str(t.id), one_line(t.description), one_line(t.company_id), one_line(t.class_name),
            one_line(t.batch_group) or "", status_label(t.status),
            bar(done[0]) if done else one_line(reasons.get(t.id) or ""),
            yes_no(t.ignore_failure), str(t.max_retries), str(t.retries_used),
        ], {5: status_style(t.status), 6: "$text-warning"}))
    return rows


def condition_rows(task_id: int) -> list[GridRow]:
    """The Has conditions grid of a task: each parent task, its expected and current status."""
    C: Any = m.BatchConstraint
    Parent = m.BatchTask.alias()
    query: Any = (C.select(C.id, C.parent, Parent.description, C.expected, Parent.status)
                  .join(Parent, on=(C.parent == Parent.id)).where(C.task == task_id).order_by(C.id).tuples())
    return [GridRow(cid, [str(parent), one_line(description), condition_label(expected), status_label(status)],
                    {3: status_style(status)}) for cid, parent, description, expected, status in query]


def latest_attempt_log(task_id: int, job_id: int) -> Text | str:
    """The Log tab: the task's latest attempt (server, times, progress while it runs) and its log."""
    attempt: Any = (m.TaskAttempt.select().where((m.TaskAttempt.task == task_id) & m.TaskAttempt.ran_or_runs())
                    .order_by(m.TaskAttempt.id.desc()).first())
    if attempt is None:
        return "The task has not run yet."
    tz = m.BatchJob.get_by_id(job_id).time_zone
    head = (f"Attempt {attempt.attempt}: {status_label(attempt.status)} on {visible(attempt.server)}, "
            f"started {zoned(attempt.started, tz, SECONDS)}"
            + (f", ended {zoned(attempt.ended, tz, SECONDS)}" if attempt.ended else ""))
    if attempt.ended is None and (attempt.progress is not None or attempt.progress_text):
        fraction = attempt_fraction(attempt.progress, attempt.ended)
        head += f"\nProgress: {bar(fraction, 20)}" + (
            f"  {one_line(attempt.progress_text)}" if attempt.progress_text else "")
    return safe(head + "\n\n" + (attempt.log or "(no log lines)"), keep_newlines=True)
