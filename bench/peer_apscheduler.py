"""The peer: APScheduler 3.11, as a Python user would set it up for persistent jobs.

A BackgroundScheduler with its SQLAlchemy job store on a SQLite file (the
store's defaults) and a ThreadPoolExecutor. Jobs are date-trigger jobs; a
late job still runs however late it is (misfire_grace_time=None), so every
job is counted. Executions are counted with an EVENT_JOB_EXECUTED listener.

The job functions live here, at module level, because the SQLAlchemy store
pickles a job with a textual reference to its function.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

# time.time() - due, recorded inside the job function (latency benchmark)
LATENESS: list[float] = []


def noop() -> None:
    return None


# time.time() when the first first_noop began (the peers benchmark's clock start)
FIRST: list[float] = []


def first_noop() -> None:
    if not FIRST:
        FIRST.append(time.time())


def stamp(due_timestamp: float) -> None:
    LATENESS.append(time.time() - due_timestamp)


class Counted:
    """A scheduler with its executions counted; done() once `expected` have run."""

    def __init__(self, folder: str, threads: int, expected: int) -> None:
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{Path(folder) / 'apscheduler.db'}")},
            executors={"default": ThreadPoolExecutor(threads)},
            job_defaults={"misfire_grace_time": None, "coalesce": False},
            timezone="UTC",
        )
        self.expected = expected
        self.executed = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def _on_event(self, event) -> None:
        with self._lock:
            if event.code == EVENT_JOB_EXECUTED:
                self.executed += 1
            else:
                self.failed += 1
            if self.executed + self.failed >= self.expected:
                self._done.set()

    def start_paused(self) -> None:
        """Started but paused: jobs added now are written to the store, nothing runs yet."""
        self.scheduler.start(paused=True)

    def add(self, func, run_date: datetime, args: tuple = ()) -> None:
        self.scheduler.add_job(func, "date", run_date=run_date.replace(tzinfo=UTC), args=args)

    def resume(self) -> None:
        self.scheduler.resume()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=True)
