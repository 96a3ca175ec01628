"""Watching the database for changes, off the UI thread.

The console shows what other processes (and its own batch server) do to the
jobs, within a second. Asking the database "did anything change?" used to be
a query over the whole job and attempt tables on the UI thread, once a
second: about 0.1 s of frozen keyboard a second with 100,000 jobs. Here a
plain thread asks instead, and asks the cheap way: SQLite's ``PRAGMA
data_version`` (it moves when another connection commits, and this thread's
connection never writes), PostgreSQL's transaction snapshot (it moves when any
write transaction starts). It tells the app through callbacks that only post
messages, so it never waits for the UI.

It is also where the console learns that the database went away and came
back: each look that fails is reported through ``on_health`` with the
reason (once, when it changes), and the first one that works again with
None. Its own connection is closed after a failure and opened again on the
next look, and kept on the SQLite file that is there now (a moved-away or
replaced file is not read on); asked to (``recheck(probe_writes=True)``,
after a write of the console failed) it also tries a write, so a database
that became read-only is noticed and its end too.

No Textual here: the app passes in what to call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .. import models as m
from .outage import DB_ERRORS, ThreadConnection, close_quietly, reason

_UNKNOWN = object()


class _ProbeDone(Exception):
    """Ends the write probe's transaction (rolled back: nothing is written)."""


class ChangeWatcher:
    """Once an interval: has anything been committed, and which alerts are new for the user."""

    def __init__(self, user: str, on_change: Callable[[], None], on_alert: Callable[[object], None],
                 interval: float = 1.0, last_alert_id: int = 0,
                 on_health: Callable[[str | None], None] | None = None) -> None:
        self.user = user
        self.on_change = on_change
        self.on_alert = on_alert
        self.on_health = on_health
        self.problem: str | None = None  # why the last look failed; None: it worked
        self._reported: object = None  # what on_health was last told
        self._probe_writes = False
        self._connection = ThreadConnection()
        self.interval = interval
        self.last_alert_id = last_alert_id
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._signature = None
        self._query_signature = False  # PRAGMA / snapshot not available: fall back to a query

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batchtui-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wake(self) -> None:
        """Look now rather than at the next interval."""
        self._wake.set()

    def recheck(self, probe_writes: bool = False) -> None:
        """Look now and report what is found even if it did not change (the app
        saw a database error of its own); with probe_writes, try a write too."""
        if probe_writes:
            self._probe_writes = True
        self._reported = _UNKNOWN
        self._wake.set()

    # -- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._signature = self._safe_signature()
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                self.check()
        finally:
            close_quietly()  # this thread's connection only

    def check(self) -> None:
        try:
            self._connection.check()
            signature = self.signature()
            rows = list(m.Alert.select().where((m.Alert.user == self.user) & (m.Alert.id > self.last_alert_id))
                        .order_by(m.Alert.id))
            if self._probe_writes:
                self._probe_write()
                self._probe_writes = False
        except Exception as exc:  # noqa: BLE001 - the database is away: say so, try again next time (this
            # thread must outlive whatever a driver raises while its server or file is gone)
            close_quietly()
            self._health(reason(exc))
            return
        self._health(None)
        if signature != self._signature:
            self._signature = signature
            self.on_change()
        for alert in rows:
            self.last_alert_id = max(self.last_alert_id, alert.id)
            self.on_alert(alert)

    def _health(self, problem: str | None) -> None:
        self.problem = problem
        if problem != self._reported:
            self._reported = problem
            if self.on_health is not None:
                self.on_health(problem)

    def _probe_write(self) -> None:
        """Can this process write? A write in a transaction that is rolled back, on a
        fresh connection (one opened before the file became read-only still may)."""
        from ..db import is_postgres, write

        if is_postgres():
            return  # reads tell whether the server is there; an operator's role may not write here
        close_quietly()
        self._connection.check()
        m.database.execute_sql("PRAGMA busy_timeout = 1000")
        try:
            with write():
                m.database.execute_sql("UPDATE batchtui_schema SET version = version")
                raise _ProbeDone
        except _ProbeDone:
            pass
        except Exception as exc:
            if "locked" not in str(exc):  # somebody else is writing: writes work
                raise
        finally:
            m.database.execute_sql("PRAGMA busy_timeout = 15000")

    def _safe_signature(self):
        try:
            self._connection.check()
            return self.signature()
        except Exception:  # noqa: BLE001 - the database is away for a moment: try again next time
            close_quietly()
            return None

    def signature(self):
        from ..db import is_postgres

        if not self._query_signature:
            try:
                if is_postgres():
                    return m.database.execute_sql("SELECT txid_current_snapshot()::text").fetchone()[0]
                return m.database.execute_sql("PRAGMA data_version").fetchone()[0]
            except DB_ERRORS:
                # Not available here, or the database is away: the query below tells which.
                close_quietly()
                signature = self._query()
                self._query_signature = True
                return signature
        return self._query()

    @staticmethod
    def _query():
        # Slower, but works on anything: the newest row and the latest change.
        from peewee import fn

        job = m.BatchJob.select(fn.MAX(m.BatchJob.id), fn.MAX(m.BatchJob.modified)).tuples().first()
        attempt = m.TaskAttempt.select(fn.MAX(m.TaskAttempt.id)).scalar()
        return (job, attempt)
