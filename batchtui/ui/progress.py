"""Progress of executing tasks and jobs, as the batch classes report it.

A task's progress is its running attempt's (0..1, as the class reported it;
an attempt that has ended counts as done). A job's is the mean over its
tasks: a task that is over (Ended, Error, Didn't run, Canceled) counts as
done, a running one as far as it got, one still to run as nothing.

No Textual here.
"""

from __future__ import annotations

from collections.abc import Iterable

from peewee import JOIN

from .. import models as m
from ..vocabulary import TASK_FINAL, BatchStatus


def attempt_fraction(progress, ended) -> float:
    if ended is not None:
        return 1.0
    try:
        return min(1.0, max(0.0, float(progress or 0.0)))
    except (TypeError, ValueError):
        return 0.0


def task_progress(task_ids: Iterable[int]) -> dict[int, tuple[float, str | None]]:
    """Running tasks' progress: task id -> (fraction, the class's text)."""
    ids = list(task_ids)
    if not ids:
        return {}
    T, A = m.BatchTask, m.TaskAttempt
    rows = (T.select(T.id, A.progress, A.progress_text, A.ended)
            .join(A, JOIN.INNER, on=(A.id == T.attempt))
            .where(T.id.in_(ids)).tuples())
    return {tid: (attempt_fraction(progress, ended), text) for tid, progress, text, ended in rows}


def job_progress(job_ids: Iterable[int]) -> dict[int, float]:
    """Jobs' progress: job id -> mean of their tasks' (done = 1)."""
    ids = list(job_ids)
    if not ids:
        return {}
    T, A = m.BatchTask, m.TaskAttempt
    rows = (T.select(T.job, T.status, A.progress, A.ended)
            .join(A, JOIN.LEFT_OUTER, on=(A.id == T.attempt))
            .where(T.job.in_(ids)).tuples())
    sums: dict[int, list[float]] = {}
    for job_id, status, progress, ended in rows:
        if status in TASK_FINAL:
            value = 1.0
        elif status == BatchStatus.EXECUTING and (progress is not None or ended is not None):
            value = attempt_fraction(progress, ended)
        else:
            value = 0.0
        sums.setdefault(job_id, []).append(value)
    return {job_id: sum(values) / len(values) for job_id, values in sums.items()}


EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = 6) -> str:
    """A bar of block characters on a light track, then the percentage: '███▍░░  57%'."""
    fraction = min(1.0, max(0.0, fraction))
    cells = fraction * width
    full = int(cells)
    text = "█" * full
    if full < width:
        tip = int((cells - full) * 8)
        text += EIGHTHS[tip] if tip else "░"
        text += "░" * (width - full - 1)
    percent = 100 if fraction >= 1.0 else min(99, round(fraction * 100))
    return f"{text} {percent:3d}%"
