"""The engine store: every statement a batch server runs.

The batch server (server.py) receives a store and builds no SQL. Each status
write here is a compare-and-set built from the rules' move table
(``rules.JOB_MOVES``, ``rules.TASK_MOVES``) whose row count is checked; a
mismatch raises ``RowsChanged``, the round's transaction is rolled back and
the round retried with fresh reads. Every change a batch server makes to a
job (a run starting or ending, the next occurrence) bumps the job's
``version``, so that a form read before it is refused when it saves.

Fencing (issue #16, no task twice at once). A batch server's row has an
``epoch`` that goes up when the server registers and when another server
declares it dead; each attempt records the epoch it was claimed under. Every
write a server makes about its own attempts (claim, log, progress, process
group, end) and its heartbeat is conditional on its row still having that
epoch and not being marked stopped: folded into the statement that writes
(an EXISTS on batch_server's primary key), not a statement of its own. When
such a write changes fewer rows than it should, ``_check_fence`` tells a
lost race (``RowsChanged``, the round is retried) from a server that was
declared dead or replaced (``ServerFenced``: it stops its attempts, records
nothing more for them and registers again). An attempt whose epoch is older
than its server's belongs to no one: ``orphaned_attempts`` finds it and
``take_back`` settles it.

On SQLite a write transaction holds the database's write lock from its
first statement (BEGIN IMMEDIATE), so a fenced write sees exactly the epoch
that is current. On PostgreSQL each statement sees what was committed when
it began: a write may slip in while another server's declaration commits.
That write is then ordered before the declaration, and the compare-and-set
on the task's status keeps the take-back from undoing it twice; a claim
that commits after a take-back has read is found by the next heartbeat's
sweep of orphaned attempts, by any server.

SQLite and PostgreSQL differ only in the dialect (dialect.py).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import models as m
from .. import procs
from ..controls import Period, Window, make_period, schedule_from_json
from ..db import write
from ..errors import UserError
from ..rules import (
    JOB_MOVES,
    RUNNING_JOB_STATUSES,
    TASK_MOVES,
    evaluate_conditions,
    retry_delay,
    run_outcome,
    sql_in,
)
from ..timeutil import utcnow as _utcnow
from ..vocabulary import ACTIVE_TASK, EVENT_OF, TASK_FINAL, BatchStatus, Priority
from .dialect import Bulk, Dialect, as_datetime, chunks, exactly, in_marks

# Plain ints for the statement parameters of the hot path (an IntEnum member
# goes through int() for every row otherwise).
_WAITING, _READY, _EXECUTING = int(BatchStatus.WAITING), int(BatchStatus.READY), int(BatchStatus.EXECUTING)
_CANCELLING, _CANCELED = int(BatchStatus.CANCELLING), int(BatchStatus.CANCELED)
_FINISHED, _ERROR, _NOT_RUN = int(BatchStatus.FINISHED), int(BatchStatus.ERROR), int(BatchStatus.NOT_RUN)
_RUNNING_TASK = (_EXECUTING, _CANCELLING)
_ACTIVE = sql_in(ACTIVE_TASK)
_START = JOB_MOVES["start_run"]
_END = JOB_MOVES["end_run"]
_START_REQUESTED = JOB_MOVES["start_requested_run"]
_HOLD = int(BatchStatus.HOLD)
assert _START.sources == {BatchStatus.WAITING} and _START.target == BatchStatus.EXECUTING
assert TASK_MOVES["claim"].sources == {BatchStatus.READY}


@dataclass(slots=True)
class Claimed:
    """A task attempt handed to a worker thread."""

    task_id: int
    attempt_id: int
    attempt: int
    job_id: int
    run_id: int
    class_name: str
    params: dict[str, Any]
    company: str
    run_by: str
    description: str = ""
    priority: int = 1
    group: str = ""
    # When it was due: the later of its run's scheduled start and a retry's not-before
    # (a datetime, or SQLite's text of one); for the start-delay metric (engine/metrics.py).
    due: Any = None
    time_limit: float | None = None  # seconds this attempt may run (its server stops it then)


@dataclass(slots=True)
class Outcome:
    """What a worker reports when an attempt is over."""

    task_id: int
    attempt_id: int
    result: str  # "ended", "error", "canceled", "handback"
    log: str = ""
    ended: datetime | None = None
    started: datetime | None = None  # when its class began, if not when it was claimed (claimed ahead)
    began: bool = True  # False: handed back before its class began (no attempt in history)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """A batch server's row of the Server configuration form, as the server applies it."""

    threads: int | None = None  # None: its --threads
    reserved: int = 0
    schedule: tuple[Window, ...] = ()
    paused: bool = False


@dataclass(slots=True)
class DeadServer:
    name: str
    heartbeat: datetime


@dataclass(frozen=True, slots=True)
class Fence:
    """Who writes: a batch server's name and the epoch it registered with."""

    server: str
    epoch: int


@dataclass(slots=True)
class Orphan:
    """A running task whose attempt belongs to no one any more (see orphaned_attempts)."""

    task_id: int
    attempt_id: int
    server: str  # the server that claimed it
    heartbeat: datetime | None  # that server's last heartbeat (None: its row is gone)
    stopped: bool  # that server is marked stopped (declared dead); else it registered again
    host: str | None  # where its shell command runs, if it started one
    pgid: int | None
    pgid_key: str | None
    queued: bool = False  # claimed ahead and never recorded as started: taken back, it uses no retry
    logged: bool = False  # it has log lines: queued, its (rerun_safe) class began all the same


class ServerNameInUse(UserError):
    """Another live batch server has this name."""


class ServerFenced(RuntimeError):
    """This batch server was declared dead (or another server took its name): its attempts are not its own."""


# Conditions of a write about an attempt by the server that claimed it: the
# attempt is still open, and its server row still has the epoch it was
# claimed under and is not marked stopped.
_OWNED = ("ended IS NULL AND EXISTS (SELECT 1 FROM batch_server s WHERE s.name = task_attempt.server "
          "AND s.epoch = task_attempt.epoch AND s.stopped IS NULL)")
_FENCE = "EXISTS (SELECT 1 FROM batch_server s WHERE s.name = ? AND s.epoch = ? AND s.stopped IS NULL)"
# The fenced writes, made once (one string object: see Dialect.marked).
_LOG_OWNED = f"UPDATE task_attempt SET log = log || ? WHERE id = ? AND {_OWNED}"
# The updates of many rows a round makes (see Bulk: one statement on PostgreSQL).
_ID_STATUS = (("id", "bigint"), ("status", "int"))  # compare-and-set: the row is still in the state read
# The claim clears not_before: the retry index then holds only the Ready tasks that wait for a retry.
_CLAIM_TASKS = Bulk("batch_task", (("status", "int", None), ("server", "text", None), ("attempt", "bigint", None),
                                   ("attempts", "int", None), ("not_before", None, "NULL")), _ID_STATUS)
_CLOSE_BULK = Bulk("task_attempt", (("status", "int", None), ("started", "timestamp", "COALESCE({v}, started)"),
                                    ("ended", "timestamp", None), ("log", "text", "log || {v}"),
                                    ("queued", None, "NULL")),
                   (("id", "bigint"),), "ended IS NULL")
_CLOSE_OWNED_BULK = Bulk("task_attempt", (("status", "int", "COALESCE({v}, status)"),
                                          ("started", "timestamp", "COALESCE({v}, started)"),
                                          ("ended", "timestamp", None), ("log", "text", "log || {v}"),
                                          ("queued", None, "NULL")),
                         (("id", "bigint"),), _OWNED)
# A handed-back attempt that never started keeps ``queued`` once closed: it is no attempt
# (history leaves it out: "a task that never started in a run has an empty attempts list").
_NEVER_STARTED = Bulk("task_attempt", (("queued", None, "1"),), (("id", "bigint"),), "ended IS NOT NULL")
_STALE = Bulk("task_attempt", (("ended", "timestamp", None), ("log", "text", "log || {v}"), ("queued", None, "NULL")),
              (("id", "bigint"),))
