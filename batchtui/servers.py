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
from .actor import Actor
from .controls import MAX_THREADS, ControlError, parse_schedule, schedule_from_json
from .db import write
from .engine.store import served_groups
from .errors import NotFound, UserError
from .timeutil import utcnow
from .validators import q
from .vocabulary import BatchStatus

ALIVE_WITHIN = 30.0  # seconds: a heartbeat older than this is a dead server's
HEARTBEAT_EVERY = 5.0  # seconds between a batch server's heartbeats
RUNNING = (BatchStatus.EXECUTING, BatchStatus.CANCELLING)  # task statuses that hold a batch thread
DEFAULT_THREADS = 8

__all__ = [
    "ALIVE_WITHIN", "HEARTBEAT_EVERY", "RUNNING", "RunningTask", "ServerInfo", "alive_names", "alive_since",
    "alive_where", "is_alive", "pause_server", "running_counts", "running_tasks", "server_rows", "set_server",
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
    paused: bool = False
    reserved: int = 0
    schedule: tuple[str, ...] = ()  # "HH:MM-HH:MM=N" windows, in the server machine's time zone
    threads_now: int = 0  # what it applies now (0 when not alive)
    configured_threads: int | None = None  # the Server configuration form's; None: its --threads


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
    """Every batch server that has run on this database or has a configuration, by name,
    as of `now` (default: the clock)."""
    now = now or utcnow()
    running = running_counts()
    configs = {c.name: c for c in m.ServerConfig.select()}
    servers = {s.name: s for s in m.BatchServer.select()}
    rows = []
    for name in sorted(set(servers) | set(configs)):
        s, c = servers.get(name), configs.get(name)
        alive = s is not None and is_alive(s.stopped, s.heartbeat, now)
        schedule = tuple(w.text for w in schedule_from_json(c.schedule)) if c is not None else ()
        threads = s.threads if s is not None else (c.threads if c is not None and c.threads else DEFAULT_THREADS)
        rows.append(ServerInfo(
            name=name, host=s.host if s else "", pid=s.pid if s else 0, threads=threads,
            started=s.started if s else None, heartbeat=s.heartbeat if s else None,
            stopped=s.stopped if s else None, alive=alive, running=running.get(name, 0),
            groups=tuple(served_groups(name)), paused=bool(c.paused) if c else False,
            reserved=int(c.reserved) if c else 0, schedule=schedule,
            threads_now=int(s.threads_now) if alive and s is not None else 0,
            configured_threads=c.threads if c else None,
        ))
    return rows


# -- the Server configuration form ----------------------------------------------------------


def _check_threads(value: Any, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a whole number, not {q(value)}") from None
    if isinstance(value, bool) or (isinstance(value, float) and value != n):
        raise UserError(f"{what} must be a whole number, not {q(value)}")
    return n


def set_server(name: str, *, actor: Actor, threads: Any = None, reserved: Any = None, schedule: Any = None,
               clear_threads: bool = False) -> ServerInfo:
    """`servers set` and the Server configuration form: threads, reserved threads, schedule.

    Only batch job managers; the running server applies it within its poll
    interval. None leaves a setting as it is; schedule "" clears it;
    clear_threads goes back to the server's --threads.
    """
    from .periods import check_manager

    check_manager(actor, "change the server configuration")
    if not isinstance(name, str) or not name.strip() or len(name) > 80:
        raise UserError(f"batch server {q(name)}: a server name is 1 to 80 characters")
    changes: dict[str, Any] = {}
    if threads is not None:
        n = _check_threads(threads, f"batch server {q(name)}: threads")
        if not 1 <= n <= MAX_THREADS:
            raise UserError(f"batch server {q(name)}: threads must be 1 to {MAX_THREADS}, not {n}")
        changes["threads"] = n
    elif clear_threads:
        changes["threads"] = None
    if reserved is not None:
        n = _check_threads(reserved, f"batch server {q(name)}: reserved threads")
        if n < 0:
            raise UserError(f"batch server {q(name)}: reserved threads must be 0 or more, not {n}")
        changes["reserved"] = n
    if schedule is not None:
        try:
            windows = parse_schedule(schedule)
        except ControlError as exc:
            raise UserError(f"batch server {q(name)}: {exc}") from None
        changes["schedule"] = [w.text for w in windows] or None
    if not changes:
        raise UserError(f"batch server {q(name)}: nothing to change (--threads, --reserved or --schedule)")
    with write():
        row = m.ServerConfig.get_or_none(m.ServerConfig.name == name)
        server = m.BatchServer.get_or_none(m.BatchServer.name == name)
        threads_after = changes.get("threads", row.threads if row else None)
        if threads_after is None:
            threads_after = server.threads if server is not None else DEFAULT_THREADS
        reserved_after = changes.get("reserved", row.reserved if row else 0)
        if reserved_after > threads_after:
            raise UserError(f"batch server {q(name)}: {reserved_after} reserved threads is more than its "
                            f"{threads_after} threads")
        _save_config(name, row, actor, changes)
    return next(s for s in server_rows() if s.name == name)


def pause_server(name: str, *, actor: Actor, paused: bool = True) -> ServerInfo:
    """Pause (or resume) a batch server: a paused server finishes what it runs and starts nothing new."""
    from .periods import check_manager

    check_manager(actor, "pause or resume batch servers")
    with write():
        row = m.ServerConfig.get_or_none(m.ServerConfig.name == name)
        if row is None and m.BatchServer.get_or_none(m.BatchServer.name == name) is None:
            raise NotFound(f"batch server {q(name)}: no such batch server (see `batchtui servers`)")
        _save_config(name, row, actor, {"paused": paused})
    return next(s for s in server_rows() if s.name == name)


def _save_config(name: str, row: m.ServerConfig | None, actor: Actor, changes: dict[str, Any]) -> None:
    changes = {**changes, "modified": utcnow(), "modified_by": actor.user}
    if row is None:
        m.ServerConfig.create(name=name, **changes)
    else:
        m.ServerConfig.update(**changes).where(m.ServerConfig.name == name).execute()
