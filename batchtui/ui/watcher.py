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

No Textual here: the app passes in what to call.
"""

from __future__ import annotations

import threading
from typing import Callable

from .. import models as m


class ChangeWatcher:
    """Once an interval: has anything been committed, and which alerts are new for the user."""

    def __init__(self, user: str, on_change: Callable[[], None], on_alert: Callable[[object], None],
                 interval: float = 1.0, last_alert_id: int = 0) -> None:
        self.user = user
        self.on_change = on_change
        self.on_alert = on_alert
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
            try:
                m.database.close()  # this thread's connection only
            except Exception:
                pass

    def check(self) -> None:
        signature = self._safe_signature()
        if signature is not None and signature != self._signature:
            self._signature = signature
            self.on_change()
        try:
            rows = list(m.Alert.select().where((m.Alert.user == self.user) & (m.Alert.id > self.last_alert_id))
                        .order_by(m.Alert.id))
        except Exception:
            return
        for alert in rows:
            self.last_alert_id = max(self.last_alert_id, alert.id)
            self.on_alert(alert)

    def _safe_signature(self):
        try:
            return self.signature()
        except Exception:  # the database is away for a moment: try again next time
            return None

    def signature(self):
        from ..db import is_postgres

        if not self._query_signature:
            try:
                if is_postgres():
                    return m.database.execute_sql("SELECT txid_current_snapshot()::text").fetchone()[0]
                return m.database.execute_sql("PRAGMA data_version").fetchone()[0]
            except Exception:
                self._query_signature = True
        # Slower, but works on anything: the newest row and the latest change.
        from peewee import fn

        job = m.BatchJob.select(fn.MAX(m.BatchJob.id), fn.MAX(m.BatchJob.modified)).tuples().first()
        attempt = m.TaskAttempt.select(fn.MAX(m.TaskAttempt.id)).scalar()
        return (job, attempt)