# The real start of an attempt claimed ahead, recorded in the round after it (see claim_ready_tasks).
_STARTED_OWNED = Bulk("task_attempt", (("started", "timestamp", None), ("queued", None, "NULL")),
                      (("id", "bigint"),), f"queued IS NOT NULL AND {_OWNED}")
_SETTLE = Bulk("batch_task", (("status", "int", None), ("attempt", None, "NULL")), _ID_STATUS)
_HANDBACK = Bulk("batch_task", (("status", "int", None), ("server", None, "NULL"), ("attempt", None, "NULL")),
                 _ID_STATUS)
_RETRY = Bulk("batch_task", (("status", None, str(_READY)), ("retries_used", None, "retries_used + 1"),
                             ("not_before", "timestamp", None), ("server", None, "NULL"), ("attempt", None, "NULL")),
              _ID_STATUS)
_RUN_END = Bulk("job_run", (("status", "int", None), ("ended", "timestamp", None)), (("id", "bigint"),))
_JOB_END = Bulk("batch_job", (("status", "int", None), ("modified", "timestamp", None),
                              ("version", None, "version + 1")), _ID_STATUS)
_JOB_AGAIN = Bulk("batch_job", (("status", "int", None), ("modified", "timestamp", None),
                                ("scheduled_start", "timestamp", None), ("version", None, "version + 1")), _ID_STATUS)
_ATTEMPT_COLUMNS = (("run_id", "bigint"), ("task_id", "bigint"), ("attempt", "int"), ("status", "int"),
                    ("started", "timestamp"), ("server", "text"), ("log", "text"), ("epoch", "int"), ("queued", "int"))
_PROGRESS_OWNED = f"UPDATE task_attempt SET progress = ?, progress_text = ? WHERE id = ? AND {_OWNED}"
_PROCESS_OWNED = (f"UPDATE task_attempt SET host = ?, pgid = ?, pgid_key = ?, started = COALESCE(?, started), "
                  f"queued = NULL WHERE id = ? AND {_OWNED}")


_CLAIM = (
    "SELECT t.id, t.class_name, t.params, t.company_id, t.attempts, t.description, t.job_id, "
    "j.run_by, j.current_run, t.job_priority, t.batch_group, t.job_start, t.not_before, t.time_limit "
    "FROM batch_task t JOIN batch_job j ON j.id = t.job_id "
    # The literal status lets the planner use the partial index. A task of a
    # job being canceled is never claimed (the cancel makes it Didn't run).
    f"WHERE t.status = {_READY} AND (t.not_before IS NULL OR t.not_before <= ?) "
    "AND t.batch_group IN ({in}) "
    f"AND +j.status = {_EXECUTING} "  # "+": by the claim index, the job by its key
    "{reserved}ORDER BY t.job_priority DESC, t.job_start, t.id LIMIT ?")
_RESERVED = int(Priority.RESERVED)

# PostgreSQL (issue 17): the ids are picked in a small subquery that walks the
# claim index (batch_task_claim_order) in its order and stops after LIMIT rows
# it could lock, and only those rows are joined to their jobs. The job's status
# is a scalar subquery per candidate, which the planner cannot turn into a join:
# so whatever the statistics say (ANALYZE run while no task was Ready, or with
# thousands Ready), the plan is the index walk, never "every Ready task joined
# to its job, then sorted" (10,000 buffer reads a claim with 3,300 Ready tasks).
_PG_CLAIM = (
    "SELECT t.id, t.class_name, t.params, t.company_id, t.attempts, t.description, t.job_id, "
    "j.run_by, j.current_run, t.job_priority, t.batch_group, t.job_start, t.not_before, t.time_limit "
    "FROM (SELECT c.id FROM batch_task c "
    f"WHERE c.status = {_READY} AND (c.not_before IS NULL OR c.not_before <= ?) "
    "AND c.batch_group IN ({in}) "
    f"AND (SELECT j.status FROM batch_job j WHERE j.id = c.job_id) = {_EXECUTING} "
    "{reserved}{fence}ORDER BY c.job_priority DESC, c.job_start, c.id LIMIT ? FOR UPDATE SKIP LOCKED) picked "
    "JOIN batch_task t ON t.id = picked.id JOIN batch_job j ON j.id = t.job_id")
# Without statistics (a new database, or tables ANALYZEd before any task was
# Ready) the planner estimates a row or two in the claim index, and a bitmap
# scan of every Ready task then a sort looks as cheap as the index walk; it is
# not (9 ms a claim with 3,300 Ready, growing with the backlog). For the rest
# of the claim's transaction only the index walk is left: no sequential or
# bitmap scan, no sort (the claimed rows are put in order in Python). One
# round trip (simple query protocol: no parameters).
_PG_CLAIM_PLAN = ("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; "
                  "SET LOCAL enable_sort = off")


