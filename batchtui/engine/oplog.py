"""What the batch server tells its operator's log (batchtui/logs.py): one line per event.

The loop calls these at the points where something happened (an attempt
claimed and started, an attempt's end committed, a round failing on the
database, the first round that works again), so server.py keeps one short
call at each place. Task events carry job, task, attempt and status (the
command line's status names) as fields; the task's description is user text,
and the formatters escape it (logs.py).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..vocabulary import BatchStatus

if TYPE_CHECKING:
    from .server import BatchServerEngine, Running
    from .store import Claimed

log = logging.getLogger("batchtui.engine")

# What an attempt's result is recorded as (the store closes a handed-back attempt as Canceled).
_STATUS = {"ended": "ended", "error": "error", "canceled": "canceled", "handback": "canceled"}


def _fields(engine: BatchServerEngine, c: Claimed, status: str, event: str) -> dict:
    return {"event": event, "server": engine.name, "job": c.job_id, "task": c.task_id, "attempt": c.attempt,
            "status": status, "description": c.description}


def attempt_started(engine: BatchServerEngine, c: Claimed) -> None:
    if engine.metrics is not None:
        engine.metrics.attempt_started(c.due)
    if log.isEnabledFor(logging.INFO):
        log.info("job %d task %d attempt %d started (%s): %s", c.job_id, c.task_id, c.attempt, c.class_name,
                 c.description, extra=_fields(engine, c, "executing", "attempt_started"))


def attempt_ended(engine: BatchServerEngine, r: Running) -> None:
    """After the transaction that recorded the attempt's end has committed.

    Its status is the one the store closed it with (a task whose job was being
    canceled ends Canceled whatever its class reported), else what the worker said.
    """
    c = r.claimed
    result = r.result or "error"
    closed = engine.store.closed.get(c.attempt_id)
    status = BatchStatus(closed).cli if closed is not None else _STATUS.get(result, "error")
    never_ran = result == "handback" and not r.began  # no attempt in history either
    if engine.metrics is not None and not never_ran:
        engine.metrics.attempt_ended(status)
    if not log.isEnabledFor(logging.INFO):
        return
    if result == "handback":
        why = "it had not started" if never_ran else "the server stopped before it ended"
        log.info("job %d task %d attempt %d handed back: %s; the task is Ready again, no retry used: %s",
                 c.job_id, c.task_id, c.attempt, why, c.description,
                 extra=_fields(engine, c, status, "attempt_handed_back"))
        return
    log.info("job %d task %d attempt %d %s: %s", c.job_id, c.task_id, c.attempt, status, c.description,
             extra=_fields(engine, c, status, "attempt_ended"))


def database_error(engine: BatchServerEngine, message: str) -> None:
    """A round failed on the database: the first failure of an outage at error, the repeats at debug."""
    if engine._outage_since is None:
        engine._outage_since = time.monotonic()
        log.error("%s; retrying with a growing delay (up to 30 s)", message,
                  extra={"event": "database_down", "server": engine.name})
    else:
        log.debug("%s (still)", message, extra={"event": "database_down", "server": engine.name})


def database_back(engine: BatchServerEngine) -> None:
    since, engine._outage_since = engine._outage_since, None
    seconds = round(time.monotonic() - since, 3) if since is not None else 0.0
    log.warning("batch server %s reaches the database again after %.1f s", engine.name, seconds,
                extra={"event": "database_up", "server": engine.name, "seconds": seconds})
