"""WAL checkpoints off the batch server's loop (SQLite only).

SQLite checkpoints the WAL inside the commit that takes it past 1,000 pages:
that commit copies every page written since the last checkpoint into the
database file and syncs both files, on the loop's thread, while the worker
threads wait for their next task. Under load that was a fifth of the loop's
time (bench/throughput).

A helper thread with its own connection checkpoints shortly after the loop
has written, so that the loop's own automatic checkpoint finds next to
nothing left to copy. It is PASSIVE: it never waits for, nor blocks, readers
or the writer. The loop's automatic checkpoint stays on: a checkpoint that
ends with the WAL fully copied is what lets the next write start the WAL
from the beginning again, and only the writer can end one so under a
continuous stream of commits.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from urllib.parse import quote

log = logging.getLogger("batchtui.engine")

CHECKPOINT_AFTER = 0.01  # seconds after the loop's first write since the last checkpoint


class Checkpointer:
    """A daemon thread that checkpoints the SQLite file at `path` when poked."""

    def __init__(self, path: str, name: str = "batch-checkpoint", after: float = CHECKPOINT_AFTER) -> None:
        self.path = path
        self.after = after
        self._written = threading.Event()
        self._stop = threading.Event()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """The loop committed a write: checkpoint soon."""
        if not self._written.is_set():
            self._written.set()

    def stop(self) -> None:
        self._stop.set()
        self._written.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._written.wait()
                if self._stop.wait(self.after):
                    return
                self._written.clear()
                self._checkpoint()
        finally:
            self._close()

    def _checkpoint(self) -> None:
        try:
            conn = self._connection()
            if conn is not None:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # file gone, disk full...: the loop's checkpoint still works
            log.debug("background checkpoint of %s failed: %s", self.path, exc)
            self._close()

    def _connection(self) -> sqlite3.Connection | None:
        """The helper's connection, reopened when the file was replaced; None while it is missing.

        mode=rw: never creates a file where the database has gone.
        """
        try:
            st = os.stat(self.path)
        except OSError:
            self._close()
            return None
        identity = (st.st_dev, st.st_ino)
        if self._conn is not None and identity != self._identity:
            self._close()
        if self._conn is None:
            # A short busy timeout: a checkpoint that cannot run now is skipped,
            # and stop() is never held up by one.
            self._conn = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True, timeout=0.5,
                                         isolation_level=None, check_same_thread=False)
            self._identity = identity
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