def _claim_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The claim order of a claimed row: job priority (highest first), job start, task id."""
    return (-row[9], row[11] is None, row[11] if row[11] is not None else 0, row[0])


def _claim_text(reserved: bool, fenced: bool, pg: bool = False) -> str:
    if pg:
        return (_PG_CLAIM.replace("{reserved}", f"AND c.job_priority = {_RESERVED} " if reserved else "")
                .replace("{fence}", f"AND {_FENCE} " if fenced else ""))
    text = _CLAIM.replace("{reserved}", f"AND t.job_priority = {_RESERVED} " if reserved else "")
    # The subquery names no column of the outer query, so it is worked out once
    # per statement (SQLite and PostgreSQL alike), not once per row.
    return text.replace("ORDER BY", f"AND {_FENCE} ORDER BY") if fenced else text


def _claim_params(at: Any, groups: list[str], limit: int, fence: Fence | None) -> tuple[Any, ...]:
    return (at, *groups, limit) if fence is None else (at, *groups, fence.server, fence.epoch, limit)
#: The first key of the PostgreSQL advisory locks that serialise claims of a limited batch group.
GROUP_LOCK = 7262013

# A limited group's running tasks, counted in the partial index batch_task_running_group
# (its WHERE written the same way, so that both planners use it).
_RUNNING_IN_GROUPS = ("SELECT batch_group, COUNT(*) FROM batch_task WHERE batch_group IN ({in}) "
                      f"AND status IN ({_EXECUTING}, {_CANCELLING}) GROUP BY batch_group")

# The jobs (of those asked) whose runs may finish: every task settled. One row each,
# with what decides the run's outcome; "{per_row}" and "{lock}" are the dialect's (see
# EngineStore.__init__). By id only: with a status term SQLite may pick the status
# index and scan every Executing job.
_SETTLED = (
    "SELECT j.id, j.status, j.current_run, j.recurrence, j.time_zone, j.scheduled_start, "
    "j.run_count, j.description, EXISTS (SELECT 1 FROM batch_task t WHERE t.job_id = j.id "
    f"AND t.status = {_ERROR} AND NOT t.ignore_failure), "
    "EXISTS (SELECT 1 FROM job_alert a WHERE a.job_id = j.id), j.recurrence_runs, "
    "(SELECT r.started FROM job_run r WHERE r.id = j.current_run), "
    "(SELECT r.requested FROM job_run r WHERE r.id = j.current_run), j.run_return "
    "FROM batch_job j WHERE j.id IN ({in}) AND NOT EXISTS "
    f"(SELECT 1 FROM batch_task t WHERE t.job_id = j.id AND t.status IN ({_ACTIVE}){{per_row}}){{lock}}")

_TASKS_ENDING = (
    "SELECT t.id, t.job_id, t.status, t.attempt, t.retries_used, t.max_retries, j.status, "
    "EXISTS (SELECT 1 FROM batch_constraint c WHERE c.parent_id = t.id) "
    "FROM batch_task t JOIN batch_job j ON j.id = t.job_id WHERE t.id IN ({in})")


class EngineStore:
    """The statements of one batch server process, on the database open in it."""

    def __init__(self, database: Any = None) -> None:
        self.d = Dialect.of(database if database is not None else m.database)
        # The status each attempt of the last finish_attempts was closed with (attempt id -> status):
        # what the server's log and metrics report once that transaction has committed.
        self.closed: dict[int, int] = {}
        # The claim in its four forms: all tasks or only Reserved-capacity ones,
        # and fenced (a registered server's: nothing unless its row still has
        # its epoch) or not. Made once: one string object each (Dialect.marked).
        self._claims = {(reserved, fenced): (_claim_text(reserved, fenced, pg=True) if self.d.pg
                                             else _claim_text(reserved, fenced))
                        for reserved in (False, True) for fenced in (False, True)}
        self.deferred = 0  # jobs the last start_due_jobs held back for their active period
        self._settled = _SETTLED.replace("{per_row}", self.d.per_row).replace("{lock}", self.d.lock("j"))
        # The next retry's time, by the retry index (tasks with a not-before time: the
        # claim clears it), never the claim index, which PostgreSQL picked and walked
        # through every Ready task each time ("+status": an expression, which no index
        # or index predicate matches).
        self._next_retry = (f"SELECT MIN(not_before) FROM {self.d.hint('batch_task', 'batch_task_retry')} "
                            f"WHERE not_before IS NOT NULL AND +status = {_READY}")
        # Set when a write of this store may have given other batch servers work:
        # tasks made Ready (a run started, conditions met, a retry, a hand-back) or
        # a recurring job's next start. The batch server then NOTIFYs them
        # (PostgreSQL) and clears it; a round that only claimed and finished tasks
        # does not wake every other server (issue 17: a NOTIFY a round).
        self.readied = False

    @property
    def pg(self) -> bool:
        return self.d.pg

    # -- runs starting -------------------------------------------------------------------

    def start_due_jobs(self, server: str, now: datetime | None = None, limit: int = 256) -> list[int]:
        """Start the runs of Waiting jobs whose time has come, highest priority first.

        Set-based: a few statements however many jobs start, none per job (the
        run rows are copied from the jobs, the jobs point at them in SQL).
        """
        now = now or _utcnow()
        x = self.d.x
        self.deferred = 0
        with write():
            started = self._outside_periods_held(self._due_jobs(now, limit), now)
            at = self.d.when(now)
            for ids in chunks(started):
                marks = in_marks(ids)
                # The run is for the occurrence an active period held back, if one did.
                x("INSERT INTO job_run (job_id, run_no, scheduled, started, status, server) "
                  f"SELECT id, run_count + 1, COALESCE(deferred_from, scheduled_start), ?, {_EXECUTING}, ? "
                  f"FROM batch_job WHERE id IN ({marks})", (at, server, *ids))
                # A SET expression sees the row as it was: run_count + 1 is the new
                # run's number. "+status": by id only (SQLite would otherwise walk
                # the status index over every Waiting job).
                exactly(x(
                    f"UPDATE batch_job SET status = {_EXECUTING}, run_count = run_count + 1, deferred_from = NULL, "
                    "recurrence_runs = recurrence_runs + 1, version = version + 1, modified = ?, "
                    "current_run = (SELECT r.id FROM job_run r "
                    "WHERE r.job_id = batch_job.id AND r.run_no = batch_job.run_count + 1) "
                    f"WHERE id IN ({marks}) AND +status = {_WAITING}", (at, *ids)).rowcount, len(ids))
                # Every task starts the run Waiting, carrying its job's priority and
                # start so that claiming Ready tasks walks one index in order.
                # A task without conditions is Ready at once, the others wait.
                x("UPDATE batch_task SET status = CASE WHEN EXISTS "
                  "(SELECT 1 FROM batch_constraint c WHERE c.task_id = batch_task.id) THEN ? ELSE ? END, "
                  "retries_used = 0, attempts = 0, not_before = NULL, server = NULL, attempt = NULL, kept = ?, "
                  "job_priority = (SELECT j.priority FROM batch_job j WHERE j.id = batch_task.job_id), "
                  "job_start = (SELECT j.scheduled_start FROM batch_job j WHERE j.id = batch_task.job_id) "
                  f"WHERE job_id IN ({marks})", (_WAITING, _READY, False, *ids))
                empty = [r[0] for r in x(
                    f"SELECT j.id FROM batch_job j WHERE j.id IN ({marks}) "
                    "AND NOT EXISTS (SELECT 1 FROM batch_task t WHERE t.job_id = j.id)", ids)]
                if empty:
                    self._finalize(empty, now)
        self.readied = self.readied or bool(started)
        return started

    def start_requested_runs(self, server: str, now: datetime | None = None) -> list[int]:
        """Start the runs operators asked for (status.run_now, status.rerun_job), each once.

        A request is a row's run_request ("run" or "rerun"), consumed by the
        compare-and-set that starts its run: one server wins it, however many
        look (PostgreSQL: the rows are locked, SKIP LOCKED; SQLite: one writer).
        A job that runs (Executing, Canceling) keeps its request until its run
        is over. The run is for now; the job's scheduled start, recurrence and
        "End after N" count are not touched, and a Withhold or Waiting job goes
        back to that status when the run is over (run_return, see _finalize).

        A rerun keeps the tasks that Ended in the job's last run (Ended, kept,
        no attempt); every other task runs again, its conditions evaluated
        against the kept statuses (advance_jobs).
        """
        now = now or _utcnow()
        x = self.d.x
        started: list[int] = []
        with write():
            rows = x(f"SELECT id, status, run_request FROM batch_job WHERE run_request IS NOT NULL "
                     f"AND status NOT IN ({sql_in(RUNNING_JOB_STATUSES)}) ORDER BY id" + self.d.lock()).fetchall()
            at = self.d.when(now)
            for job_id, status, kind in rows:
                if not _START_REQUESTED.allows(status):
                    continue
                kept: list[int] = []
                if kind == "rerun":
                    last = x("SELECT id FROM job_run WHERE job_id = ? ORDER BY run_no DESC LIMIT 1",
                             (job_id,)).fetchone()
                    if last is not None:
                        kept = [r[0] for r in x(
                            "SELECT task_id FROM run_task WHERE run_id = ? AND status = ?", (last[0], _FINISHED))]
                x("INSERT INTO job_run (job_id, run_no, scheduled, started, status, server, requested) "
                  f"SELECT id, run_count + 1, ?, ?, {_EXECUTING}, ?, run_request FROM batch_job WHERE id = ?",
                  (at, at, server, job_id))
                back = status if status in (_HOLD, _WAITING) else None
                exactly(x(
                    f"UPDATE batch_job SET status = {_EXECUTING}, run_count = run_count + 1, run_request = NULL, "
                    "run_return = ?, version = version + 1, modified = ?, "
                    "current_run = (SELECT r.id FROM job_run r "
                    "WHERE r.job_id = batch_job.id AND r.run_no = batch_job.run_count + 1) "
                    "WHERE id = ? AND status = ? AND run_request = ?",
                    (back, at, job_id, status, kind)).rowcount, 1)
                x("UPDATE batch_task SET status = CASE WHEN EXISTS "
                  "(SELECT 1 FROM batch_constraint c WHERE c.task_id = batch_task.id) THEN ? ELSE ? END, "
                  "retries_used = 0, attempts = 0, not_before = NULL, server = NULL, attempt = NULL, kept = ?, "
                  "job_priority = (SELECT j.priority FROM batch_job j WHERE j.id = batch_task.job_id), job_start = ? "
                  "WHERE job_id = ?", (_WAITING, _READY, False, at, job_id))
                for ids in chunks(kept):
                    x(f"UPDATE batch_task SET status = ?, kept = ? WHERE job_id = ? AND id IN ({in_marks(ids)})",
                      (_FINISHED, True, job_id, *ids))
                # The dependents of the kept tasks, and a run with nothing left to do, at once.
                self.advance_jobs(kept, [job_id], now)
                started.append(job_id)
        self.readied = self.readied or bool(started)
        return started

    def has_requests(self) -> bool:
        """An operator's run now or rerun that a batch server may start now."""
        return self.d.x(f"SELECT 1 FROM batch_job WHERE run_request IS NOT NULL "
                        f"AND status NOT IN ({sql_in(RUNNING_JOB_STATUSES)}) LIMIT 1").fetchone() is not None

    def _due_jobs(self, now: datetime, limit: int) -> list[int]:
        """The Waiting jobs due by now, highest priority first, then by start (locked on PostgreSQL).

        One priority at a time, each an index range (the partial index
        batch_job_due): a single ORDER BY priority, start would read and sort
        every due job, or walk every Waiting job of a higher priority that is
        not due yet.
        """
        jobs = self.d.hint("batch_job", "batch_job_due")
        at = self.d.when(now)
        out: list[int] = []
        priority = None
        while len(out) < limit:
            below = "" if priority is None else f" AND priority < {int(priority)}"
            row = self.d.x(f"SELECT priority FROM {jobs} WHERE status = {_WAITING}{below} "
                           "ORDER BY priority DESC LIMIT 1").fetchone()
            if row is None:
                break
            priority = row[0]
            out += [r[0] for r in self.d.x(
                f"SELECT id FROM {jobs} WHERE status = {_WAITING} AND priority = ? AND scheduled_start <= ? "
                "ORDER BY scheduled_start, id LIMIT ?" + self.d.lock(),
                (priority, at, limit - len(out)))]
        return out

    def _outside_periods_held(self, due: list[int], now: datetime) -> list[int]:
        """The due jobs that may start now; those outside their active period are held back.

        A held job's scheduled start moves to the period's next opening (at most
        a day ahead, to look again: a period whose end date has passed never
        opens), and the occurrence it was due for is kept in deferred_from: the
        run it gets then is for that occurrence, and it runs once however many
        occurrences fell inside the closed time. One statement when no due job
        names a period, none when there is no period.
        """
        # No period at all (a table of a few rows): no look at the jobs.
        if not due or self.d.x("SELECT 1 FROM active_period LIMIT 1").fetchone() is None:
            return due
        named: list[tuple[int, str, str]] = []
        for ids in chunks(due):
            named += [(r[0], r[1], r[2]) for r in self.d.x(
                f"SELECT id, active_period, time_zone FROM batch_job WHERE id IN ({in_marks(ids)}) "
                "AND active_period IS NOT NULL", ids)]
        if not named:
            return due
        periods = self.periods({name for _, name, _ in named})
        held: list[tuple[Any, ...]] = []
        at = self.d.when(now)
        for job_id, name, tz_name in named:
            period = periods.get(name)
            if period is None or period.is_open(now, tz_name):
                continue
            opens = period.next_open(now, tz_name)
            again = now + timedelta(days=1)
            held.append((self.d.when(min(opens, again) if opens else again), at, job_id))
        self.d.many_exactly(
            "UPDATE batch_job SET deferred_from = COALESCE(deferred_from, scheduled_start), scheduled_start = ?, "
            f"modified = ?, version = version + 1 WHERE id = ? AND status = {_WAITING}", held)
        self.deferred = len(held)
        skip = {h[2] for h in held}
        return [i for i in due if i not in skip]

    def periods(self, names: Iterable[str] | None = None) -> dict[str, Period]:
        """Active periods by name (all of them, or those named)."""
        query = m.ActivePeriod.select()
        if names is not None:
            query = query.where(m.ActivePeriod.name << list(names))
        return {p.name: period_of(p) for p in query}

    def next_due(self) -> datetime | None:
        """When the next Waiting job or pending retry becomes due (for the server's timer)."""
        job = self.d.x("SELECT MIN(scheduled_start) FROM batch_job WHERE status = ?", (_WAITING,)).fetchone()[0]
        retry = self.d.x(self._next_retry).fetchone()[0]
        times = [as_datetime(t) for t in (job, retry) if t is not None]
        if self.has_requests():
            times.append(_utcnow())
        return min(t for t in times if t is not None) if times else None

    def served_groups(self, server: str) -> list[str]:
        return served_groups(server)

    # -- tasks claimed and ended --------------------------------------------------------------

    def claim_ready_tasks(self, server: str, groups: list[str], limit: int,
                          now: datetime | None = None, *, limited: Iterable[str] = (),
                          reserved_only: bool = False, fence: Fence | None = None,
                          queued_from: int | None = None) -> list[Claimed]:
        """Move up to limit Ready tasks of the given groups to Executing for this server.

        Highest job priority first, then the job's scheduled start, then task ID.
        reserved_only: only tasks of Reserved-capacity jobs (for reserved threads).

        limited names the groups that the server last saw with a concurrency
        limit (or stopped): their limits are read again and held inside this
        transaction (see _claim_limited). Without any, the claim is one
        statement, as fast as before limits existed.

        With a fence (a batch server's), nothing is claimed unless the server's
        row still has its epoch, and the attempts record that epoch. A fenced
        server claims nothing and learns why from its next heartbeat.

        queued_from: the claimed tasks from this one on (in claim order) wait
        for a thread (claimed ahead, see server.AHEAD_UNDER): their attempts
        are written ``queued`` until the server records their real start
        (record_starts, record_processes) or closes them, so that taking one
        back after a crash uses no retry when it never started.
        """
        if limit <= 0 or not groups:
            return []
        at = self.d.when(now or _utcnow())
        claim = self._claims[reserved_only, fence is not None]
        limited = sorted(set(limited) & set(groups))
        with write():
            if limited:
                if self.d.pg:
                    self.d.x(_PG_CLAIM_PLAN)
                rows = self._claim_limited(claim, groups, limited, limit, at, fence)
            elif self.d.pg:
                # The plan settings and the claim in one round trip (issue 17: one more
                # round trip a claim cost 2 servers on PostgreSQL).
                rows = self.d.rows_after(_PG_CLAIM_PLAN, self.d.marked(claim, len(groups)),
                                         _claim_params(at, groups, limit, fence))
                if len(rows) > 1:
                    rows.sort(key=_claim_order)
            else:
                rows = self.d.x(self.d.marked(claim, len(groups)), _claim_params(at, groups, limit, fence)).fetchall()
            if not rows:
                return []
            epoch = fence.epoch if fence is not None else None
            first_queued = len(rows) if queued_from is None else max(0, queued_from)
            attempt_ids = self.d.insert_ids(
                "task_attempt", _ATTEMPT_COLUMNS, [(r[8], r[0], r[4] + 1, _EXECUTING, at, server, "", epoch,
                                                    1 if i >= first_queued else None)
                                                   for i, r in enumerate(rows)])
            self.d.bulk_exactly(_CLAIM_TASKS, [(_EXECUTING, server, aid, r[4] + 1, r[0], _READY)
                                               for aid, r in zip(attempt_ids, rows, strict=True)])
        return [Claimed(tid, attempt_id, attempts + 1, job_id, run_id, class_name, _params(params), company,
                        run_by, description, priority, group,
                        job_start if not_before is None or (job_start is not None and job_start > not_before)
                        else not_before, time_limit)
                for attempt_id, (tid, class_name, params, company, attempts, description, job_id, run_by, run_id,
                                 priority, group, job_start, not_before, time_limit)
                in zip(attempt_ids, rows, strict=True)]

    def _claim_limited(self, claim: str, groups: list[str], limited: list[str], limit: int,
                       at: Any, fence: Fence | None = None) -> list[tuple[Any, ...]]:
        """The claim when some of the groups have a concurrency limit or are stopped.

        The limited groups are locked in name order (PostgreSQL: an advisory
        lock per group for the transaction, so that two servers claiming tasks
        of one limited group take turns and each counts what the other
        committed; SQLite: BEGIN IMMEDIATE already lets one writer at a time),
        their limits read again (each statement of a READ COMMITTED
        transaction sees what was committed before it began),
        their running tasks counted, and each claims at most its headroom. The
        unlimited groups claim together as usual; the candidates are merged in
        claim order and the first `limit` taken.
        """
        x = self.d.x
        if self.d.pg:
            # A transaction-scoped advisory lock per group, in name order: it
            # needs no privilege on batch_group (only managers change it), and
            # it is released at commit, when the claimed tasks are visible.
            for g in limited:
                x(f"SELECT pg_advisory_xact_lock({GROUP_LOCK}, hashtext(?))", (g,))
        current = {r[0]: int(r[1]) for r in x(
            f"SELECT name, max_concurrent FROM batch_group WHERE name IN ({in_marks(limited)})", limited)}
        capped = {g: n for g, n in current.items() if n > 0}
        free = [g for g in groups if current.get(g, 0) == 0]
        headroom: dict[str, int] = {}
        if capped:
            running = {r[0]: int(r[1]) for r in x(self.d.marked(_RUNNING_IN_GROUPS, len(capped)), list(capped))}
            headroom = {g: n - running.get(g, 0) for g, n in capped.items() if n > running.get(g, 0)}
        rows: list[tuple[Any, ...]] = []
        if free:
            rows += x(self.d.marked(claim, len(free)), _claim_params(at, free, limit, fence)).fetchall()
        for g, room in headroom.items():
            rows += x(self.d.marked(claim, 1), _claim_params(at, [g], min(room, limit), fence)).fetchall()
        if len(rows) > limit or len(headroom) + bool(free) > 1 or self.d.pg:
            rows.sort(key=_claim_order)
        return rows[:limit]

    def server_settings(self, name: str) -> ServerSettings:
        """This server's row of the Server configuration form (defaults when it has none)."""
        row = m.ServerConfig.get_or_none(m.ServerConfig.name == name)
        if row is None:
            return ServerSettings()
        return ServerSettings(threads=row.threads, reserved=int(row.reserved or 0),
                              schedule=schedule_from_json(row.schedule), paused=bool(row.paused))

    def group_limits(self, groups: list[str]) -> dict[str, int]:
        """The groups among these with a concurrency limit or stopped: name -> max_concurrent."""
        if not groups:
            return {}
        return {r[0]: int(r[1]) for r in self.d.x(
            f"SELECT name, max_concurrent FROM batch_group WHERE name IN ({in_marks(groups)}) "
            "AND max_concurrent <> 0", groups)}

    def set_threads_now(self, name: str, threads_now: int) -> None:
        """What the server applies now, for `batchtui servers` and the Server configuration form."""
        m.BatchServer.update(threads_now=threads_now).where(m.BatchServer.name == name).execute()

    def finish_attempts(self, outcomes: list[Outcome], retry_base: float = 5.0, now: datetime | None = None,
                        finish_runs: bool = True, fence: Fence | None = None) -> set[int]:
        """Record finished attempts, retry or settle their tasks, advance their jobs.

        One transaction for the whole batch. Returns the ids of the jobs touched.
        finish_runs=False leaves finishing the runs of those jobs to the caller
        (finish_if_settled): the batch server does it in batches.

        fence: the batch server's own attempts. Each attempt is closed only if
        it is still open and its server still owns it (see _OWNED); if not,
        ServerFenced (and nothing of the batch is written). Without a fence
        (a take-back, tools), an attempt that is no longer its task's
        current one is left as it is.
        """
        now = now or _utcnow()
        jobs: set[int] = set()
        if not outcomes:
            return jobs
        with write():
            tasks = self._tasks_ending([o.task_id for o in outcomes])
            close: list[tuple[Any, ...]] = []
            stale: list[tuple[Any, ...]] = []
            settle: list[tuple[Any, ...]] = []
            retry: list[tuple[Any, ...]] = []
            handback: list[tuple[Any, ...]] = []
            never_started: list[tuple[Any, ...]] = []
            finished: list[int] = []  # settled tasks that have dependents
            for o in outcomes:
                ended = self.d.when(o.ended or now)
                started = self.d.when(o.started)
                row = tasks.get(o.task_id)
                if row is None or row[3] != o.attempt_id or row[2] not in _RUNNING_TASK:
                    # Taken back meanwhile: only from a server that was declared dead,
                    # which records nothing more (a fenced server learns it here), or
                    # changed by hand: the attempt's log is kept, if the attempt is still
                    # there (its job may have been deleted since; ids are not reused).
                    if fence is not None:
                        self._check_fence(fence)
                    stale.append((ended, o.log, o.attempt_id))
                    continue
                tid, job_id, current, _, retries_used, max_retries, job_status, dependents = row
                jobs.add(job_id)
                if o.result == "handback":
                    # Handed back by a stopping server: not a failure, no retry used up.
                    close.append((_CANCELED, started, ended, o.log, o.attempt_id))
                    new = _CANCELED if current == _CANCELLING else _READY
                    handback.append((new, tid, current))
                    if not o.began:  # claimed ahead and handed back, or a stop came first
                        never_started.append((o.attempt_id,))
                elif current == _CANCELLING or o.result == "canceled":
                    close.append((_CANCELED, started, ended, o.log, o.attempt_id))
                    new = _CANCELED
                    settle.append((new, tid, current))
                elif o.result == "ended":
                    close.append((_FINISHED, started, ended, o.log, o.attempt_id))
                    new = _FINISHED
                    settle.append((new, tid, current))
                else:
                    close.append((_ERROR, started, ended, o.log, o.attempt_id))
                    if retries_used < max_retries and job_status == _EXECUTING:
                        delay = retry_delay(retries_used + 1, retry_base)
                        retry.append((self.d.when(now + timedelta(seconds=delay)) if delay else None, tid, current))
                        new = _READY
                    else:
                        new = _ERROR
                        settle.append((new, tid, current))
                if dependents and new in TASK_FINAL:
                    finished.append(tid)
            self.closed = {c[4]: c[0] for c in close}
            if fence is None:
                self.d.bulk_exactly(_CLOSE_BULK, close)
            else:
                self._fenced(self.d.bulk(_CLOSE_OWNED_BULK, close), len(close), fence)
            self.d.bulk(_STALE, stale)
            self.d.bulk_exactly(_SETTLE, settle)
            self.d.bulk_exactly(_HANDBACK, handback)
            self.d.bulk(_NEVER_STARTED, never_started)
            self.d.bulk_exactly(_RETRY, retry)
            self.readied = self.readied or bool(handback or retry)
            self.advance_jobs(finished, jobs if finish_runs else (), now)
        return jobs

    def _tasks_ending(self, task_ids: list[int]) -> dict[int, tuple[Any, ...]]:
        """What finish_attempts needs of each task: its row, its job's status, whether it has dependents."""
        tasks = {}
        for ids in chunks(task_ids):
            for row in self.d.x(self.d.marked(_TASKS_ENDING, len(ids)), ids):
                tasks[row[0]] = row
        return tasks

    def canceling_tasks(self, task_ids: Iterable[int]) -> set[int]:
        """Which of these running tasks an operator has asked to cancel."""
        out: set[int] = set()
        for ids in chunks(task_ids):
            out.update(r[0] for r in self.d.x(
                f"SELECT id FROM batch_task WHERE id IN ({in_marks(ids)}) AND status = ?", (*ids, _CANCELLING)))
        return out

    def append_log(self, attempt_id: int, text: str, fence: Fence | None = None) -> None:
        """Write log lines of a running attempt so that they show while it runs.

        With a fence: only while its server owns it (else ServerFenced)."""
        if not text:
            return
        if fence is None:
            self.d.x("UPDATE task_attempt SET log = log || ? WHERE id = ?", (text, attempt_id))
        else:
            self._fenced(self.d.x(_LOG_OWNED, (text, attempt_id)).rowcount, 1, fence, lost_race_ok=True)

    def report_progress(self, attempt_id: int, fraction: float, text: str | None = None,
                        fence: Fence | None = None) -> None:
        """Progress of a running attempt, as its batch class reports it (0..1).

        With a fence: only while its server owns it (else ServerFenced)."""
        values = (max(0.0, min(1.0, float(fraction))), (str(text)[:200] if text else None), attempt_id)
        if fence is None:
            self.d.x("UPDATE task_attempt SET progress = ?, progress_text = ? WHERE id = ?", values)
        else:
            self._fenced(self.d.x(_PROGRESS_OWNED, values).rowcount, 1, fence, lost_race_ok=True)

    def record_starts(self, started: list[tuple[int, Any]], fence: Fence) -> None:
        """The real starts of attempts claimed ahead: (attempt id, start), no longer ``queued``.

        Only while the server owns the attempt (else ServerFenced); one closed
        or recorded meanwhile is left as it is."""
        if started:
            rows = [(self.d.when(at), attempt_id) for attempt_id, at in started]
            self._fenced(self.d.bulk(_STARTED_OWNED, rows), len(rows), fence, lost_race_ok=True)

    def record_processes(self, started: list[tuple[int, str, int, str | None, Any]], fence: Fence) -> None:
        """Where the commands of running attempts run: (attempt id, host, process group, group key, start).

        The attempt's start is recorded with it (it is no longer ``queued``).

        Written before the command starts (the shell class waits for it), so
        that whoever takes the attempt back can stop that group first. Only
        while the server owns the attempt (else ServerFenced). An attempt
        closed meanwhile without its server being fenced cannot happen (only
        a take-back closes another's attempt, and only an orphan's); were it
        to, the round goes on rather than being retried for ever.
        """
        if started:
            rows = [(host, pgid, key, self.d.when(at), attempt_id) for attempt_id, host, pgid, key, at in started]
            self._fenced(self.d.many(_PROCESS_OWNED, rows), len(rows), fence, lost_race_ok=True)

    def _fenced(self, changed: int, expected: int, fence: Fence, lost_race_ok: bool = False) -> None:
        """The row count of a fenced write: ServerFenced if the server lost its attempts, else as exactly()."""
        if changed != expected:
            self._check_fence(fence)
            if not lost_race_ok:
                exactly(changed, expected)

    def _check_fence(self, fence: Fence) -> None:
        """ServerFenced unless the server's row still has the fence's epoch and is not marked stopped."""
        row = self.d.x("SELECT epoch, stopped FROM batch_server WHERE name = ?", (fence.server,)).fetchone()
        if row is None:
            raise ServerFenced(f"batch server {fence.server}: its row is gone")
        epoch, stopped = row
        if stopped is not None or epoch != fence.epoch:
            raise ServerFenced(
                f"batch server {fence.server} was declared dead or replaced (epoch {epoch}, "
                f"{'marked stopped' if stopped is not None else 'not marked stopped'}; it registered "
                f"with epoch {fence.epoch})")

    # -- conditions and runs ending -----------------------------------------------------------

    def advance_jobs(self, finished_tasks: list[int], jobs: Iterable[int], now: datetime) -> None:
        """Evaluate the conditions of the dependents of tasks that just settled.

        Dependents whose conditions are met become Ready (Didn't run in a job
        being canceled); those that can never be met become Didn't run,
        which settles them in turn. Then every job with nothing left to do
        has its run finished.
        """
        x = self.d.x
        frontier = list(finished_tasks)
        while frontier:
            dependents: set[int] = set()
            for ids in chunks(frontier):
                dependents.update(r[0] for r in x(
                    f"SELECT task_id FROM batch_constraint WHERE parent_id IN ({in_marks(ids)})", ids))
            frontier = []
            if not dependents:
                break
            waiting: dict[int, tuple[int, int]] = {}
            for ids in chunks(dependents):
                waiting.update((r[0], (r[1], r[2])) for r in x(
                    "SELECT t.id, t.condition_type, j.status FROM batch_task t JOIN batch_job j ON j.id = t.job_id "
                    f"WHERE t.id IN ({in_marks(ids)}) AND t.status = ?", (*ids, _WAITING)))
            if not waiting:
                break
            pairs: dict[int, list[tuple[int, int]]] = {tid: [] for tid in waiting}
            for ids in chunks(waiting):
                for tid, expected, parent_status in x(
                        "SELECT c.task_id, c.expected, p.status FROM batch_constraint c "
                        f"JOIN batch_task p ON p.id = c.parent_id WHERE c.task_id IN ({in_marks(ids)})", ids):
                    pairs[tid].append((expected, parent_status))
            ready, dead = [], []
            for tid, (ctype, job_status) in waiting.items():
                verdict = evaluate_conditions(ctype, pairs[tid])
                if verdict is False or (verdict is True and job_status != _EXECUTING):
                    dead.append(tid)
                elif verdict is True:
                    ready.append(tid)
            self.readied = self.readied or bool(ready)
            for target, ids_all in ((_READY, ready), (_NOT_RUN, dead)):
                for ids in chunks(ids_all):
                    exactly(x(f"UPDATE batch_task SET status = ? WHERE id IN ({in_marks(ids)}) AND status = ?",
                              (target, *ids, _WAITING)).rowcount, len(ids))
            frontier = dead
        jobs = list(jobs)
        if jobs:
            self._finalize(jobs, now)

    def finish_if_settled(self, job_ids: Iterable[int], now: datetime | None = None) -> None:
        """Finish the runs of these jobs if nothing of them is left to do.

        On PostgreSQL a batch server calls it after each round's commit for the
        jobs it touched: two servers that settle a job's last tasks at the same
        moment each see the other's task still running inside their own
        transaction, so neither finishes the run there; after both commits, at
        least one of them sees it settled here.
        """
        job_ids = list(job_ids)
        if job_ids:
            with write():
                self.advance_jobs([], job_ids, now or _utcnow())

    def finish_settled_runs(self, now: datetime | None = None) -> int:
        """Finish runs whose tasks are all settled but which are still Executing.

        A safety net, run by every batch server with its heartbeat: whatever
        left a run so (a crash between two transactions, a race this code did
        not foresee), the run is finished rather than Executing for ever.
        """
        now = now or _utcnow()
        with write():
            stuck = [r[0] for r in self.d.x(
                f"SELECT j.id FROM batch_job j WHERE j.status IN ({sql_in(_END.sources)}) AND NOT EXISTS "
                f"(SELECT 1 FROM batch_task t WHERE t.job_id = j.id AND t.status IN ({_ACTIVE}))"
                + self.d.lock("j"))]
            if stuck:
                self._finalize(stuck, now)
        return len(stuck)

    def _finalize(self, job_ids: list[int], now: datetime) -> None:
        """Finish the runs of those of these jobs whose tasks are all settled.

        One row per job comes back, with what decides the run's outcome (a task
        in Error without Ignore task failure) and whether anyone subscribed to
        its alerts; the run's task snapshot is copied in SQL. On PostgreSQL
        the rows are locked; a job another server is finishing right now is
        skipped (that server finishes it).
        """
        x = self.d.x
        rows: list[tuple[Any, ...]] = []
        for ids in chunks(job_ids):
            rows += [r for r in x(self.d.marked(self._settled, len(ids)), ids).fetchall() if _END.allows(r[1])]
        if not rows:
            return
        at = self.d.when(now)
        subscriptions = self._subscriptions([r[0] for r in rows if r[9]])
        run_updates: list[tuple[Any, ...]] = []
        ended: list[tuple[Any, ...]] = []
        rescheduled: list[tuple[Any, ...]] = []
        snapshots: list[int] = []
        alerts: list[dict[str, Any]] = []
        for (job_id, status, run_id, rec, tz_name, scheduled, run_count, description, failed, _, recurrence_runs,
             started, requested, run_return) in rows:
            outcome = run_outcome(status, failed)
            if requested:
                # A run now or rerun: the recurrence is not moved; a Withhold or Waiting job goes back.
                ended.append((int(outcome if run_return is None else run_return), at, job_id, status))
            elif (next_start := _next_start(rec, tz_name, scheduled, started, recurrence_runs, outcome, now)
                  if rec else None) is None:
                ended.append((int(outcome), at, job_id, status))
            else:
                rescheduled.append((_WAITING, at, self.d.when(next_start), job_id, status))
            if run_id is None:
                continue
            run_updates.append((int(outcome), at, run_id))
            snapshots.append(job_id)
            if job_id in subscriptions:
                alerts += _alerts(job_id, run_id, run_count, description, outcome, subscriptions[job_id], now)
        self.d.bulk_exactly(_RUN_END, run_updates)
        for ids in chunks(snapshots):
            x("INSERT INTO run_task (run_id, task_id, status, retries_used, kept) "
              "SELECT j.current_run, t.id, t.status, t.retries_used, t.kept FROM batch_task t "
              f"JOIN batch_job j ON j.id = t.job_id WHERE t.job_id IN ({in_marks(ids)})", ids)
        # The start is written only when it moves: each column written is an
        # index entry rewritten (batch_job has two on scheduled_start).
        self.d.bulk_exactly(_JOB_END, ended)
        self.d.bulk_exactly(_JOB_AGAIN, rescheduled)
        self.readied = self.readied or bool(rescheduled)
        if alerts:
            m.Alert.insert_many(alerts).execute()

    def raise_late_alerts(self, now: datetime | None = None) -> int:
        """The `late` alerts of runs not over `late_after` seconds after their scheduled start.

        Once per run, however many batch servers look: the run's late_alerted
        flag is set by a compare-and-set, and only the server whose update
        changed it writes the alerts, in the same transaction. One alert per
        user whose alert asks for `late`, as a pop-up and e-mail as it says.
        Returns how many runs were found late.
        """
        now = now or _utcnow()
        x = self.d.x
        rows = x("SELECT r.id, r.job_id, r.run_no, r.scheduled, j.late_after, j.description "
                 "FROM batch_job j JOIN job_run r ON r.id = j.current_run "
                 f"WHERE j.status IN ({sql_in(RUNNING_JOB_STATUSES)}) AND j.late_after IS NOT NULL "
                 "AND r.ended IS NULL AND r.late_alerted = ?", (False,)).fetchall()
        late = [r for r in rows if (as_datetime(r[3]) or now) + timedelta(seconds=float(r[4])) <= now]
        if not late:
            return 0
        count = 0
        with write():
            for run_id, job_id, run_no, _, late_after, description in late:
                if x("UPDATE job_run SET late_alerted = ? WHERE id = ? AND late_alerted = ? AND ended IS NULL",
                     (True, run_id, False)).rowcount != 1:
                    continue  # another server raised them, or the run ended meanwhile
                count += 1
                seconds = int(late_after) if late_after == int(late_after) else late_after
                message = (f"Batch job {job_id} '{description}' is late: run {run_no} has not ended "
                           f"{seconds} s after its scheduled start.")
                alerts = [{"user": user, "job": job_id, "run": run_id, "event": "late", "message": message,
                           "created": now, "read": False, "popup": bool(popup), "email": bool(email),
                           # Kept until delivered (engine/delivery.py), as the other alerts.
                           "email_state": "pending" if email else None,
                           "notify_state": "pending" if notify else None}
                          for user, popup, email, notify in x(
                              'SELECT "user", popup, email, notify FROM job_alert WHERE job_id = ? AND late = ? '
                              'ORDER BY "user"', (job_id, True))]
                if alerts:
                    m.Alert.insert_many(alerts).execute()
        return count

    def _subscriptions(self, job_ids: list[int]) -> dict[int, list[tuple[Any, ...]]]:
        """The alert settings of these jobs: job id -> [(user, ended, error, canceled, popup, email, notify)]."""
        out: dict[int, list[tuple[Any, ...]]] = {}
        for ids in chunks(job_ids):
            for job_id, user, *flags in self.d.x(
                    'SELECT job_id, "user", ended, error, canceled, popup, email, notify FROM job_alert '
                    f"WHERE job_id IN ({in_marks(ids)})", ids):
                out.setdefault(job_id, []).append((user, *(bool(f) for f in flags)))
        return out

    def orphaned_attempts(self) -> list[Orphan]:
        """Running tasks whose attempt belongs to no one any more.

        An attempt belongs to the server that claimed it while that server's
        row has the epoch the attempt recorded. Once the epoch has moved on
        (the server was declared dead, or registered again after a restart or
        after finding it had been declared dead), or the row is gone, nobody
        will record its end: it is taken back. Epochs only go up, so an
        orphan stays one. Read by every server with its heartbeat, through
        the running jobs (the job status index) and their running tasks.
        """
        rows = self.d.x(
            "SELECT t.id, a.id, a.server, s.heartbeat, s.stopped, s.name, a.host, a.pgid, a.pgid_key, a.queued, "
            "a.log <> '' "
            "FROM batch_job j JOIN batch_task t ON t.job_id = j.id "
            "JOIN task_attempt a ON a.id = t.attempt LEFT JOIN batch_server s ON s.name = a.server "
            f"WHERE j.status IN ({sql_in(_END.sources)}) AND t.status IN ({sql_in(_RUNNING_TASK)}) "
            "AND (s.name IS NULL OR COALESCE(a.epoch, 0) < s.epoch) ORDER BY t.id").fetchall()
        return [Orphan(tid, aid, server, as_datetime(heartbeat), stopped is not None or name is None, host,
                       pgid, key, bool(queued), bool(logged))
                for tid, aid, server, heartbeat, stopped, name, host, pgid, key, queued, logged in rows]

    def take_back(self, orphans: list[tuple[Orphan, str]], retry_base: float = 5.0,
                  now: datetime | None = None) -> int:
        """Settle orphaned attempts (see orphaned_attempts), each with the reason for its log.

        Each attempt ends in Error with its reason in its log; the task is
        retried if it has retries left, else it is in Error (Canceled if it
        was being canceled). An attempt still ``queued`` (claimed ahead, never
        recorded as started) is handed back instead: Canceled, its task Ready
        again, no retry used. An orphan that another server took back
        meanwhile is left alone. The caller has stopped the attempts'
        process groups first where it could. Returns how many tasks were
        taken back.
        """
        now = now or _utcnow()
        with write():
            current: dict[int, int] = {}
            for ids in chunks([o.task_id for o, _ in orphans]):
                current.update(self.d.x(
                    f"SELECT id, attempt FROM batch_task WHERE id IN ({in_marks(ids)}) "
                    f"AND status IN ({sql_in(_RUNNING_TASK)})", ids).fetchall())
            # A rerun_safe class may begin before its start is recorded: if it logged anything, it
            # began. It is handed back all the same (rerun_safe), but shown in history as it ran.
            outcomes = [Outcome(o.task_id, o.attempt_id, "handback", ended=now, began=o.logged,
                                log=f"{reason}; " + (
                                    "it began before its start was recorded (its class is rerun_safe)"
                                    if o.logged else "it had not started (claimed ahead, waiting for a thread)")
                                    + ": handed back, Ready again, no retry used\n")
                        if o.queued else Outcome(o.task_id, o.attempt_id, "error", log=f"{reason}\n", ended=now)
                        for o, reason in orphans if current.get(o.task_id) == o.attempt_id]
            self.finish_attempts(outcomes, retry_base=retry_base, now=now)
        return len(outcomes)

    # -- the batch servers' own rows -----------------------------------------------------------

    def register(self, name: str, threads: int, groups: list[str], dead_after: float) -> int:
        """Register (or take back the row of) a batch server named name on this host and pid.

        Returns its new epoch (one more than the row had): the attempts of
        the name's earlier life are orphans from now on.
        """
        now = _utcnow()
        host = socket.gethostname()
        with write():
            row = m.BatchServer.get_or_none(m.BatchServer.name == name)
            if row is not None and row.stopped is None and row.heartbeat is not None:
                fresh = row.heartbeat > now - timedelta(seconds=dead_after)
                same_host = row.host == host
                if fresh and not (same_host and not _pid_alive(row.pid)):
                    raise ServerNameInUse(
                        f"a batch server named {name!r} is running (host {row.host}, pid "
                        f"{row.pid}, heartbeat {row.heartbeat:%H:%M:%S} UTC): choose another --name"
                    )
            values = {"host": host, "pid": os.getpid(), "threads": threads, "started": now, "heartbeat": now,
                      "stopped": None}
            if row is None:
                m.BatchServer.create(name=name, epoch=1, **values)
            else:
                m.BatchServer.update(epoch=m.BatchServer.epoch + 1, **values).where(
                    m.BatchServer.name == name).execute()
            epoch = int(self.d.x("SELECT epoch FROM batch_server WHERE name = ?", (name,)).fetchone()[0])
            for g in groups:
                m.BatchGroup.get_or_create(name=g)
                m.BatchGroupServer.get_or_create(group=g, server=name)
        return epoch

    def beat(self, name: str, threads: int, now: datetime, epoch: int) -> None:
        """The heartbeat, under the epoch the server registered with: ServerFenced if its row
        has another one or is marked stopped (the beat never clears that mark: a server that was
        declared dead registers again instead, see server._on_fenced)."""
        at = self.d.when(now)
        if self.d.x("UPDATE batch_server SET heartbeat = ?, threads = ? WHERE name = ? AND epoch = ? "
                    "AND stopped IS NULL", (at, threads, name, epoch)).rowcount != 1:
            self._check_fence(Fence(name, epoch))  # else a race with a declaration that did not commit

    def others_alive(self, name: str, limit: datetime) -> bool:
        """Whether another batch server has beaten since limit and is not marked stopped."""
        return self.d.x("SELECT 1 FROM batch_server WHERE stopped IS NULL AND heartbeat >= ? AND name <> ? LIMIT 1",
                        (self.d.when(limit), name)).fetchone() is not None

    def dead_servers(self, name: str, limit: datetime) -> list[DeadServer]:
        """Other servers whose last heartbeat is older than limit and that are not marked stopped."""
        return [DeadServer(s.name, s.heartbeat) for s in m.BatchServer.select().where(
            (m.BatchServer.stopped.is_null()) & (m.BatchServer.heartbeat < limit) & (m.BatchServer.name != name))
            if s.heartbeat is not None]

    def declare_dead(self, dead: str, limit: datetime, now: datetime) -> bool:
        """Mark a server stopped and move its epoch on; True for the one server whose compare-and-set won.

        From then on every write of the dead server about its attempts is
        refused, and its attempts are orphans (orphaned_attempts).
        """
        with write():
            return bool(m.BatchServer.update(stopped=now, epoch=m.BatchServer.epoch + 1).where(
                (m.BatchServer.name == dead) & (m.BatchServer.stopped.is_null())
                & (m.BatchServer.heartbeat < limit)).execute())

    def mark_stopped(self, name: str, epoch: int) -> None:
        """A server's own stop; not if it was declared dead or replaced meanwhile (its epoch has
        moved on: the mark would stop a server that has taken the name since).

        The epoch moves on too: a stopping server hands its attempts back first,
        and any it could not record (the database failed meanwhile) become
        orphans that the other servers take back, rather than staying Executing.
        """
        m.BatchServer.update(stopped=_utcnow(), epoch=m.BatchServer.epoch + 1).where(
            (m.BatchServer.name == name) & (m.BatchServer.epoch == epoch)).execute()

    def has_work(self, name: str, groups: list[str]) -> bool:
        """Anything for this server to do: a Ready task it serves, a due job, a task it runs."""
        now = self.d.when(_utcnow())
        ready = self.d.x(
            "SELECT 1 FROM batch_task t JOIN batch_job j ON j.id = t.job_id "
            f"WHERE t.status = {_READY} AND t.batch_group IN ({in_marks(groups)}) AND j.status = {_EXECUTING} "
            "LIMIT 1", groups).fetchone() if groups else None
        due = self.d.x(f"SELECT 1 FROM batch_job WHERE status = {_WAITING} AND scheduled_start <= ? LIMIT 1",
                       (now,)).fetchone()
        mine = self.d.x(f"SELECT 1 FROM batch_task WHERE server = ? AND status IN ({sql_in(_RUNNING_TASK)}) "
                        "LIMIT 1", (name,)).fetchone()
        return bool(ready or due or mine or self.has_requests())

    def notify(self) -> None:
        """Wake the batch servers of other processes (PostgreSQL LISTEN/NOTIFY)."""
        self.d.notify()

    def listen(self, stop: threading.Event, woken: Callable[[], None], lost: Callable[[Exception], None]) -> None:
        self.d.listen(stop, woken, lost)


