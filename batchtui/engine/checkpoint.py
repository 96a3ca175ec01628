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

When to checkpoint (issue 17). With synchronous=NORMAL a commit does not
sync, but the commit that writes the first frame of a WAL started afresh
(after a checkpoint copied all of it) syncs the WAL's header. Checkpointing
10 ms after every write made nearly every write of a lightly loaded loop
that first one: 116 syncs by the loop for 200 jobs due over 20 s, each
holding back the jobs due meanwhile (up to 207 ms on a busy disk). Now:

- the helper checkpoints when the loop sleeps with nothing due for a while
  (``quiet_for``, told by the loop before each sleep) and has not written
  for IDLE; or, whatever the loop expects, once it has committed COMMITS
  times since the last checkpoint (under load: the WAL stays small, and the
  loop's own automatic checkpoint finds little to copy);
- when a checkpoint has copied the whole WAL and the loop is still quiet,
  the helper starts the WAL afresh itself with a one-frame write (``PRAGMA
  user_version`` set to the value it has) and pays that sync, so that the
  loop's next commit appends to a WAL already begun. That write never
  waits: if the loop holds the write lock, it is skipped (and the loop
  starts the WAL itself, as before).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from urllib.parse import quote

log = logging.getLogger("batchtui.engine")

IDLE = 0.005  # seconds without a write by the loop before a quiet checkpoint
COMMITS = 16  # commits by the loop since the last checkpoint: checkpoint whatever the loop expects
QUIET_MARGIN = 0.05  # the loop knows of nothing due for at least this long: it is quiet
POLL = 0.005  # seconds between looks while there is something to checkpoint


class Checkpointer:
    """A daemon thread that checkpoints the SQLite file at `path` when poked (see the module's docstring)."""

    def __init__(self, path: str, name: str = "batch-checkpoint", commits: int = COMMITS) -> None:
        self.path = path
        self.commits = commits
        self._written = threading.Event()
        self._stop = threading.Event()
        self._last_write = 0.0
        self._pokes = 0
        self._quiet_until = 0.0  # monotonic time until which the loop expects nothing due
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.restarts = 0  # WALs started afresh by this helper (for tests and benchmarks)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """The loop committed a write: checkpoint when it is quiet, or after `commits` of them."""
        self._last_write = time.monotonic()
        self._pokes += 1
        if not self._written.is_set():
            self._written.set()

    def quiet_for(self, seconds: float) -> None:
        """The loop sleeps now and knows of nothing due within `seconds`."""
        self._quiet_until = time.monotonic() + seconds

    def _quiet(self) -> bool:
        now = time.monotonic()
        return now - self._last_write >= IDLE and self._quiet_until - now >= QUIET_MARGIN

    def stop(self) -> None:
        self._stop.set()
        self._written.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._written.wait()
                while self._pokes < self.commits and not self._quiet():
                    if self._stop.wait(POLL):
                        return
                self._written.clear()
                self._pokes = 0
                self._checkpoint()
        finally:
            self._close()

    def _checkpoint(self) -> None:
        try:
            conn = self._connection()
            if conn is None:
                return
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and frames > 0 and copied == frames and not self._written.is_set() and self._quiet():
                self._restart_wal(conn)
        except sqlite3.Error as exc:  # file gone, disk full...: the loop's checkpoint still works
            log.debug("background checkpoint of %s failed: %s", self.path, exc)
            self._close()

    def _restart_wal(self, conn: sqlite3.Connection) -> None:
        """Begin the WAL afresh with one frame (page 1 rewritten as it is), paying the header's sync here."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # the loop is writing: it begins the WAL itself
            return
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute(f"PRAGMA user_version = {int(version)}")
            conn.execute("COMMIT")
            self.restarts += 1
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise

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
            # No busy wait at all: a checkpoint or a WAL restart that cannot run now is skipped.
            self._conn = sqlite3.connect(f"file:{quote(self.path)}?mode=rw", uri=True, timeout=0,
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
