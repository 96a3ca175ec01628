"""Batch servers: when one is alive, what it runs now, and the list that shows both.

One rule for everyone who shows or acts on it: ``batchtui servers``, the
Batch servers form, the demo's reset and the batch server's own dead-server
detection.

- Alive: not stopped, and its last heartbeat is at most ``ALIVE_WITHIN``
  seconds old (a heartbeat exactly that old is still alive). A server
  writes one every ``HEARTBEAT_EVERY`` seconds, so a live server has a few
  chances to be late before it is taken for dead.
- Dead: not stopped, and its heartbeat is older than that. Another batch
  server then marks it stopped, moves its epoch on (so that it records
  nothing more if it was only stalled) and takes its tasks back, stopping
  their shell commands first where it can (``engine/server.py``).
- Running on a server: the tasks whose status is Executing or Canceling with
  that server's name. A task being canceled still holds its batch thread
  until its class stops.

Nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from peewee import Expression, fn

from . import models as m
from .engine.store import served_groups
from .timeutil import utcnow
from .vocabulary import BatchStatus

ALIVE_WITHIN = 30.0  # seconds: a heartbeat older than this is a dead server's
HEARTBEAT_EVERY = 5.0  # seconds between a batch server's heartbeats
RUNNING = (BatchStatus.EXECUTING, BatchStatus.CANCELLING)  # task statuses that hold a batch thread

__all__ = [
    "ALIVE_WITHIN", "HEARTBEAT_EVERY", "RUNNING", "RunningTask", "ServerInfo", "alive_names", "alive_since",
    "alive_where", "is_alive", "running_counts", "running_tasks", "server_rows",
]


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """One batch server as `batchtui servers` and the Batch servers form show it.

    Times are naive UTC, as stored.
    """

    name: str
    host: str
    pid: int
    threads: int
    started: datetime | None
    heartbeat: datetime | None
    stopped: datetime | None
    alive: bool
    running: int
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunningTask:
    job_id: int
    task_id: int
    description: str


def _tuples(query: Any) -> Iterable[tuple[Any, ...]]:
    """A query's rows as tuples (peewee's stubs type `.tuples()` as the model)."""
    return cast("Iterable[tuple[Any, ...]]", query.tuples())


def alive_since(now: datetime | None = None) -> datetime:
    """The oldest heartbeat of a live server at `now` (naive UTC)."""
    return (now or utcnow()) - timedelta(seconds=ALIVE_WITHIN)


def is_alive(stopped: datetime | None, heartbeat: datetime | None, now: datetime | None = None) -> bool:
    return stopped is None and heartbeat is not None and heartbeat >= alive_since(now)


def alive_where(now: datetime | None = None) -> Expression:
    """The same rule as a condition on BatchServer, for queries."""
    return m.BatchServer.stopped.is_null() & (m.BatchServer.heartbeat >= alive_since(now))


def alive_names(now: datetime | None = None) -> list[str]:
    """The names of the batch servers alive at `now`."""
    query = m.BatchServer.select(m.BatchServer.name).where(alive_where(now)).order_by(m.BatchServer.name)
    return [str(name) for (name,) in _tuples(query)]


def running_counts() -> dict[str, int]:
    """How many tasks each batch server runs now, by server name."""
    query = (m.BatchTask.select(m.BatchTask.server, fn.COUNT(m.BatchTask.id))
             .where((m.BatchTask.status << list(RUNNING)) & m.BatchTask.server.is_null(False))
             .group_by(m.BatchTask.server))
    return {str(server): int(count) for server, count in _tuples(query)}


def running_tasks(server: str, limit: int = 20) -> list[RunningTask]:
    """The tasks a batch server runs now, by task ID."""
    query = (m.BatchTask.select(m.BatchTask.job, m.BatchTask.id, m.BatchTask.description)
             .where((m.BatchTask.server == server) & (m.BatchTask.status << list(RUNNING)))
             .order_by(m.BatchTask.id).limit(limit))
    return [RunningTask(int(job), int(task), str(description)) for job, task, description in _tuples(query)]


def server_rows(now: datetime | None = None) -> list[ServerInfo]:
    """Every batch server that has run on this database, by name, as of `now` (default: the clock)."""
    now = now or utcnow()
    running = running_counts()
    rows = []
    for s in m.BatchServer.select().order_by(m.BatchServer.name):
        rows.append(ServerInfo(
            name=s.name, host=s.host, pid=s.pid, threads=s.threads, started=s.started, heartbeat=s.heartbeat,
            stopped=s.stopped, alive=is_alive(s.stopped, s.heartbeat, now), running=running.get(s.name, 0),
            groups=tuple(served_groups(s.name)),
        ))
    return rows