def served_groups(server: str) -> list[str]:
    """The batch groups a server runs: those mapped to it, and the Empty group
    unless the Empty group is mapped to particular servers."""
    mapped = [g for (g,) in m.tuples(m.BatchGroupServer.select(m.BatchGroupServer.group)
                                     .where(m.BatchGroupServer.server == server))]
    empty_mapped = m.BatchGroupServer.select().where(m.BatchGroupServer.group == "").exists()
    groups = set(mapped)
    if not empty_mapped:
        groups.add("")
    return sorted(groups)


def period_of(row: m.ActivePeriod) -> Period:
    """An active period's row as the rule (controls.Period)."""
    return make_period(row.name, row.start, row.end, row.weekdays, row.start_date, row.end_date)


def _params(text: Any) -> dict[str, Any]:
    return json.loads(text) if text and text != "{}" else {}


def _next_start(rec: Any, tz_name: str, scheduled: Any, started: Any, runs: int, outcome: BatchStatus,
                now: datetime) -> datetime | None:
    """When a recurring job runs next (None: it does not, the job keeps the run's outcome).

    runs: the runs made for its recurrence, this one included (recurrence.next_run: only runs
    count, and an occurrence that fell due during the run is made up by one run).
    """
    if not rec or outcome == BatchStatus.CANCELED:
        return None
    from .. import recurrence
    from ..calendars import closed_days_for

    spec = json.loads(rec) if isinstance(rec, str) else rec
    # A calendar of closed days (deleted by hand meanwhile: closing nothing, the server goes on).
    closed = closed_days_for(spec, missing_open=True)
    return recurrence.next_run(spec, tz_name, runs=int(runs or 0), ended=now, scheduled=as_datetime(scheduled),
                               started=as_datetime(started), closed=closed)


def _alerts(job_id: int, run_id: int, run_count: int, description: str, outcome: BatchStatus,
            subscriptions: list[tuple[Any, ...]], now: datetime) -> list[dict[str, Any]]:
    """The Action-center alerts a run's end raises, one per subscriber of that event."""
    event = EVENT_OF[outcome]
    out = []
    for user, ended, error, canceled, popup, email, notify in subscriptions:
        if {"ended": ended, "error": error, "canceled": canceled}[event]:
            out.append({
                "user": user, "job": job_id, "run": run_id, "event": event,
                "message": f"Batch job {job_id} '{description}' {outcome.label.lower()} (run {run_count}).",
                "created": now, "read": False, "popup": popup, "email": email,
                # Kept until delivered (engine/delivery.py): None when not asked for.
                "email_state": "pending" if email else None, "notify_state": "pending" if notify else None,
            })
    return out


def _pid_alive(pid: int) -> bool:
    """Whether a server's process still runs on this host. A zombie does not: it was killed and
    only waits for its parent to reap it, so its name is free at once (issue #16, item 13)."""
    return procs.pid_alive(pid)

