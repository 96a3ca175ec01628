"""The rules of the batch framework: allowed transitions, conditions, outcomes, retries.

Pure functions and tables over the vocabulary: no database, no engine. The
operator transitions (status.py) and the engine store (engine/store.py) both
build their compare-and-set statements from ``JOB_MOVES`` and
``TASK_MOVES``: a write names the move it makes, the table says from which
statuses it may start and where it ends, and the caller checks the row
count, so two processes never both win and a move the table does not allow
is never written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from .vocabulary import TASK_FINAL, BatchStatus, ConditionStatus, ConditionType

S = BatchStatus


class By(Enum):
    """Who makes a move: an operator (console, command line, import) or a batch server."""

    OPERATOR = "operator"
    SERVER = "server"


@dataclass(frozen=True)
class Move:
    """One allowed change of status: from any of ``sources`` to ``target``.

    ``target`` None means the status stays what it was (an edit of a job's
    fields, guarded so that it never lands on a running job).
    """

    name: str
    sources: frozenset[BatchStatus]
    target: BatchStatus | None
    by: By

    def allows(self, current: int) -> bool:
        return current in self.sources

    def result(self, current: int) -> BatchStatus:
        """The status after the move from ``current`` (which it must allow)."""
        if not self.allows(current):
            raise ValueError(f"{self.name}: not allowed from {BatchStatus(current).label}")
        return BatchStatus(current) if self.target is None else self.target


def _move(name: str, sources: Iterable[BatchStatus], target: BatchStatus | None, by: By) -> Move:
    return Move(name, frozenset(sources), target, by)


#: A job that no batch server is running: its fields may be edited, its status
#: set by hand, it may be deleted.
IDLE_JOB = frozenset({S.HOLD, S.WAITING, S.FINISHED, S.ERROR, S.CANCELED})
RUNNING_JOB_STATUSES = frozenset({S.EXECUTING, S.CANCELLING})

#: Every change of a job's status, by whom, from where, to where.
JOB_MOVES: dict[str, Move] = {m.name: m for m in (
    # The operator's Change status dialog: Withhold stops it, Waiting lets it run.
    _move("withhold", IDLE_JOB, S.HOLD, By.OPERATOR),
    _move("wait", IDLE_JOB, S.WAITING, By.OPERATOR),
    # Functions > Cancel: a job that is not running ends at once...
    _move("cancel_idle", {S.HOLD, S.WAITING}, S.CANCELED, By.OPERATOR),
    # ... a running one stops starting tasks and its running tasks are stopped.
    _move("cancel_running", {S.EXECUTING}, S.CANCELLING, By.OPERATOR),
    # Edits of the job's fields, recurrence, history written after the fact, delete.
    _move("edit", IDLE_JOB, None, By.OPERATOR),
    _move("delete", IDLE_JOB, None, By.OPERATOR),
    _move("record_history", IDLE_JOB, None, By.OPERATOR),
    # An operator asks for a run now, or a rerun from the failed tasks (a request on the row)...
    _move("request_run", IDLE_JOB, None, By.OPERATOR),
    # ... which a batch server starts, whatever the job's idle status.
    _move("start_requested_run", IDLE_JOB, S.EXECUTING, By.SERVER),
    # The batch server: a due Waiting job starts a run...
    _move("start_run", {S.WAITING}, S.EXECUTING, By.SERVER),
    # ... and a run whose tasks have all settled ends with its outcome, or a
    # recurring job goes back to Waiting for its next occurrence.
    _move("end_run", RUNNING_JOB_STATUSES, None, By.SERVER),
)}

#: Every change of a task's status.
TASK_MOVES: dict[str, Move] = {m.name: m for m in (
    # A run starts: tasks without conditions are Ready, the others Waiting.
    _move("run_start", set(BatchStatus), None, By.SERVER),
    _move("claim", {S.READY}, S.EXECUTING, By.SERVER),
    _move("condition_met", {S.WAITING}, S.READY, By.SERVER),
    _move("condition_dead", {S.WAITING}, S.NOT_RUN, By.SERVER),
    _move("settle", {S.EXECUTING, S.CANCELLING}, None, By.SERVER),
    _move("retry", {S.EXECUTING}, S.READY, By.SERVER),
    _move("hand_back", {S.EXECUTING, S.CANCELLING}, None, By.SERVER),
    # The operator: a job's status set by hand carries its tasks along
    # (only while the job is idle), a cancel stops what has not run.
    _move("follow_job", set(BatchStatus) - {S.EXECUTING, S.CANCELLING, S.READY}, None, By.OPERATOR),
    _move("cancel_pending", {S.WAITING, S.READY}, S.NOT_RUN, By.OPERATOR),
    _move("cancel_executing", {S.EXECUTING}, S.CANCELLING, By.OPERATOR),
    _move("cancel_idle", set(BatchStatus) - {S.EXECUTING, S.CANCELLING}, S.CANCELED, By.OPERATOR),
)}


def job_move(name: str) -> Move:
    return JOB_MOVES[name]


def task_move(name: str) -> Move:
    return TASK_MOVES[name]


def sql_in(statuses: Iterable[int]) -> str:
    """The statuses as a literal SQL list (a literal lets the planner use the partial indexes)."""
    return ",".join(str(int(s)) for s in sorted(statuses))


# -- conditions, outcomes, retries -------------------------------------------------


def evaluate_conditions(condition_type: int, pairs: Iterable[tuple[int, int]]) -> bool | None:
    """Whether a dependent task can run, from (expected, parent status) pairs.

    True: run it now. False: it can never run (Didn't run). None: wait.
    A task with no conditions is ready at once.
    """
    pairs = list(pairs)
    if not pairs:
        return True
    met = [ConditionStatus(e).met_by(p) for e, p in pairs]
    dead = [p in TASK_FINAL and not ok for (_, p), ok in zip(pairs, met, strict=True)]
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


def initial_job_status(requested: str | None) -> BatchStatus:
    """A new job starts in Withhold unless the file asks for Waiting."""
    if requested in (None, "withhold"):
        return S.HOLD
    if requested == "waiting":
        return S.WAITING
    raise ValueError(requested)


def job_outcome(job_status: int, tasks: Iterable[tuple[int, bool]]) -> BatchStatus:
    """Canceled when canceled; Error when a task failed without Ignore task failure; else Ended."""
    return run_outcome(job_status, any(status == S.ERROR and not ignore for status, ignore in tasks))


def run_outcome(job_status: int, failed: bool) -> BatchStatus:
    """job_outcome, with "a task failed without Ignore task failure" worked out by the caller."""
    if job_status in (S.CANCELLING, S.CANCELED):
        return S.CANCELED
    return S.ERROR if failed else S.FINISHED


def retry_delay(retry: int, base: float) -> float:
    """Wait base x 2^(n-1) before retry n, capped at 300 s; base 0 retries at once."""
    if base <= 0:
        return 0.0
    return float(min(300.0, base * (2 ** (retry - 1))))
