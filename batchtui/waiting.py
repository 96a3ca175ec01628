"""Waiting reasons: why a task that could start has not.

Each scheduling control that holds a task back names itself in one line,
the same in `job export` (task ``waiting_reason``), the task grid and the
job's detail in the console:

- ``outside active period 'Night'``: its job is due, but its active period is closed;
- ``batch group 'INV' is stopped``: the group's concurrency limit is -1;
- ``no live batch server serves batch group 'INV'``;
- ``batch group 'INV' is at its limit of 2 running tasks``;
- ``every batch server of batch group 'INV' is paused``;
- ``no batch server of batch group 'INV' has a free thread in its current window``
  (its threads are busy, its schedule window allows none now, or only
  reserved threads are free and the job is not Reserved capacity).

A task that will start at the next look of a server, one that waits for its
conditions or for a retry, and a task that is not Ready has none (None).
Read-only; nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from peewee import SQL, fn

from . import models as m
from .controls import Period
from .engine.store import period_of, served_groups
from .servers import RUNNING, is_alive
from .timeutil import utcnow
from .validators import q
from .vocabulary import BatchStatus, Priority

__all__ = ["WaitingContext", "job_reasons", "reason_for"]


@dataclass(slots=True)
class _Server:
    threads_now: int
    reserved: int
    paused: bool
    running: int = 0
    running_reserved: int = 0

    def free(self, reserved_task: bool) -> bool:
        if self.paused:
            return False
        total = self.threads_now - self.running
        if reserved_task:
            return total > 0
        reserved = min(self.reserved, self.threads_now)
        general = (self.threads_now - reserved) - (self.running - self.running_reserved) \
            - max(0, self.running_reserved - reserved)
        return min(total, general) > 0


@dataclass(slots=True)
class WaitingContext:
    """What the reasons depend on, read once (a handful of small queries) for many tasks."""

    now: datetime
    limits: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    servers_of: dict[str, list[str]] = field(default_factory=dict)
    servers: dict[str, _Server] = field(default_factory=dict)
    periods: dict[str, Period] = field(default_factory=dict)

    @classmethod
    def read(cls, now: datetime | None = None) -> WaitingContext:
        ctx = cls(now or utcnow())
        ctx.limits = {g: int(n) for g, n in m.tuples(m.BatchGroup.select(m.BatchGroup.name,
                                                                          m.BatchGroup.max_concurrent))}
        # The statuses written into the SQL, as the partial index batch_task_running_group
        # is (a bound "IN (?, ?)" cannot use it: every task of the table was read, 0.2 s
        # a Batch jobs page open with 2,000,000 tasks).
        running = SQL(f"status IN ({', '.join(str(int(s)) for s in RUNNING)})")
        ctx.running = {str(g): int(n) for g, n in m.tuples(
            m.BatchTask.select(m.BatchTask.batch_group, fn.COUNT(m.BatchTask.id))
            .where(running).group_by(m.BatchTask.batch_group))}
        configs = {c.name: c for c in m.ServerConfig.select()}
        for s in m.BatchServer.select():
            if not is_alive(s.stopped, s.heartbeat, ctx.now):
                continue
            c = configs.get(s.name)
            ctx.servers[s.name] = _Server(int(s.threads_now), int(c.reserved) if c else 0,
                                          bool(c.paused) if c else False)
            for g in served_groups(s.name):
                ctx.servers_of.setdefault(g, []).append(s.name)
        for server, priority, n in m.tuples(
                m.BatchTask.select(m.BatchTask.server, m.BatchTask.job_priority, fn.COUNT(m.BatchTask.id))
                .where(running & m.BatchTask.server.is_null(False))
                .group_by(m.BatchTask.server, m.BatchTask.job_priority)):
            srv = ctx.servers.get(server)
            if srv is not None:
                srv.running += int(n)
                if priority == Priority.RESERVED:
                    srv.running_reserved += int(n)
        ctx.periods = {p.name: period_of(p) for p in m.ActivePeriod.select()}
        return ctx


def reason_for(ctx: WaitingContext, *, job_status: int, active_period: str | None, time_zone: str,
               scheduled_start: datetime | None, deferred_from: datetime | None, task_status: int,
               batch_group: str, priority: int, not_before: datetime | None = None) -> str | None:
    """The waiting reason of one task (see the module docstring), or None."""
    if job_status == BatchStatus.WAITING:
        if task_status != BatchStatus.WAITING or not active_period:
            return None
        due = deferred_from is not None or (scheduled_start is not None and scheduled_start <= ctx.now)
        period = ctx.periods.get(active_period)
        if due and period is not None and not period.is_open(ctx.now, time_zone):
            return f"outside active period {q(active_period)}"
        return None
    if job_status != BatchStatus.EXECUTING or task_status != BatchStatus.READY:
        return None
    if not_before is not None and not_before > ctx.now:
        return None
    group = q(batch_group)
    limit = ctx.limits.get(batch_group, 0)
    if limit < 0:
        return f"batch group {group} is stopped"
    names = ctx.servers_of.get(batch_group, [])
    if not names:
        return f"no live batch server serves batch group {group}"
    if limit > 0 and ctx.running.get(batch_group, 0) >= limit:
        return f"batch group {group} is at its limit of {limit} running task{'s' if limit != 1 else ''}"
    servers = [ctx.servers[n] for n in names]
    if all(s.paused for s in servers):
        return f"every batch server of batch group {group} is paused"
    if not any(s.free(priority == Priority.RESERVED) for s in servers):
        return f"no batch server of batch group {group} has a free thread in its current window"
    return None


def job_reasons(job: m.BatchJob, tasks: Iterable[m.BatchTask],
                ctx: WaitingContext | None = None) -> dict[int, str | None]:
    """The waiting reason of each of a job's tasks, by task id."""
    ctx = ctx or WaitingContext.read()
    return {t.id: reason_for(ctx, job_status=job.status, active_period=job.active_period,
                             time_zone=job.time_zone, scheduled_start=job.scheduled_start,
                             deferred_from=job.deferred_from, task_status=t.status,
                             batch_group=t.batch_group, priority=job.priority, not_before=t.not_before)
            for t in tasks}
